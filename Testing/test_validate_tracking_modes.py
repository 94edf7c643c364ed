"""The validation script's anchored trackings: which pairs they register."""

from benchmarks.validate_tracking_modes import systole_anchor_pairs


def test_one_anchor_in_systole_on_a_half_cycle():
    # ED -> ES over 6 frames: A = round(0.6 x 5) = 3; frames 4 and 5 through it
    assert systole_anchor_pairs(6, 5, 0.6) == [(0, 1), (0, 2), (0, 3), (3, 4), (3, 5)]
    assert systole_anchor_pairs(6, 5, 0.5) == [(0, 1), (0, 2), (2, 3), (2, 4), (2, 5)]  # round(2.5) = 2


def test_after_es_frames_near_the_returning_ed_are_direct():
    pairs = dict((t, a) for a, t in systole_anchor_pairs(20, 9, 0.6))
    assert [t for t in range(1, 20) if pairs[t] == 5] == [6, 7, 8, 9, 10, 11, 12]  # (19 - t) / 10 > 0.6
    assert all(pairs[t] == 0 for t in (*range(1, 6), *range(13, 20)))


def test_two_frames_are_one_direct_pair():
    assert systole_anchor_pairs(2, 1, 0.6) == [(0, 1)]
