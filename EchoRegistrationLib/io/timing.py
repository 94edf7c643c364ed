"""The caller's frame rate against the frame times a file records: one rule for every reader.

``frame_rate`` (frames/s: ``--frame-rate``, a batch CSV's ``frame_rate`` column, ``load_sequence(...,
frame_rate=)``) is for files that record no frame times; the times are then ``i / frame_rate`` s (``(p_i -
p_0) / frame_rate`` where a file holds frames ``p_i`` of an acquisition only: a CAMUS ED + ES pair).

* A file that records its frame times (DICOM ``FrameTimeVector`` / ``FrameTime`` / ``CineRate``, a
  ``.seq.nrrd`` time index in s or ms, the ``FrameTimes`` field of MetaImage / NRRD, a CAMUS Info file's
  ``FrameRate``) keeps them: a frame
  rate that contradicts them is refused (an :class:`EchoDataError` naming the file and the rate it
  records), one that agrees with them (within :data:`RATE_TOLERANCE`) changes nothing. The recorded
  times are what the scanner measured; a rate typed over them would be a silent wrong number.
* A video container's frame rate is a playback rate, often not the acquisition's (clips exported at a
  fixed 25 or 30 frames/s; OpenCV reports a guessed 25 for a stream without one), and the true rate
  comes from elsewhere (EchoNet's ``FileList.csv``): the caller's rate replaces it, with a warning
  naming both. So does a DICOM whose only timing is ``RecommendedDisplayFrameRate``, the rate to
  display the frames at (DICOM PS3.3 C.7.6.5, Cine Module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sequence import EchoDataError

#: Relative difference under which a given frame rate agrees with the file's mean frame rate.
RATE_TOLERANCE = 1e-3
#: How ``metadata["frame_times_source"]`` starts when the times come from the caller's frame rate.
FROM_FRAME_RATE = "frame_rate argument"


@dataclass(frozen=True)
class FrameTiming:
    """The frame times a reader gives after considering the caller's frame rate.

    Attributes:
        times: (T,) s, or None when neither the file nor the caller gives them.
        times_source: where the times come from, for ``metadata["frame_times_source"]``: what the
            file records them in, or "frame_rate argument (N frames/s)".
        note: what was done with the caller's rate, for the metadata (None without one).
        warning: a video container's rate replaced by the caller's (record it as a warning), else None.
    """

    times: np.ndarray | None
    times_source: str
    note: str | None = None
    warning: str | None = None


def checked_frame_rate(source: str, frame_rate: float | None) -> float | None:
    """``frame_rate`` as a float (None stays None).

    Raises:
        EchoDataError: naming ``source``: not a positive finite number of frames/s.
    """
    if frame_rate is None:
        return None
    if isinstance(frame_rate, bool) or not (math.isfinite(frame_rate) and frame_rate > 0):
        raise EchoDataError(source, f"frame_rate must be a positive number of frames/s, got {frame_rate}")
    return float(frame_rate)


def given_frame_rate(source: str, n_frames: int, frame_rate: float | None, recorded: np.ndarray | None,
                     recorded_by: str, *, playback: bool = False,
                     positions: np.ndarray | None = None) -> FrameTiming:
    """The frame times of a file of ``n_frames`` frames that records ``recorded`` ((T,) s, None: no
    timing) in ``recorded_by`` (e.g. "FrameTime (20 ms)"), given the caller's ``frame_rate`` (frames/s,
    None: not given), by the rule of this module. ``playback``: ``recorded`` comes from a video
    container's playback rate, which the caller's rate replaces with a warning. ``positions``: (T,)
    the frames' numbers in the acquisition, increasing, where the file holds some of its frames only
    (a CAMUS patient's ED and ES frames); the times are then ``(positions - positions[0]) /
    frame_rate`` (default: every frame, ``0 .. T - 1``).

    Raises:
        EchoDataError: naming ``source``: ``frame_rate`` is not a positive finite number, or (not
            ``playback``) it contradicts the recorded times (the message gives their rate).
    """
    frame_rate = checked_frame_rate(source, frame_rate)
    if frame_rate is None:
        return FrameTiming(recorded, recorded_by)
    positions = np.arange(n_frames, dtype=float) if positions is None else np.asarray(positions, dtype=float)
    if positions.shape != (n_frames,) or np.any(np.diff(positions) <= 0):
        raise ValueError(f"positions must be {n_frames} increasing frame numbers, got {positions.tolist()}")
    given = (positions - positions[0]) / frame_rate
    from_rate = f"{FROM_FRAME_RATE} ({frame_rate:g} frames/s)"
    if recorded is None:
        return FrameTiming(given, from_rate, f"frame times from the {from_rate}; the file records none")
    if n_frames < 2:
        return FrameTiming(recorded, recorded_by, f"frame_rate {frame_rate:g} frames/s unused: a single frame "
                                                  "has no interval")
    rate = float((positions[-1] - positions[0]) / (recorded[-1] - recorded[0]))
    if math.isclose(frame_rate, rate, rel_tol=RATE_TOLERANCE):
        return FrameTiming(recorded, recorded_by, f"frame_rate {frame_rate:g} frames/s agrees with the "
                                                  f"{recorded_by}; the file's times are kept")
    named = f"{rate:.4g} frames/s" in recorded_by  # the rate is in the source's name already
    if playback:
        shown = recorded_by if named else f"{recorded_by} ({rate:.4g} frames/s"
        shown = shown[:-1] if shown.endswith(")") else shown  # one parenthesis: the rate, then what it is
        return FrameTiming(given, from_rate, warning=f"frame times from the {from_rate}, not from the "
                                                     f"{shown}, a playback rate)")
    records = f"records its frame times: {recorded_by}" if named else \
        f"records its frame times ({recorded_by}): {rate:.4g} frames/s"
    raise EchoDataError(source, f"frame rate {frame_rate:g} frames/s given (--frame-rate, frame_rate), but the "
                                f"file {records}; a frame rate is only for files that record no time: leave it out")
