"""Check that every available peer method returns the project's displacement convention.

A script, not a pytest test (itk-elastix is an optional extra). It builds a speckle-like image, a
known smooth displacement u (mm, fixed grid), and the moving image with moving(p + u(p)) = fixed(p),
runs each peer of :data:`peer_methods.PEER_METHODS` that can be imported, and prints the mean
end-point error in the interior against that of the identity, the normalised cross-correlation of
the fixed image with the moving image warped by the project's :func:`warp`, and the run time
(median of the repeats after a first run, which is shown apart as it includes lazy imports). A
sign or axis error would leave the error near or above twice the identity's; the script exits
with status 1 unless every peer's error is below half the identity's and its warp raises the NCC.

Run from the repository root: ``python benchmarks/check_peer_methods.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from EchoRegistrationLib.spatial import field_to_torch, warp  # noqa: E402
from benchmarks.peer_methods import PEER_METHODS, available_peer_methods  # noqa: E402

SHAPE = (128, 112)  # (H, W) pixels
SPACING = (0.4, 0.3)  # (sx, sy) mm
SPECKLE_SIGMA_PX = 1.2
MARGIN_PX = 10
INVERSION_ITERATIONS = 50


def speckle_image(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """|Gaussian-smoothed white noise|, scaled to [0, 1], float32."""
    noise = rng.standard_normal(shape).astype(np.float32)
    smooth = np.abs(cv2.GaussianBlur(noise, (0, 0), SPECKLE_SIGMA_PX))
    return (smooth / smooth.max()).astype(np.float32)


def analytic_displacement(shape: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
    """(H, W, 2) float32 smooth sinusoidal displacement in mm, up to about 1.9 mm."""
    h, w = shape
    sx, sy = spacing
    y, x = np.meshgrid(np.arange(h) * sy, np.arange(w) * sx, indexing="ij")
    width, height = (w - 1) * sx, (h - 1) * sy
    ux = 1.5 * np.sin(2 * np.pi * y / height + 0.3) * np.cos(np.pi * x / width)
    uy = 1.2 * np.cos(2 * np.pi * x / width) * np.sin(np.pi * y / height + 0.5)
    return np.stack([ux, uy], axis=-1).astype(np.float32)


def inverse_displacement(u: torch.Tensor, spacing: tuple[float, float]) -> tuple[torch.Tensor,
                                                                                  float]:
    """v with q + v(q) = p where q = p + u(p): fixed point of v = -u(q + v(q)).

    Returns v (1, 2, H, W) mm and the largest residual |v + u o (id + v)| in mm.
    """
    v = -u
    for _ in range(INVERSION_ITERATIONS):
        v = -warp(u, v, spacing)
    residual = (v + warp(u, v, spacing)).norm(dim=1).max().item()
    return v, residual


def interior(array: np.ndarray) -> np.ndarray:
    return array[MARGIN_PX:-MARGIN_PX, MARGIN_PX:-MARGIN_PX]


def end_point_errors(estimate: np.ndarray, truth: np.ndarray,
                     spacing: tuple[float, float]) -> tuple[float, float]:
    """Mean interior end-point error in mm and in pixels."""
    difference = interior(estimate - truth)
    mm = np.linalg.norm(difference, axis=-1).mean()
    px = np.linalg.norm(difference / np.asarray(spacing, dtype=np.float32), axis=-1).mean()
    return float(mm), float(px)


def warped_ncc(fixed: np.ndarray, moving: torch.Tensor, field: np.ndarray,
               spacing: tuple[float, float]) -> float:
    """Interior normalised cross-correlation of ``fixed`` and ``moving`` warped by ``field``."""
    warped = warp(moving, field_to_torch(field), spacing)[0, 0].numpy()
    a, b = interior(fixed).ravel(), interior(warped).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per method after a first one (median)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(2)

    fixed = speckle_image(SHAPE, np.random.default_rng(args.seed))
    truth = analytic_displacement(SHAPE, SPACING)
    u = field_to_torch(truth)
    inverse, residual = inverse_displacement(u, SPACING)
    fixed_t = torch.from_numpy(fixed)[None, None]
    moving_t = warp(fixed_t, inverse, SPACING)  # moving(q) = fixed(q + v(q))
    moving = moving_t[0, 0].numpy()
    # moving(p + u(p)) = fixed(p) up to interpolation: warping moving back by the truth.
    truth_ncc = warped_ncc(fixed, moving_t, truth, SPACING)
    zero = np.zeros_like(truth)
    identity_mm, identity_px = end_point_errors(zero, truth, SPACING)
    identity_ncc = warped_ncc(fixed, moving_t, zero, SPACING)
    max_px = np.linalg.norm(truth / np.asarray(SPACING, dtype=np.float32), axis=-1).max()
    print(f"image {SHAPE[0]}x{SHAPE[1]} (HxW), spacing {SPACING} mm, |u| max "
          f"{np.linalg.norm(truth, axis=-1).max():.2f} mm / {max_px:.2f} px, inverse residual "
          f"{residual:.1e} mm, interior margin {MARGIN_PX} px")
    print(f"NCC(fixed, warped moving): identity {identity_ncc:.3f}, true field {truth_ncc:.3f}")

    header = (f"{'method':<18}{'EPE mm':>9}{'EPE px':>9}{'id. mm':>9}{'id. px':>9}"
              f"{'ratio':>8}{'NCC':>8}{'seconds':>10}{'1st run s':>11}")
    print(header)
    print("-" * len(header))
    print(f"{'identity':<18}{identity_mm:>9.3f}{identity_px:>9.3f}{identity_mm:>9.3f}"
          f"{identity_px:>9.3f}{1.0:>8.2f}{identity_ncc:>8.3f}")
    print(f"{'true field':<18}{0.0:>9.3f}{0.0:>9.3f}{identity_mm:>9.3f}{identity_px:>9.3f}"
          f"{0.0:>8.2f}{truth_ncc:>8.3f}")
    failures = []
    for name, method in available_peer_methods().items():
        seconds = []  # the first run includes lazy imports (ITK loads its modules on first use)
        for _ in range(1 + args.repeats):
            start = time.perf_counter()
            estimate = method(fixed, moving, SPACING)
            seconds.append(time.perf_counter() - start)
        if estimate.shape != truth.shape or estimate.dtype != np.float32:
            failures.append(f"{name}: returned {estimate.shape} {estimate.dtype}")
            continue
        mm, px = end_point_errors(estimate, truth, SPACING)
        ncc = warped_ncc(fixed, moving_t, estimate, SPACING)
        print(f"{name:<18}{mm:>9.3f}{px:>9.3f}{identity_mm:>9.3f}{identity_px:>9.3f}"
              f"{mm / identity_mm:>8.2f}{ncc:>8.3f}{statistics.median(seconds[1:]):>10.3f}"
              f"{seconds[0]:>11.3f}")
        if mm >= 0.5 * identity_mm:
            failures.append(f"{name}: error {mm:.3f} mm not below half the identity's")
        if ncc <= identity_ncc:
            failures.append(f"{name}: warped NCC {ncc:.3f} not above the identity's")
    missing = sorted(set(PEER_METHODS) - set(available_peer_methods()))
    if missing:
        print(f"not importable here, skipped: {', '.join(missing)}")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
