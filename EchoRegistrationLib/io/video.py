"""Echo cine loops stored as ordinary video files (``.avi``, ``.mp4``, ``.mov``), read with OpenCV.

EchoNet-Dynamic style clips are 112 x 112 grayscale images stored as RGB AVI at about 50 frames/s.
A video carries no physical pixel size: the sequence gets the placeholder spacing (1.0, 1.0) mm with
``metadata["spacing_known"] = False``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..sequence import EchoDataError, EchoSequence, record_warning
from .colour import coloured_pixel_count, rgb_to_luma
from .timing import checked_frame_rate, given_frame_rate

# A pixel counts as coloured (an overlay such as colour Doppler) when its channels spread by more
# than this many grey levels; lossy codecs leave a few levels of chroma noise on gray content.
_COLOUR_SPREAD_LEVELS = 16


def is_video(path: str | os.PathLike) -> bool:
    """True when the file starts like an AVI (``RIFF....AVI ``) or an MP4 / QuickTime file
    (``ftyp`` box at offset 4). Checks content, not the file name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[4:8] == b"ftyp"


def read_video(path: str | os.PathLike, *, frame_rate: float | None = None) -> EchoSequence:
    """Read a video into an :class:`EchoSequence` of (T, H, W) float32 BT.601 luma frames (0..255).

    Frame times are ``i / fps`` seconds. ``fps`` is ``frame_rate`` when given (e.g. the FPS column of
    EchoNet's FileList.csv), else the container's frame rate; when neither is known, ``frame_times``
    is None and ``metadata["note"]`` says so. The container's rate is a playback rate (OpenCV's FFmpeg
    backend reports a guessed 25 frames/s for a stream without timing; exports often use a fixed
    rate): a ``frame_rate`` that differs from it replaces it with an :class:`EchoDataWarning` naming
    both (:mod:`.timing`; so does a DICOM's ``RecommendedDisplayFrameRate``; the other formats record acquisition
    times and refuse such a rate). Pass
    ``frame_rate`` whenever the true rate is known from elsewhere.

    Metadata: ``source``; ``codec`` (FourCC text); ``fps`` (the container's frame rate, None when
    absent); ``colour_pixel_fraction`` (fraction of pixels over all frames whose colour channels
    differ by more than a few grey levels: colour overlays, Doppler); ``spacing_known`` False;
    ``note`` (placeholder spacing, unknown times, a caller's frame rate that agrees with the container);
    ``warnings`` (frames missing from a truncated file, the container's rate replaced by the caller's;
    also issued as :class:`EchoDataWarning`).

    Raises:
        FileNotFoundError: no such file.
        EchoDataError: OpenCV cannot open the file or decodes no frame from it; ``frame_rate`` not
            positive.
    """
    source = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{source}: no such file")
    checked_frame_rate(source, frame_rate)
    import cv2  # here, not at import: 3D Slicer does not bundle OpenCV

    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise EchoDataError(source, "OpenCV (FFmpeg) cannot open the file as a video")
        container_fps = float(capture.get(cv2.CAP_PROP_FPS))
        declared_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        codec = _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        frames, coloured_pixels = _decode_frames(capture)
    finally:
        capture.release()
    if not frames:
        raise EchoDataError(source, "the video has no decodable frames")

    fps_known = math.isfinite(container_fps) and container_fps > 0
    timing = given_frame_rate(source, len(frames), frame_rate,
                              np.arange(len(frames)) / container_fps if fps_known else None,
                              "container's frame rate" if fps_known else "none in the container", playback=True)
    notes = [timing.note] if timing.note else []
    if timing.times is None:
        notes.append("the container has no frame rate and none was given: frame times unknown")
    metadata: dict[str, Any] = {
        "source": source,
        "codec": codec,
        "fps": container_fps if fps_known else None,
        "frame_times_source": timing.times_source,
        "colour_pixel_fraction": coloured_pixels / (len(frames) * frames[0].size),
        "spacing_known": False,
        "note": "; ".join(["videos carry no pixel size: spacing (1, 1) mm is a placeholder", *notes]),
    }
    if declared_frames > len(frames):
        record_warning(metadata, f"the container declares {declared_frames} frames, only {len(frames)} "
                                 "could be decoded (truncated or damaged file): those were read")
    if timing.warning:
        record_warning(metadata, timing.warning)
    return EchoSequence(frames=np.stack(frames), spacing=(1.0, 1.0), frame_times=timing.times, metadata=metadata)


def _decode_frames(capture: Any) -> tuple[list[np.ndarray], int]:
    """All frames as (H, W) float32 luma, and the number of coloured pixels over all of them."""
    frames: list[np.ndarray] = []
    coloured = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            return frames, coloured
        coloured += coloured_pixel_count(bgr, _COLOUR_SPREAD_LEVELS)
        frames.append(rgb_to_luma(bgr[..., ::-1]))


def _fourcc_text(code: float) -> str:
    """The four-character codec code as text ('' when unknown)."""
    raw = (int(code) & 0xFFFFFFFF).to_bytes(4, "little")
    return raw.decode("ascii", errors="replace").strip("\x00 ")
