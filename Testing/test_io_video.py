"""Video files (AVI / MP4) read with OpenCV: frame count, timing, grayscale values, geometry."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from EchoRegistrationLib import EchoDataError, EchoDataWarning
from EchoRegistrationLib.io.video import is_video, read_video, rgb_to_luma

N_FRAMES, SIZE, SQUARE, STEP = 12, 112, 16, 4
SQUARE_TOP, SQUARE_LEFT, SQUARE_VALUE = 40, 10, 230


def gray_frames() -> np.ndarray:
    """(T, 112, 112) uint8: a horizontal ramp 20..75 with a bright square moving STEP px right per frame."""
    ramp = (20 + np.arange(SIZE) // 2).astype(np.uint8)
    frames = np.repeat(ramp[None, None, :], SIZE, axis=1).repeat(N_FRAMES, axis=0)
    for i, frame in enumerate(frames):
        left = SQUARE_LEFT + STEP * i
        frame[SQUARE_TOP:SQUARE_TOP + SQUARE, left:left + SQUARE] = SQUARE_VALUE
    return frames


def write_video(path: Path, codec: str, bgr_frames: np.ndarray, fps: float = 50.0) -> Path:
    height, width = bgr_frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    assert writer.isOpened(), f"this OpenCV build cannot write {codec!r}"
    for frame in bgr_frames:
        writer.write(frame)
    writer.release()
    return path


def as_bgr(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def square_centres(frames: np.ndarray) -> np.ndarray:
    """(T, 2) centroid (row, column) of the pixels brighter than half-way to the square."""
    rows, cols = np.indices(frames.shape[1:])
    bright = frames > 150
    count = bright.sum(axis=(1, 2))
    return np.stack([(bright * rows).sum(axis=(1, 2)) / count, (bright * cols).sum(axis=(1, 2)) / count], 1)


EXPECTED_CENTRES = np.stack([np.full(N_FRAMES, SQUARE_TOP + (SQUARE - 1) / 2),
                             SQUARE_LEFT + STEP * np.arange(N_FRAMES) + (SQUARE - 1) / 2], axis=1)


def test_lossless_avi_is_read_exactly(tmp_path):
    gray = gray_frames()
    seq = read_video(write_video(tmp_path / "lossless.avi", "FFV1", as_bgr(gray), fps=50.0))
    assert seq.frames.shape == (N_FRAMES, SIZE, SIZE) and seq.frames.dtype == np.float32
    np.testing.assert_array_equal(seq.frames, gray.astype(np.float32))
    np.testing.assert_allclose(seq.frame_times, np.arange(N_FRAMES) * 0.02, rtol=0, atol=1e-15)
    assert seq.frame_rate == pytest.approx(50.0, rel=1e-12)
    np.testing.assert_allclose(square_centres(seq.frames), EXPECTED_CENTRES, atol=1e-12)
    assert seq.metadata["codec"].lower() == "ffv1" and seq.metadata["fps"] == 50.0
    assert seq.metadata["colour_pixel_fraction"] == 0.0
    assert seq.spacing == (1.0, 1.0) and not seq.spacing_known and seq.frame_times_known
    assert "placeholder" in seq.metadata["note"]


# Tolerances measured on this content: MJPEG stays within 1 grey level on the smooth ramp; mpeg4
# (mp4v) goes through limited-range YUV 4:2:0 and comes back about 2 levels darker.
@pytest.mark.parametrize("name, codec, fps, mean_error, ramp_error", [
    ("lossy.avi", "MJPG", 30.0, 1.0, 1.5), ("clip.mp4", "mp4v", 25.0, 3.0, 6.0)])
def test_lossy_video_values_and_motion(tmp_path, name, codec, fps, mean_error, ramp_error):
    gray = gray_frames()
    seq = read_video(write_video(tmp_path / name, codec, as_bgr(gray), fps=fps))
    assert seq.n_frames == N_FRAMES
    np.testing.assert_allclose(seq.frame_times, np.arange(N_FRAMES) / fps, rtol=1e-12)
    error = np.abs(seq.frames - gray)
    assert error.mean() < mean_error
    ramp = error[:, :SQUARE_TOP - 4]  # smooth ramp rows, away from the square's sharp edges
    assert ramp.max() <= ramp_error
    np.testing.assert_allclose(square_centres(seq.frames), EXPECTED_CENTRES, atol=0.25)
    assert seq.metadata["colour_pixel_fraction"] == 0.0  # chroma noise stays below the threshold


def test_mp4_fourcc_is_reported(tmp_path):
    seq = read_video(write_video(tmp_path / "clip.mp4", "mp4v", as_bgr(gray_frames()[:2])))
    assert seq.metadata["codec"].upper() in ("MP4V", "FMP4")


def test_echonet_style_rgb_gray_avi(tmp_path):
    """EchoNet-Dynamic clips: 112 x 112 gray frames stored as 3-channel MJPG AVI at 50 frames/s."""
    rng = np.random.default_rng(7)
    speckle = rng.integers(0, 256, (N_FRAMES, SIZE, SIZE), dtype=np.uint8)
    smooth = cv2.GaussianBlur(speckle.transpose(1, 2, 0), (0, 0), 2.0).transpose(2, 0, 1)
    seq = read_video(write_video(tmp_path / "0X1A2B3C4D5E6F.avi", "MJPG", as_bgr(smooth), fps=50.0))
    assert seq.frames.shape == (N_FRAMES, 112, 112)
    assert seq.metadata["fps"] == 50.0 and seq.frame_times[-1] == pytest.approx((N_FRAMES - 1) / 50.0)
    assert seq.metadata["colour_pixel_fraction"] == 0.0
    assert np.abs(seq.frames - smooth).mean() < 1.5
    assert seq.metadata["source"].endswith("0X1A2B3C4D5E6F.avi")


def test_colour_overlay_fraction_and_luma(tmp_path):
    gray = gray_frames()[:4]
    bgr = as_bgr(gray)
    bgr[:, 90:100, 0:28] = (0, 0, 255)  # a red overlay: 10 x 28 pixels per frame, BGR order
    seq = read_video(write_video(tmp_path / "overlay.avi", "FFV1", bgr))
    assert seq.metadata["colour_pixel_fraction"] == pytest.approx(10 * 28 / SIZE**2, abs=1e-15)
    np.testing.assert_allclose(seq.frames[:, 90:100, 0:28], 0.299 * 255, rtol=1e-6)
    np.testing.assert_array_equal(seq.frames[:, :90], gray[:, :90])


def test_rgb_to_luma_weights():
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [77, 77, 77]])
    np.testing.assert_allclose(rgb_to_luma(rgb), [76.245, 149.685, 29.07, 77.0], rtol=1e-6)
    assert rgb_to_luma(rgb)[3] == 77.0  # gray stays exact


def test_given_frame_rate_wins_over_container_with_a_warning(tmp_path):
    """A container's rate is a playback rate: the caller's (EchoNet's FPS column) replaces it, and the
    user is warned (it was only a note in the metadata), naming both rates."""
    path = write_video(tmp_path / "rate.avi", "FFV1", as_bgr(gray_frames()[:5]), fps=50.0)
    with pytest.warns(EchoDataWarning, match=r"rate\.avi: frame times from the frame_rate argument \(40 frames/s\), "
                                             r"not from the container's frame rate \(50 frames/s, a playback rate\)"):
        seq = read_video(path, frame_rate=40.0)
    np.testing.assert_allclose(seq.frame_times, np.arange(5) / 40.0, rtol=1e-12)
    assert seq.metadata["fps"] == 50.0 and "not from the container's frame rate" in seq.metadata["warnings"][0]
    assert seq.metadata["frame_times_source"] == "frame_rate argument (40 frames/s)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same rate: no warning, the container's times
        same = read_video(path, frame_rate=50.0)
    assert "agrees with the container's frame rate" in same.metadata["note"] and "warnings" not in same.metadata


def test_is_video_checks_content(tmp_path):
    avi = write_video(tmp_path / "a.avi", "MJPG", as_bgr(gray_frames()[:2]))
    mp4 = write_video(tmp_path / "b.mp4", "mp4v", as_bgr(gray_frames()[:2]))
    disguised = tmp_path / "c.bin"
    disguised.write_bytes(avi.read_bytes())
    text = tmp_path / "d.avi"
    text.write_text("RIFF but not a video")
    assert is_video(avi) and is_video(mp4) and is_video(disguised)
    assert not is_video(text) and not is_video(tmp_path / "missing.avi")


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(200), b"\x13" * 5000])
def test_unreadable_video_names_the_file(tmp_path, content):
    path = tmp_path / "broken.avi"
    path.write_bytes(content)
    with pytest.raises(EchoDataError) as error:
        read_video(path)
    assert str(error.value).startswith(str(path))


def test_truncated_video_keeps_the_decodable_frames_and_says_so(tmp_path):
    gray = gray_frames()
    path = write_video(tmp_path / "cut.avi", "FFV1", as_bgr(gray))
    whole = path.read_bytes()
    path.write_bytes(whole[:int(len(whole) * 0.8)])
    with pytest.warns(EchoDataWarning, match=rf"cut\.avi: the container declares {N_FRAMES} frames, only"):
        seq = read_video(path)
    assert 1 <= seq.n_frames < N_FRAMES
    np.testing.assert_array_equal(seq.frames, gray[:seq.n_frames])
    assert f"declares {N_FRAMES} frames, only {seq.n_frames} could be decoded" in seq.metadata["warnings"][0]

    path.write_bytes(whole[:2000])  # the header and the start of the first frame
    with pytest.raises(EchoDataError, match=r"cut\.avi: OpenCV \(FFmpeg\) cannot open"):
        read_video(path)


def test_video_without_a_decodable_frame(tmp_path):
    path = write_video(tmp_path / "half.avi", "MJPG", as_bgr(gray_frames()))
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # FFmpeg opens it, decodes nothing
    with pytest.raises(EchoDataError, match=r"half\.avi: the video has no decodable frames"):
        read_video(path)


def test_missing_file_and_bad_frame_rate(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.avi"):
        read_video(tmp_path / "nothing.avi")
    path = write_video(tmp_path / "ok.avi", "FFV1", as_bgr(gray_frames()[:2]))
    with pytest.raises(EchoDataError, match=r"ok\.avi: frame_rate must be a positive"):
        read_video(path, frame_rate=0.0)
