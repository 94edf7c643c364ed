"""The SIMUS family of the generalisation benchmark (benchmarks/simus_family.py): its truth and its
convention. The truth needs no simulator; the check that the images move as the truth says needs
pymust (the benchmark extra) and is skipped without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.simus_family import STRAIN_LONG, _axis_coordinates, case_truth, draw_case, output_grid
from EchoRegistrationLib.sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoSequence
from EchoRegistrationLib.spatial import field_to_torch, folding_fraction, warp
from EchoRegistrationLib.strain import compute_strain
from EchoRegistrationLib.strain.compute import result_from_displacement
from EchoRegistrationLib.strain.myocardium import myocardium_from_labels

SEEDS = (30_000, 30_001, 30_002)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_truth_starts_at_rest_and_shortens_the_wall_as_drawn(seed):
    labels, truth, sector = case_truth(seed, 4)
    assert truth.shape == (4, *labels.shape, 2) and not np.any(labels[~sector])
    assert (labels == LABEL_LV).sum() > 5000 and (labels == LABEL_MYOCARDIUM).sum() > 3000
    assert np.abs(truth[0]).max() == 0
    # frames reach 1/4 and 3/4 of the ES motion: (1 - cos(pi k / 3)) / 2
    np.testing.assert_allclose(truth[1], 0.25 * truth[3], atol=1e-5)
    np.testing.assert_allclose(truth[2], 0.75 * truth[3], atol=1e-5)
    # the project's strain module on the true fields: GLS within the drawn longitudinal strains (a
    # hypokinetic region lowers it, smoothing and the endocardial contour move it by a little)
    seq = EchoSequence(frames=np.zeros((4, *labels.shape), np.float32), spacing=(0.4, 0.4),
                       frame_times=np.linspace(0, 0.3, 4), labels=labels, ed_index=0, es_index=3)
    registration = result_from_displacement(seq, truth, 0)
    # blank frames: nothing to judge the true fields by (their NCC with the reference 0 would flag them as
    # measuring no motion, and the peak would be NaN); the true fields are the motion
    registration.similarity_after[:] = 1.0
    strain = compute_strain(seq, registration, myocardium_from_labels(labels, (0.4, 0.4)))
    gls = strain.peaks()["GLS endocardial"]["peak_pct"]
    assert -100 * STRAIN_LONG[1] - 3 < gls < -100 * STRAIN_LONG[0] / 2
    assert float(folding_fraction(field_to_torch(truth), (0.4, 0.4)).max()) == 0


def test_the_apex_stays_and_the_base_descends_towards_it():
    seed = SEEDS[0]
    geometry, motion = draw_case(seed)
    labels, truth, _ = case_truth(seed, 2)
    x, z, _ = output_grid()
    t, s = _axis_coordinates(x, z, geometry)
    wall = labels == LABEL_MYOCARDIUM
    apex = wall & (t < 5)
    base = wall & (t > geometry["length"] - 8)
    angle = np.deg2rad(geometry["tilt_deg"])
    along = truth[1, ..., 0] * np.sin(angle) + truth[1, ..., 1] * np.cos(angle)  # towards the base
    assert np.abs(along[apex]).mean() < 1.5
    expected = min(motion["septal"], motion["lateral"]) * geometry["length"]
    assert along[base].mean() < -0.6 * expected  # several mm towards the apex


def test_the_images_move_as_the_truth_says():
    pytest.importorskip("pymust", reason="pymust (the benchmark extra) is not installed")
    from benchmarks.simus_family import simulate_frames

    seed = SEEDS[1]
    labels, truth, sector = case_truth(seed, 2)
    frames = simulate_frames(seed, 2, scatterers_per_mm2=0.5)  # sparse: a few seconds
    assert frames.shape == (2, *labels.shape) and frames[:, sector].std() > 10

    def ncc(a, b):
        heart = (labels == LABEL_MYOCARDIUM) | (labels == LABEL_LV)
        a, b = a[heart] - a[heart].mean(), b[heart] - b[heart].mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

    es = torch.from_numpy(frames[1])[None, None]
    pulled = warp(es, field_to_torch(truth[1:]), (0.4, 0.4))[0, 0].numpy()  # ES sampled at p + u(p)
    pushed = warp(es, field_to_torch(-truth[1:]), (0.4, 0.4))[0, 0].numpy()  # the wrong sign
    before, right, wrong = ncc(frames[0], frames[1]), ncc(frames[0], pulled), ncc(frames[0], pushed)
    assert right > before + 0.1 and right > wrong + 0.1 and right > 0.5


def test_the_benchmark_leaves_the_family_out_without_pymust(monkeypatch, capsys, tmp_path):
    import sys

    from benchmarks.benchmark_generalisation import simus_family

    assert simus_family(0, 6, tmp_path) == []
    monkeypatch.setitem(sys.modules, "pymust", None)  # import pymust raises ImportError
    assert simus_family(3, 6, tmp_path) == []  # nothing cached: the first case needs pymust
    assert "SIMUS family left out: pymust is not installed" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cached_frames_are_read_back_without_simulating(monkeypatch, tmp_path):
    import benchmarks.simus_family as family

    labels, _, _ = case_truth(SEEDS[0], 2)
    made = np.random.default_rng(0).uniform(0, 255, (2, *labels.shape)).astype(np.float32)
    monkeypatch.setattr(family, "simulate_frames", lambda seed, n_frames: made)
    first = family.make_simus_case(SEEDS[0], 2, tmp_path)
    assert [p.name.startswith(f"simus_{SEEDS[0]}_2_") for p in tmp_path.iterdir()] == [True]  # no partial file

    def fail(seed, n_frames):
        raise AssertionError("simulated again")

    monkeypatch.setattr(family, "simulate_frames", fail)
    again = family.make_simus_case(SEEDS[0], 2, tmp_path)
    np.testing.assert_array_equal(again.sequence.frames, first.sequence.frames)
    assert again.sequence.spacing == (0.4, 0.4) and again.sequence.es_index == 1
