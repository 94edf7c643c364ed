"""The tracking-mode validation's floor row (benchmarks/validate_tracking_modes.py): the default
refinement started from the true fields, on a short-axis ring phantom with known motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.validate_tracking_modes import METHOD_ROWS, end_point_error, main, refined_to_reference, trackers
from EchoRegistrationLib.dlir.checkpoints import load_model
from EchoRegistrationLib.dlir.shipped import resolve_model
from EchoRegistrationLib.simulation import ring_phantom
from EchoRegistrationLib.spatial import field_to_torch


@pytest.fixture(scope="module")
def case():
    sim = ring_phantom(size=96, n_frames=6, seed=1)  # 0.5 mm pixels, 1.9 mm of motion at most
    return sim.sequence, sim.displacement, sim.sequence.label_map(0) == 2


@pytest.fixture(scope="module")
def model():
    return load_model(resolve_model("echoreg-dlir-camus"))


def test_the_truth_goes_into_the_registration_layout(case):  # the floor row's start
    fields = field_to_torch(case[1])
    assert fields.shape == (6, 2, 96, 96) and fields.dtype == torch.float32
    assert np.array_equal(fields.permute(0, 2, 3, 1).numpy(), case[1])


def test_the_floor_row_starts_the_refinement_from_the_truth(case, model):
    rows = trackers(model, 10, 0.1)
    assert "truth-refined" in rows
    unmoved = end_point_error(np.zeros_like(case[1]), case)
    floor = end_point_error(rows["truth-refined"][1](case), case)
    zero = torch.zeros_like(field_to_torch(case[1]))
    from_zero = end_point_error(refined_to_reference(model, case[0], zero, 10), case)
    assert unmoved > 1.0  # the wall moves: 1.27 mm at ES on average
    assert floor < 0.25  # within half a pixel of the truth it started from (0.16 mm)
    assert from_zero > 0.5  # the same 10 steps from zero end far off (0.67 mm): the start is the truth's


def test_the_floor_row_can_start_short_of_the_truth(case, model):
    name, track = trackers(model, 10, 0.1, truth_scale=0.5)["truth-refined"]
    assert name.startswith("0.5 x the true fields")
    start = end_point_error(0.5 * case[1], case)
    refined = end_point_error(track(case), case)
    assert start > 0.6  # half the motion: 0.64 mm off at ES
    assert refined < 0.25  # recovered to 0.18 mm, near the floor (0.16): within the refinement's reach here


def test_no_refinement_leaves_the_start_as_it_is(case, model):
    start = 0.5 * field_to_torch(case[1])
    assert np.array_equal(refined_to_reference(model, case[0], start, 0), start.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("argv, message", [
    (["--rows", "truth-refined", "--truth-scale", "nan"], "expected a number >= 0, got 'nan'"),
    (["--rows", "truth-refined", "--truth-scale", "-1"], "expected a number >= 0, got '-1'"),
    (["--truth-scale", "0.9"], "add truth-refined to --rows"),
    (["--rows", "network", "--truth-scale", "0.9"], "add truth-refined to --rows"),
])
def test_a_truth_scale_that_means_nothing_is_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_the_default_rows_are_the_methods_alone():
    assert "truth-refined" not in METHOD_ROWS and "refine-from-systole-anchor" in METHOD_ROWS
