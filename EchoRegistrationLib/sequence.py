"""The echo sequence model shared by every loader, algorithm and the Slicer bridge.

Conventions (the same everywhere in EchoRegistration):

* ``frames`` is ``(T, H, W)`` float32: T frames, H rows (depth, y), W columns (lateral, x).
* ``spacing`` is ``(sx, sy)`` in millimetres: x = column spacing, y = row spacing, the order of
  SimpleITK's ``GetSpacing()``.
* ``frame_times`` is ``(T,)`` seconds, strictly increasing.
* ``origin`` (3,) and ``direction`` (3, 3) place the frame in patient space in LPS millimetres, the
  ITK / DICOM / file convention: the centre of pixel (row 0, column 0) is at ``origin``, column
  ``direction[:, 0]`` is the direction of increasing column index, ``direction[:, 1]`` of increasing
  row index and ``direction[:, 2]`` the frame normal. ``slice_spacing`` (mm) is the extent given to
  the single slice when the frame becomes a Slicer volume. :func:`ijk_to_ras` gives Slicer's matrix.
* ``labels`` uses the CAMUS codes: 0 background, 1 LV cavity, 2 myocardium, 3 left atrium.
* ``mask`` is an optional (H, W) boolean field of view (the ultrasound sector): True inside.

Plausible ranges (:data:`SPACING_RANGE_MM`, :data:`FRAME_INTERVAL_RANGE_S`, the latter for known frame
times only) are checked on every sequence: a value outside them is a unit or header error, never an echo
cine, and is refused.
Facts a loader had to work around (frames missing, a flagged spacing) are issued as
:class:`EchoDataWarning` and kept in ``metadata["warnings"]`` (:func:`record_warning`).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABEL_LV = 1
LABEL_MYOCARDIUM = 2
LABEL_LA = 3
LABEL_NAMES = {LABEL_LV: "LV cavity", LABEL_MYOCARDIUM: "myocardium", LABEL_LA: "left atrium"}

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Plausible pixel spacing of a 2D echo image, mm. Below 0.001 mm (1 um) is finer than any
#: ultrasound resolves even at 100 MHz (a spacing in metres lands here); above 10 mm a 30 cm field of
#: view (the deepest echo) would be under 30 pixels across, coarser than any scanner writes.
SPACING_RANGE_MM = (1e-3, 10.0)
#: Plausible interval between two frames, s: 1e-5 s is 100,000 frames/s, beyond ultrafast
#: plane-wave imaging (a few 10,000 frames/s); 10 s (0.1 frames/s) is longer than several heart
#: cycles (0.3-2 s each), so no cine loop has such a gap.
FRAME_INTERVAL_RANGE_S = (1e-5, 10.0)
#: ``EchoSequence.metadata`` key, present only when ES was set by the user
#: (:meth:`EchoSequence.with_end_systole`): the ES the file gave (a frame, or None), which the user's
#: replaced. :attr:`EchoSequence.es_set_by_user` and :attr:`EchoSequence.es_in_file` read it.
ES_IN_FILE = "es_in_file"
#: ``EchoSequence.metadata`` key of a sequence cut from another (:meth:`EchoSequence.subsequence`): the
#: frames it kept, numbered as in the whole sequence. Its intervals are sums of the whole sequence's
#: checked ones, so they are held to the lower bound of :data:`FRAME_INTERVAL_RANGE_S` only (the quick
#: look of a frame far from the reference spans many frame intervals).
SOURCE_FRAMES = "source_frames"


class EchoDataError(ValueError):
    """Invalid echo data. The message starts with the source (file name) and states the problem."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


def error_line(err: BaseException) -> str:
    """One line for an error (the command line's and the cohort table's format): an OSError as
    "file: problem" (errno's words), others as they are, whitespace folded."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        problem = "no space left on the device" if err.errno == errno.ENOSPC else err.strerror
        return f"{err.filename}: {problem}"
    return " ".join(str(err).split())


class EchoWarning(UserWarning):
    """A caveat EchoRegistration states about what it read or made (the command line prints each as one
    ``echoreg: warning:`` line)."""


class EchoDataWarning(EchoWarning):
    """A fact about the input that the numbers depend on (frames missing from a file, a flagged
    spacing): the data were loaded, with this caveat. The message starts with the source."""


class EchoModelWarning(EchoWarning):
    """A fact about a trained model that its use depends on (an anatomy network that segments its
    validation frames poorly): the model was saved, with this caveat. The message starts with its folder."""


def record_warning(metadata: dict[str, Any], problem: str) -> None:
    """Append ``problem`` to ``metadata["warnings"]`` (a list of str) and issue it as an
    :class:`EchoDataWarning` naming ``metadata["source"]``."""
    metadata.setdefault("warnings", []).append(problem)
    warnings.warn(EchoDataWarning(f"{metadata.get('source', '<in-memory sequence>')}: {problem}"),
                  stacklevel=2)


def nonfinite_problem(frames: np.ndarray) -> str | None:
    """None when every value of the (T, H, W) ``frames`` is finite, else a sentence giving how many
    are NaN or infinite and where the first one is. Such pixels are refused, never replaced: an
    intensity the file does not hold would be invented."""
    bad = ~np.isfinite(frames)
    count = int(np.count_nonzero(bad))
    if not count:
        return None
    t, row, column = (int(i) for i in np.unravel_index(int(np.argmax(bad)), frames.shape))
    return (f"{count} pixel values are NaN or infinite (the first at frame {t}, row {row}, column "
            f"{column}); intensities are never guessed: replace them in the file (for example with 0 "
            "outside the sector) and load it again")


def label_codes(labels: Any, source: str) -> np.ndarray:
    """``labels`` as uint8 codes, of the same shape.

    Raises:
        EchoDataError: naming ``source``: not numeric, non-integer values, or codes outside 0..255.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind not in "biuf":
        raise EchoDataError(source, f"labels must hold integer codes, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise EchoDataError(source, "label map holds non-integer values (labels must hold integer codes)")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise EchoDataError(source, f"label codes must lie in 0..255, got {arr.min()}..{arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


@dataclass(eq=False)
class EchoSequence:
    """A 2D echocardiography cine with its physical geometry, timing and optional labels.

    Construct it with any array-likes: the constructor converts and validates, raising
    :class:`EchoDataError` (a ``ValueError``) that names ``metadata["source"]`` and the problem.
    Use :func:`dataclasses.replace` to derive a modified copy; it is validated again.

    Attributes:
        frames: (T, H, W) float32 intensities.
        spacing: (sx, sy) pixel spacing in mm; x = column (lateral), y = row (depth).
        frame_times: (T,) seconds, strictly increasing. ``None`` at construction means unknown:
            frames are then placed 1 s apart and ``metadata["frame_times_known"]`` is False.
        origin: (3,) LPS position in mm of the centre of pixel (row 0, column 0).
        direction: (3, 3) LPS direction cosines; columns = column axis, row axis, frame normal.
        slice_spacing: mm, the thickness given to a frame as a single-slice volume.
        labels: optional uint8 label map(s): (T, H, W) per frame, or (H, W) for one frame.
        label_frames: indices of the frames whose labels are real annotations. Defaults to all
            frames for (T, H, W) labels and to ``(ed_index or 0,)`` for a single (H, W) map.
        ed_index, es_index: end-diastolic / end-systolic frame indices when known.
        mask: optional (H, W) bool field of view (sector), True inside; any array whose nonzero
            pixels are the inside is accepted. Registration compares images only inside it.
        metadata: free-form facts: ``source`` (file), ``modality``, ``manufacturer``, and flags for
            what a loader could not establish, such as ``spacing_known=False``.
    """

    frames: np.ndarray
    spacing: tuple[float, float]
    frame_times: np.ndarray | None = None
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    slice_spacing: float = 1.0
    labels: np.ndarray | None = None
    label_frames: tuple[int, ...] | None = None
    ed_index: int | None = None
    es_index: int | None = None
    mask: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata = dict(self.metadata)
        self.frames = self._checked_frames(self.frames)
        n = self.frames.shape[0]
        self.spacing = self._checked_spacing(self.spacing)
        if self.frame_times is None:
            self.frame_times = np.arange(n, dtype=np.float64)
            self.metadata["frame_times_known"] = False
        self.frame_times = self._checked_times(self.frame_times, n)
        self.origin = self._checked_vector(self.origin, (3,), "origin")
        self.direction = self._checked_vector(self.direction, (3, 3), "direction")
        if abs(np.linalg.det(self.direction)) < 1e-6:
            self._fail(f"direction matrix is singular: {self.direction.tolist()}")
        self.slice_spacing = float(self.slice_spacing)
        if not np.isfinite(self.slice_spacing) or self.slice_spacing <= 0:
            self._fail(f"slice spacing must be positive, got {self.slice_spacing}")
        self.ed_index = self._checked_index(self.ed_index, n, "ed_index")
        self.es_index = self._checked_index(self.es_index, n, "es_index")
        self._check_labels()
        self.mask = self._checked_mask(self.mask)

    # ------------------------------------------------------------------ validation helpers
    @property
    def source(self) -> str:
        """Where the data came from (a file path), for messages."""
        return str(self.metadata.get("source", "<in-memory sequence>"))

    def _fail(self, problem: str) -> None:
        raise EchoDataError(self.source, problem)

    def _checked_frames(self, frames: Any) -> np.ndarray:
        arr = np.asarray(frames)
        if arr.dtype.kind not in "biuf":
            self._fail(f"frames must be numeric, got dtype {arr.dtype}")
        if arr.ndim != 3:
            self._fail(f"frames must have shape (T, H, W), got rank {arr.ndim} shape {arr.shape}")
        if min(arr.shape) < 1:
            self._fail(f"frames array is empty: shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        problem = nonfinite_problem(arr)
        if problem:
            self._fail(problem)
        return arr

    def _checked_spacing(self, spacing: Any) -> tuple[float, float]:
        arr = np.asarray(spacing, dtype=np.float64).ravel()
        if arr.shape != (2,):
            self._fail(f"spacing must be (sx, sy) in mm, got {spacing!r}")
        if not (np.isfinite(arr).all() and (arr > 0).all()):
            self._fail(f"spacing must be positive and finite, got {tuple(arr.tolist())}")
        low, high = SPACING_RANGE_MM
        if ((arr < low) | (arr > high)).any():
            self._fail(f"pixel spacing {tuple(arr.tolist())} mm is outside the plausible range "
                       f"{low:g}..{high:g} mm of an echo image (wrong units or a corrupt header?)")
        return (float(arr[0]), float(arr[1]))

    def _checked_times(self, times: Any, n: int) -> np.ndarray:
        arr = np.asarray(times, dtype=np.float64)
        if arr.shape != (n,):
            self._fail(f"frame_times must have shape ({n},), got {arr.shape}")
        if not np.isfinite(arr).all():
            self._fail("frame_times contain NaN or infinite values")
        if n > 1 and not (np.diff(arr) > 0).all():
            k = int(np.argmax(np.diff(arr) <= 0))
            self._fail(f"frame_times must be strictly increasing: t[{k}]={arr[k]} s, "
                       f"t[{k + 1}]={arr[k + 1]} s")
        low, high = FRAME_INTERVAL_RANGE_S
        if SOURCE_FRAMES in self.metadata:  # frames cut from a checked sequence: gaps span many intervals
            high = np.inf
        outside = (np.diff(arr) < low) | (np.diff(arr) > high)
        if outside.any() and self.frame_times_known:  # placeholders (frame numbers) have no plausible range
            k = int(np.argmax(outside))
            step = arr[k + 1] - arr[k]
            self._fail(f"frame interval {step:.6g} s ({1 / step:.6g} frames/s) between frames {k} and "
                       f"{k + 1} is outside the plausible range {low:g}..{high:g} s "
                       f"({1 / low:g}..{1 / high:g} frames/s) of an echo cine")
        return arr

    def _checked_vector(self, value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != shape:
            self._fail(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.isfinite(arr).all():
            self._fail(f"{name} contains NaN or infinite values")
        return arr.copy()

    def _checked_index(self, index: int | None, n: int, name: str) -> int | None:
        if index is None:
            return None
        if not float(index).is_integer() or not 0 <= int(index) < n:
            self._fail(f"{name}={index} is not a frame index of a {n}-frame sequence")
        return int(index)

    def _check_labels(self) -> None:
        if self.labels is None:
            if self.label_frames is not None:
                self._fail("label_frames given without labels")
            return
        lab = label_codes(self.labels, self.source)
        n, h, w = self.frames.shape
        if lab.shape not in ((n, h, w), (h, w)):
            self._fail(f"labels of shape {lab.shape} do not match frames of shape {(n, h, w)}: "
                       f"expected {(n, h, w)} or {(h, w)}")
        self.labels = lab
        if self.label_frames is None:
            default = (self.ed_index or 0,) if lab.ndim == 2 else tuple(range(n))
            self.label_frames = default
        frames = tuple(int(i) for i in self.label_frames)
        if any(not 0 <= i < n for i in frames) or len(set(frames)) != len(frames) or not frames:
            self._fail(f"label_frames {self.label_frames} are not distinct frame indices in 0..{n - 1}")
        if lab.ndim == 2 and len(frames) != 1:
            self._fail(f"a single (H, W) label map annotates one frame, got label_frames {frames}")
        self.label_frames = frames

    def _checked_mask(self, mask: Any) -> np.ndarray | None:
        if mask is None:
            return None
        arr = np.asarray(mask)
        if arr.dtype.kind not in "biuf" or arr.shape != self.frame_shape:
            self._fail(f"mask of shape {arr.shape} and dtype {arr.dtype} is not an (H, W) = "
                       f"{self.frame_shape} field of view")
        inside = arr != 0
        if not inside.any():
            self._fail("mask is empty: no pixel lies inside the field of view")
        return inside

    # ------------------------------------------------------------------ accessors
    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return (int(self.frames.shape[1]), int(self.frames.shape[2]))

    @property
    def spacing_known(self) -> bool:
        return bool(self.metadata.get("spacing_known", True))

    @property
    def frame_times_known(self) -> bool:
        return bool(self.metadata.get("frame_times_known", True))

    @property
    def frame_rate(self) -> float:
        """Mean frames per second over the sequence (nan for a single frame)."""
        if self.n_frames < 2:
            return float("nan")
        return float((self.n_frames - 1) / (self.frame_times[-1] - self.frame_times[0]))

    def require_frames(self, minimum: int = 2) -> None:
        """Raise :class:`EchoDataError` when the sequence has fewer than ``minimum`` frames."""
        if self.n_frames < minimum:
            self._fail(f"need at least {minimum} frames, the sequence has {self.n_frames}")

    def label_map(self, index: int) -> np.ndarray:
        """The (H, W) uint8 label map annotated at frame ``index``."""
        if self.labels is None or index not in (self.label_frames or ()):
            self._fail(f"frame {index} has no label map (annotated frames: {self.label_frames})")
        return self.labels if self.labels.ndim == 2 else self.labels[index]

    @property
    def es_set_by_user(self) -> bool:
        """Whether ``es_index`` was set by the user (:meth:`with_end_systole`), not read from the file.
        The record travels in ``metadata``: change ES with :meth:`with_end_systole`, not
        ``dataclasses.replace``, which would keep it."""
        return ES_IN_FILE in self.metadata

    @property
    def es_in_file(self) -> int | None:
        """The ES frame the file gave, also when the user set another (None: the file gave none)."""
        return self.metadata[ES_IN_FILE] if self.es_set_by_user else self.es_index

    def with_end_systole(self, frame: int, option: str = "es_frame") -> "EchoSequence":
        """This sequence with end-systole set by the user to ``frame`` (0-based), over the file's ES
        (kept in ``metadata[ES_IN_FILE]``: :attr:`es_in_file`). ES is the frame of aortic valve
        closure, or of the smallest LV cavity (Lang et al. 2015); it times peak systolic strain and EF,
        and places the DLIR systole anchor (:func:`.spatial.pairs.systole_anchors`).

        Raises:
            EchoDataError: ``frame`` is not a frame of the sequence, or is its ED (naming ``option``,
                the setting the user gave).
        """
        if isinstance(frame, bool) or not float(frame).is_integer() or not 0 <= int(frame) < self.n_frames:
            self._fail(f"{option} {frame} is not a frame of this {self.n_frames}-frame sequence "
                       f"(0..{self.n_frames - 1})")
        if self.ed_index is not None and int(frame) == self.ed_index:
            self._fail(f"{option} {frame} is the file's ED frame; ES is a later frame of systole")
        return dataclasses.replace(self, es_index=int(frame), metadata={**self.metadata, ES_IN_FILE: self.es_in_file})

    def subsequence(self, indices: Any) -> "EchoSequence":
        """A new sequence with the frames ``indices`` (increasing), labels and ED/ES remapped (the
        file's ES too, when the user set another; without the user's ES frame, ES is as the file gave
        it); ``metadata[SOURCE_FRAMES]`` lists the kept frames' numbers in the first sequence cut from."""
        idx = np.arange(self.n_frames)[indices]
        idx = np.atleast_1d(idx)
        if idx.size == 0 or (np.diff(idx) <= 0).any():
            self._fail(f"subsequence indices must be increasing and non-empty, got {idx.tolist()}")
        where = {int(old): new for new, old in enumerate(idx)}
        source = self.metadata.get(SOURCE_FRAMES, range(self.n_frames))
        labels, label_frames = None, None
        if self.labels is not None:
            kept = [where[i] for i in self.label_frames if i in where]
            if kept:
                labels = self.labels if self.labels.ndim == 2 else self.labels[idx]
                label_frames = tuple(kept)
        metadata = {**{k: v for k, v in self.metadata.items() if k != ES_IN_FILE},
                    SOURCE_FRAMES: [int(source[i]) for i in idx]}
        es = where.get(self.es_index)
        if self.es_set_by_user:
            if es is None:
                es = where.get(self.es_in_file)
            else:
                metadata[ES_IN_FILE] = where.get(self.es_in_file)
        return dataclasses.replace(
            self, frames=self.frames[idx], frame_times=self.frame_times[idx], metadata=metadata,
            labels=labels, label_frames=label_frames, ed_index=where.get(self.ed_index), es_index=es)

    # ------------------------------------------------------------------ geometry
    def ijk_to_lps(self) -> np.ndarray:
        """(4, 4) matrix mapping (column, row, slice, 1) indices to LPS mm."""
        scale = np.array([self.spacing[0], self.spacing[1], self.slice_spacing])
        m = np.eye(4)
        m[:3, :3] = self.direction * scale[None, :]
        m[:3, 3] = self.origin
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """(4, 4) Slicer IJK-to-RAS matrix of each frame as a single-slice volume."""
        return LPS_TO_RAS @ self.ijk_to_lps()

    @property
    def frame_times_remedy(self) -> str:
        """What gives the frame times when the file does not: ``metadata["frame_times_remedy"]`` where a
        reader knows (a CAMUS ED + ES pair without its frame numbers), else "pass --frame-rate"."""
        return str(self.metadata.get("frame_times_remedy", "pass --frame-rate"))

    def _describe_times(self) -> str:
        """The frame-times line of :meth:`describe`: no number when the file gives no timing; the frames'
        places in the acquisition instead of a rate where they are not consecutive
        (``metadata["frame_positions"]``, a CAMUS ED + ES pair)."""
        if not self.frame_times_known:
            return f"frame times:  UNKNOWN (not in the file; {self.frame_times_remedy})"
        positions = self.metadata.get("frame_positions")
        rate = (f", frames {positions}" if positions else
                f", {self.frame_rate:.4g} frames/s" if self.n_frames > 1 else "")
        return f"frame times:  {self.frame_times[0]:.4g} .. {self.frame_times[-1]:.4g} s{rate}"

    def describe(self, labels_source: str | os.PathLike | None = None) -> str:
        """A short multi-line human-readable summary; ``labels_source``: the label file the labels were
        attached from (``--labels``), named on their line, since the ``source`` file does not hold them."""
        t, h, w = self.frames.shape
        labels = "none" if self.labels is None else \
            f"codes {sorted(np.unique(self.labels).tolist())} on frames {list(self.label_frames)}" \
            + ("" if labels_source is None else f", from {labels_source}")
        lines = [
            f"source:       {self.source}",
            f"frames:       {t} x {h} rows x {w} columns, intensity "
            f"{self.frames.min():.4g}..{self.frames.max():.4g}",
            f"spacing:      x {self.spacing[0]:.5g} mm, y {self.spacing[1]:.5g} mm"
            + ("" if self.spacing_known else "  (UNKNOWN: placeholder, not physical)"),
            self._describe_times(),
            f"ED / ES:      {_frame_or_unknown(self.ed_index)} / {_frame_or_unknown(self.es_index)}"
            + (f" (ES set by the user; the file's: {_frame_or_unknown(self.es_in_file)})" if self.es_set_by_user
               else ""),
            f"mask:         {'none' if self.mask is None else f'{self.mask.mean():.1%} of pixels inside'}",
            f"labels:       {labels}",
        ]
        for key in sorted(self.metadata):
            if key not in ("source", ES_IN_FILE):
                lines.append(f"{key + ':':<13} {self.metadata[key]}")
        return "\n".join(lines)


def _frame_or_unknown(index: int | None) -> str:
    return "not in the file" if index is None else f"frame {index}"


def geometry_from_ijk_to_ras(matrix: Any) -> dict[str, Any]:
    """Split a Slicer (4, 4) IJK-to-RAS matrix into ``spacing``, ``slice_spacing``, ``origin`` and
    ``direction`` (LPS) keyword arguments of :class:`EchoSequence`; inverse of
    :meth:`EchoSequence.ijk_to_ras`."""
    m = LPS_TO_RAS @ np.asarray(matrix, dtype=np.float64)
    scales = np.linalg.norm(m[:3, :3], axis=0)
    if (scales <= 0).any():
        raise ValueError(f"IJK-to-RAS matrix has a zero-length axis: {np.asarray(matrix).tolist()}")
    return {
        "spacing": (float(scales[0]), float(scales[1])),
        "slice_spacing": float(scales[2]),
        "origin": m[:3, 3].copy(),
        "direction": m[:3, :3] / scales[None, :],
    }


# A frame has no signal when its intensity spread is below this fraction of the sequence's range.
NO_SIGNAL_RANGE = 1e-6


def no_signal_frames(frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(T,) bool: frames of a (T, H, W) sequence without signal, whose intensity (within the
    (H, W) ``mask``) is constant up to :data:`NO_SIGNAL_RANGE` of the whole sequence's range."""
    inside = frames if mask is None else frames[:, np.asarray(mask) > 0]
    values = inside.reshape(len(frames), -1)
    highest, lowest = values.max(axis=1).astype(np.float64), values.min(axis=1).astype(np.float64)
    spread = highest - lowest  # in float64: no overflow of integer frames, no full-size copy
    return spread <= NO_SIGNAL_RANGE * max(float(highest.max() - lowest.min()), 1e-12)
