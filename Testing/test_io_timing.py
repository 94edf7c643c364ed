"""The caller's frame rate against the times a file records (io.timing): one rule for every reader."""

from __future__ import annotations

import numpy as np
import pytest

from EchoRegistrationLib.io.timing import given_frame_rate
from EchoRegistrationLib.sequence import EchoDataError

RECORDED = np.arange(4) / 49.38  # a file's own times, 49.38 frames/s


def test_no_frame_rate_keeps_what_the_file_records():
    kept = given_frame_rate("f", 4, None, RECORDED, "FrameTime (20.25 ms)")
    assert kept.times is RECORDED and kept.times_source == "FrameTime (20.25 ms)" and kept.note is None
    unknown = given_frame_rate("f", 4, None, None, "none")
    assert unknown.times is None and unknown.times_source == "none"


def test_frame_rate_times_a_file_that_records_none():
    timing = given_frame_rate("f", 3, 20.0, None, "none")
    np.testing.assert_allclose(timing.times, [0.0, 0.05, 0.1])
    assert timing.times_source == "frame_rate argument (20 frames/s)" and "the file records none" in timing.note


@pytest.mark.parametrize("playback", [False, True])
def test_a_rate_that_agrees_keeps_the_file_times(playback):
    timing = given_frame_rate("f", 4, 49.38, RECORDED + 0.0, "index", playback=playback)
    np.testing.assert_array_equal(timing.times, RECORDED)
    assert timing.times_source == "index" and "agrees with the index" in timing.note and timing.warning is None


def test_a_contradicting_rate_is_refused_naming_the_file_and_its_rate():
    with pytest.raises(EchoDataError, match=r"^cine\.mha: frame rate 60 frames/s given \(--frame-rate, frame_rate\), "
                                            r"but the file records its frame times \(FrameTimes header field\): "
                                            r"49\.38 frames/s; .*leave it out$"):
        given_frame_rate("cine.mha", 4, 60.0, RECORDED, "FrameTimes header field")


def test_a_video_playback_rate_is_replaced_with_a_warning():
    timing = given_frame_rate("clip.avi", 4, 60.0, RECORDED, "container's frame rate", playback=True)
    np.testing.assert_allclose(timing.times, np.arange(4) / 60.0)
    assert timing.warning == ("frame times from the frame_rate argument (60 frames/s), not from the container's "
                              "frame rate (49.38 frames/s, a playback rate)")


@pytest.mark.parametrize("rate", [0.0, -5.0, float("nan"), float("inf")])
def test_a_rate_that_is_not_a_positive_number_is_refused(rate):
    with pytest.raises(EchoDataError, match=r"^f: frame_rate must be a positive number of frames/s"):
        given_frame_rate("f", 4, rate, None, "none")


def test_a_single_frame_has_no_rate_to_contradict():
    timing = given_frame_rate("f", 1, 30.0, np.zeros(1), "single frame")
    assert timing.times.tolist() == [0.0] and timing.times_source == "single frame" and "unused" in timing.note


def test_frames_of_an_acquisition_are_timed_by_their_positions():
    """A file holding frames 3 and 10 of an acquisition (a CAMUS ED + ES pair): 7 intervals apart, and a rate
    is compared with what the recorded times imply over those 7 intervals."""
    positions = np.array([3.0, 10.0])
    timing = given_frame_rate("pair", 2, 20.0, None, "not recorded", positions=positions)
    assert timing.times == pytest.approx([0.0, 0.35])
    recorded = np.array([0.0, 0.35])
    assert given_frame_rate("pair", 2, 20.0, recorded, "Info", positions=positions).times is recorded  # agrees
    with pytest.raises(EchoDataError, match=r"pair: frame rate 25 frames/s given .*\(Info\): 20 frames/s"):
        given_frame_rate("pair", 2, 25.0, recorded, "Info", positions=positions)
    with pytest.raises(ValueError, match=r"positions must be 2 increasing frame numbers, got \[10.0, 3.0\]"):
        given_frame_rate("pair", 2, 20.0, None, "not recorded", positions=positions[::-1])
