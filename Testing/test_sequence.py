"""EchoSequence: validation in one place, geometry round trip, label bookkeeping."""

import dataclasses

import numpy as np
import pytest

from EchoRegistrationLib import EchoDataError, EchoSequence, geometry_from_ijk_to_ras
from EchoRegistrationLib.sequence import SOURCE_FRAMES


def make(**kw):
    args = dict(frames=np.zeros((4, 6, 5)), spacing=(0.3, 0.5), frame_times=[0, 0.02, 0.04, 0.06],
                metadata={"source": "case.nii.gz"})
    args.update(kw)
    return EchoSequence(**args)


@pytest.mark.parametrize("change, message", [
    (dict(frames=np.zeros((6, 5))), "rank 2"),
    (dict(frames=np.full((4, 6, 5), np.nan)), "NaN"),
    (dict(frames=np.array([[["a"]]])), "numeric"),
    (dict(spacing=(0.3, 0.0)), "positive"),
    (dict(spacing=(0.3, -1)), "positive"),
    (dict(spacing=(0.3,)), "(sx, sy)"),
    (dict(frame_times=[0, 0.02, 0.02, 0.06]), "strictly increasing"),
    (dict(frame_times=[0, 0.02, 0.04]), "shape (4,)"),
    (dict(frame_times=[0, 0.02, np.inf, 0.06]), "NaN or infinite"),
    (dict(labels=np.zeros((4, 5, 6), np.uint8)), "do not match"),
    (dict(labels=np.full((6, 5), 2.5)), "integer codes"),
    (dict(labels=np.full((6, 5), 300)), "0..255"),
    (dict(labels=np.zeros((6, 5), np.uint8), label_frames=(0, 1)), "one frame"),
    (dict(ed_index=4), "ed_index=4"),
    (dict(direction=np.zeros((3, 3))), "singular"),
])
def test_invalid_input_names_source_and_problem(change, message):
    with pytest.raises(EchoDataError) as info:
        make(**change)
    assert str(info.value).startswith("case.nii.gz: ")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_conversion_and_defaults():
    seq = make(frames=np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5))
    assert seq.frames.dtype == np.float32 and seq.frames[3, 5, 4] == 119
    assert seq.frame_shape == (6, 5) and seq.n_frames == 4
    assert seq.frame_rate == pytest.approx(50.0)
    unknown = make(frame_times=None)
    assert not unknown.frame_times_known and unknown.frame_times.tolist() == [0, 1, 2, 3]
    assert "frame times:  UNKNOWN (not in the file; pass --frame-rate)\n" in unknown.describe()  # no "3 s"
    assert "frame times:  0 .. 0.06 s, 50 frames/s\n" in seq.describe()
    assert "ED / ES:      not in the file / not in the file\n" in seq.describe()  # not "None / None"
    assert "ED / ES:      frame 0 / frame 2\n" in make(ed_index=0, es_index=2).describe()


def test_require_frames():
    single = make(frames=np.zeros((1, 6, 5)), frame_times=[0.0])
    with pytest.raises(EchoDataError, match="need at least 2 frames, the sequence has 1"):
        single.require_frames(2)
    make().require_frames(2)


def test_labels_single_map_and_subsequence():
    lab = np.zeros((6, 5), np.uint8)
    lab[2:4, 1:3] = 2
    seq = make(labels=lab, ed_index=1, es_index=3)
    assert seq.label_frames == (1,)
    assert seq.label_map(1)[2, 1] == 2
    with pytest.raises(EchoDataError, match="frame 0 has no label map"):
        seq.label_map(0)
    sub = seq.subsequence([1, 2, 3])
    assert (sub.ed_index, sub.es_index, sub.label_frames) == (0, 2, (0,))
    assert sub.frame_times.tolist() == pytest.approx([0.02, 0.04, 0.06])
    dropped = seq.subsequence([2, 3])
    assert dropped.labels is None and dropped.ed_index is None and dropped.es_index == 1
    assert (sub.metadata[SOURCE_FRAMES], sub.subsequence([0, 2]).metadata[SOURCE_FRAMES]) == ([1, 2, 3], [1, 3])
    # frames 12 apart stay a valid subsequence (the quick look of a frame far from the reference), with
    # unknown frame times (frame numbers, not seconds) and with known ones (a long cine) alike; a file's
    # own frames 12 s apart are refused
    unknown = make(frames=np.zeros((13, 6, 5)), frame_times=None)
    assert unknown.subsequence([0, 12]).frame_times.tolist() == [0, 12]
    known = make(frames=np.zeros((25, 6, 5)), frame_times=np.arange(25) * 0.5)
    assert known.subsequence([0, 3, 24]).frame_times.tolist() == [0.0, 1.5, 12.0]
    with pytest.raises(EchoDataError, match="frame interval 12 s"):
        make(frames=np.zeros((2, 6, 5)), frame_times=[0.0, 12.0])
    with pytest.raises(EchoDataError, match="frame interval 1e-06 s"):
        dataclasses.replace(known.subsequence([0, 1]), frame_times=[0.0, 1e-6])  # the lower bound holds


def test_replace_revalidates():
    with pytest.raises(EchoDataError, match="positive"):
        dataclasses.replace(make(), spacing=(0.0, 1.0))


def test_ijk_to_ras_round_trip():
    angle = 0.3
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, -1.0]])
    seq = make(origin=[10.0, -20.0, 5.0], direction=direction, slice_spacing=2.0)
    m = seq.ijk_to_ras()
    # pixel (row 2, column 3) -> LPS origin + 3*sx*d0 + 2*sy*d1, then RAS flips x and y
    lps = seq.origin + 3 * 0.3 * direction[:, 0] + 2 * 0.5 * direction[:, 1]
    assert m @ [3, 2, 0, 1] == pytest.approx([-lps[0], -lps[1], lps[2], 1])
    geo = geometry_from_ijk_to_ras(m)
    assert geo["spacing"] == pytest.approx((0.3, 0.5)) and geo["slice_spacing"] == pytest.approx(2.0)
    assert geo["origin"] == pytest.approx(seq.origin) and geo["direction"] == pytest.approx(direction)
    again = dataclasses.replace(seq, **geo)
    assert np.allclose(again.ijk_to_ras(), m, atol=1e-12)
