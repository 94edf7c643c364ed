"""Peer registration methods for the benchmark, wrapped to the project's field convention.

Every method has one signature::

    method(fixed: (H, W) float32, moving: (H, W) float32, spacing: (sx, sy) mm) -> (H, W, 2) float32

and returns a displacement on the fixed grid, in mm, components (x, y) = (column / lateral,
row / depth), mapping a fixed point p to p + u(p) in the moving frame, so that
``warped(p) = moving(p + u(p))`` matches ``fixed(p)`` (ITK / Slicer resampling convention, the
same as :func:`EchoRegistrationLib.spatial.warp`). Pixel (row i, column j) sits at
(j * sx, i * sy) mm.

OpenCV (``opencv-python-headless``) is a core dependency; itk-elastix is an optional benchmark
extra and is imported lazily. :func:`available_peer_methods` lists those that can run here.
``benchmarks/check_peer_methods.py`` verifies the conventions on a known synthetic displacement.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable

import cv2
import numpy as np

PeerMethod = Callable[[np.ndarray, np.ndarray, tuple[float, float]], np.ndarray]

# elastix B-spline: final control-point spacing (mm). 8 mm is about one myocardial segment's
# width on adult echo: fine enough for regional wall motion, smooth on speckle. The coarser
# levels use 2x and sqrt(2)x this (elastix's default grid schedule).
ELASTIX_GRID_SPACING_MM = 8.0
ELASTIX_RESOLUTIONS = 3
ELASTIX_THREADS = 2
ELASTIX_RANDOM_SEED = 121212

# Farneback: 4 pyramid levels halving the size, 15-pixel averaging window, 3 iterations per
# level, polynomial expansion over 5-pixel neighbourhoods with sigma 1.1 (OpenCV's recommended
# pair for poly_n = 5), Gaussian window.
FARNEBACK_PARAMETERS = dict(pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5,
                            poly_sigma=1.1, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def _check_pair(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fixed = np.asarray(fixed, dtype=np.float32)
    moving = np.asarray(moving, dtype=np.float32)
    if fixed.ndim != 2 or fixed.shape != moving.shape:
        raise ValueError(f"expected two (H, W) images of one shape, got {fixed.shape} and "
                         f"{moving.shape}")
    return fixed, moving


def _to_uint8(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images through one linear map taking the fixed image's [min, max] to [0, 255],
    clipped, rounded to 8 bits (OpenCV's optical flow needs 8-bit images)."""
    low, high = float(fixed.min()), float(fixed.max())
    scale = 255.0 / (high - low) if high > low else 0.0

    def convert(image: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((image - low) * scale), 0, 255).astype(np.uint8)

    return convert(fixed), convert(moving)


def _opencv_flow(fixed: np.ndarray, moving: np.ndarray, spacing: tuple[float, float],
                 flow: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Run an OpenCV dense flow ``flow(fixed8, moving8)`` on 8-bit copies of the pair (one linear map
    from the fixed image's range) and convert its pixels (x, y) to mm.

    OpenCV's flow lies on the fixed grid with fixed(x) ~ moving(x + flow(x)): the project
    convention once scaled by the spacing.
    """
    fixed, moving = _check_pair(fixed, moving)
    fixed8, moving8 = _to_uint8(fixed, moving)
    return (flow(fixed8, moving8) * np.asarray(spacing, dtype=np.float32)).astype(np.float32)


def opencv_farneback(fixed: np.ndarray, moving: np.ndarray,
                     spacing: tuple[float, float]) -> np.ndarray:
    """Farneback dense optical flow (``calcOpticalFlowFarneback(prev=fixed, next=moving)`` with
    :data:`FARNEBACK_PARAMETERS`); (H, W, 2) float32 displacement in mm."""
    return _opencv_flow(fixed, moving, spacing, lambda f, m: cv2.calcOpticalFlowFarneback(
        f, m, None, **FARNEBACK_PARAMETERS))


def opencv_dis(fixed: np.ndarray, moving: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """DIS dense optical flow (OpenCV, preset MEDIUM with its default variational refinement,
    ``calc(fixed, moving)``); (H, W, 2) float32 displacement in mm."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _opencv_flow(fixed, moving, spacing, lambda f, m: dis.calc(f, m, None))


def elastix_bspline(fixed: np.ndarray, moving: np.ndarray,
                    spacing: tuple[float, float]) -> np.ndarray:
    """elastix B-spline registration (itk-elastix, optional), elastix's default "bspline" map.

    Parameters: 3 resolutions (smoothing pyramids), final control-point grid spacing
    :data:`ELASTIX_GRID_SPACING_MM` mm (16, 11.3, 8 mm over the levels), metric
    AdvancedMattesMutualInformation plus the default's bending-energy penalty (weights 1, 1),
    adaptive stochastic gradient descent, 256 iterations per level, 2048 random samples, fixed
    random seed :data:`ELASTIX_RANDOM_SEED`. Mattes MI is kept (rather than normalised
    correlation) because it tolerates the gain and time-gain-compensation changes between echo
    frames. The images carry their physical spacing and origin 0, so elastix works in mm.

    The ITK global thread count is set to :data:`ELASTIX_THREADS` (passing ``number_of_threads``
    to elastix segfaulted with this map in itk-elastix 0.25.4). Logging is off. transformix runs
    with a temporary output folder, because it may write ``deformationField.nii`` there.

    transformix's deformation field lies on the fixed grid, components (x, y) in physical units,
    and maps a fixed point p to p + u(p) in the moving image: the project convention as is.

    Returns:
        (H, W, 2) float32 displacement in mm.
    """
    import itk

    fixed, moving = _check_pair(fixed, moving)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(ELASTIX_THREADS)
    fixed_image = itk.image_from_array(np.ascontiguousarray(fixed))
    moving_image = itk.image_from_array(np.ascontiguousarray(moving))
    for image in (fixed_image, moving_image):
        image.SetSpacing([float(spacing[0]), float(spacing[1])])
        image.SetOrigin([0.0, 0.0])

    parameter_object = itk.ParameterObject.New()
    parameter_map = parameter_object.GetDefaultParameterMap(
        "bspline", ELASTIX_RESOLUTIONS, ELASTIX_GRID_SPACING_MM)
    parameter_map["WriteResultImage"] = ["false"]
    parameter_map["RandomSeed"] = [str(ELASTIX_RANDOM_SEED)]
    parameter_object.AddParameterMap(parameter_map)

    with tempfile.TemporaryDirectory(prefix="elastix_") as folder:
        _, transform_parameters = itk.elastix_registration_method(
            fixed_image, moving_image, parameter_object=parameter_object,
            log_to_console=False, log_to_file=False, output_directory=folder)
        transformix = itk.TransformixFilter.New(moving_image)
        transformix.SetTransformParameterObject(transform_parameters)
        transformix.SetComputeDeformationField(True)
        transformix.SetLogToConsole(False)
        transformix.SetOutputDirectory(folder)
        transformix.Update()
        field = itk.array_from_image(transformix.GetOutputDeformationField())
    return np.ascontiguousarray(field, dtype=np.float32)


def peer_sequence_fields(peer: PeerMethod, seq, reference: int = 0) -> np.ndarray:
    """(T, H, W, 2) float32 mm fields of every frame of an :class:`~EchoRegistrationLib.EchoSequence`
    registered directly to frame ``reference`` by ``peer`` (zero at the reference)."""
    frames, spacing = seq.frames, seq.spacing
    return np.stack([np.zeros((*frames.shape[1:], 2), np.float32) if t == reference
                     else peer(frames[reference], frames[t], spacing) for t in range(len(frames))])


PEER_METHODS: dict[str, PeerMethod] = {
    "elastix_bspline": elastix_bspline,
    "opencv_farneback": opencv_farneback,
    "opencv_dis": opencv_dis,
}

# Module each peer needs beyond the core dependencies (OpenCV is one): the itk-elastix wheel
# installs itk.ElastixPython.
_REQUIRED_MODULES = {"elastix_bspline": "itk.ElastixPython"}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def available_peer_methods() -> dict[str, PeerMethod]:
    """The entries of :data:`PEER_METHODS` whose packages can be imported here (itk-elastix is
    an optional extra)."""
    return {name: method for name, method in PEER_METHODS.items()
            if name not in _REQUIRED_MODULES or _importable(_REQUIRED_MODULES[name])}
