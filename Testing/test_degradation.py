"""The simulator's degradation model: each effect present with its known size, off means unchanged,
deterministic by seed."""

import numpy as np
import pytest

from EchoRegistrationLib.sequence import EchoSequence
from EchoRegistrationLib.simulation.degradation import (DARK_GREY, Degradation, degrade_frames,
                                                        degrade_sequence, random_degradation)

SIZE = 96


@pytest.fixture(scope="module")
def clean():
    """(3, 96, 96) frames of uniform grey 100 inside a 70-degree sector from the top centre, with
    the depth (fraction) and angle (fraction of the half opening) of each pixel."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    dx, dy = cols - (SIZE - 1) / 2, rows
    depth = np.hypot(dx, dy) / (SIZE - 1)
    angle = np.arctan2(dx, dy) / np.deg2rad(35)
    inside = (np.abs(angle) <= 1) & (depth <= 1) & (depth > 0)
    frames = np.where(inside, 100.0, 0.0)[None].repeat(3, axis=0).astype(np.float32)
    return frames, depth, angle, inside


def _degrade(frames, **strengths):
    return degrade_frames(frames, Degradation(**strengths), seed=3)


def test_all_off_leaves_frames_unchanged(clean):
    frames = clean[0]
    assert np.array_equal(degrade_frames(frames, Degradation(), seed=1), frames)


def test_dynamic_range_compresses_grey_levels_exactly(clean):
    frames, *_ , inside = clean
    out = _degrade(frames, dynamic_range=0.5)
    expected = 255 * (DARK_GREY * 0.5) + 0.5 * 100.0
    assert np.allclose(out[:, inside], expected, atol=1e-3)
    assert np.all(out[:, ~inside] == 0)


def test_haze_brightens_the_mid_field_most(clean):
    frames, depth, _, inside = clean
    added = _degrade(frames, haze=0.3)[0] - frames[0]
    mid = added[inside & (depth > 0.4) & (depth < 0.55)].mean()
    near = added[inside & (depth < 0.08)].mean()
    assert 0.3 * 255 * 0.5 < mid <= 0.3 * 255 + 1e-3  # the fog's peak level, textured
    assert near < 0.6 * mid


def test_clutter_decays_with_depth(clean):
    frames, depth, _, inside = clean
    added = _degrade(frames, clutter=0.4, clutter_depth=0.1)[0] - frames[0]
    near, far = added[inside & (depth < 0.05)].mean(), added[inside & (depth > 0.5)].mean()
    assert near > 0.4 * 255 * 0.3  # about 0.6 of the level at the probe, e-folding over 0.1 depth
    assert far < 0.01 * near


def test_reverberation_adds_bands_of_the_given_level(clean):
    frames, depth, _, inside = clean
    added = _degrade(frames, reverberation=0.2, reverberation_spacing=0.2)[0] - frames[0]
    profile = [added[inside & (np.abs(depth - d) < 0.005)].mean() for d in np.linspace(0.05, 0.95, 181)]
    assert max(profile) == pytest.approx(0.2 * 255, rel=0.1)  # the first band's peak
    assert min(profile) < 0.05 * max(profile)  # dark between the bands


def test_dropout_blackens_a_sector(clean):
    frames, _, angle, inside = clean
    out = _degrade(frames, dropout=1.0, dropout_width=0.2)[0]
    dark = (out < 5) & inside
    # one or two sectors of 0.2 of the opening each (soft edges shave a little off)
    assert 0.1 < dark.sum() / inside.sum() < 0.45
    assert np.allclose(out[inside & ~dark & (out > 99.9)], 100.0)
    columns_dark = np.unique(np.round(angle[dark], 1))
    assert np.ptp(columns_dark) < 1.2  # angular wedges, not scattered pixels


def test_noise_is_redrawn_each_frame_with_the_given_level(clean):
    frames, *_, inside = clean
    out = _degrade(frames, noise=0.05)
    difference = (out[1] - out[0])[inside]
    assert difference.std() == pytest.approx(0.05 * 255 * np.sqrt(2), rel=0.3)


def test_deterministic_by_seed(clean):
    frames = clean[0]
    strong = random_degradation(np.random.default_rng(0))
    a = degrade_frames(frames, strong, seed=5)
    assert np.array_equal(a, degrade_frames(frames, strong, seed=5))
    assert not np.array_equal(a, degrade_frames(frames, strong, seed=6))


def test_degrade_sequence_keeps_the_truth_and_records_the_degradation(clean):
    frames, *_ = clean
    labels = np.zeros(frames.shape, dtype=np.uint8)
    labels[:, 40:50, 40:50] = 2
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), labels=labels, ed_index=0, es_index=2)
    degraded = degrade_sequence(seq, seed=11)
    assert np.array_equal(degraded.labels, seq.labels) and degraded.spacing == seq.spacing
    assert degraded.metadata["degradation"]["seed"] == 11
    assert not np.array_equal(degraded.frames, seq.frames)
    assert np.array_equal(degrade_sequence(seq, seed=11).frames, degraded.frames)


def test_bad_strengths_are_refused():
    with pytest.raises(ValueError, match="haze"):
        Degradation(haze=1.5)
    with pytest.raises(ValueError, match="dynamic_range"):
        Degradation(dynamic_range=0.0)
