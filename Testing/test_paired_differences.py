"""Paired differences with bootstrap intervals (benchmarks/benchmark_generalisation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.benchmark_generalisation import (EARLIER_RUN, ITEMS, NOT_PAIRED, PAIRED_SCORES, PER_ITEM,
                                                 camus_scores, differences_table, low_resolution_pair,
                                                 paired_difference, table)
from EchoRegistrationLib.sequence import EchoSequence


def test_a_constant_difference_has_no_spread():
    base = list(np.linspace(0.8, 0.9, 50))
    mean, low, high = paired_difference([b + 0.01 for b in base], base)
    assert mean == pytest.approx(0.01) and low == pytest.approx(0.01) and high == pytest.approx(0.01)


def test_the_interval_matches_the_normal_one_for_many_items():
    differences = np.random.default_rng(3).normal(0.002, 0.01, 400)
    mean, low, high = paired_difference(list(differences), [0.0] * 400)
    half = 1.96 * differences.std() / np.sqrt(400)  # the normal approximation's half-width, about 1e-3
    assert mean == pytest.approx(differences.mean())
    # a 90 % interval would be 1.6e-4 narrower at each end
    assert low == pytest.approx(mean - half, abs=5e-5) and high == pytest.approx(mean + half, abs=5e-5)


def test_items_are_paired_in_order_not_pooled():
    # the same values in another order: sorted or pooled lists would match exactly (a zero-width
    # interval); paired, every patient differs by +-1
    a, b = [1.0, 0.0, 1.0, 0.0] * 5, [0.0, 1.0, 0.0, 1.0] * 5
    mean, low, high = paired_difference(a, b)
    assert mean == 0.0 and low < -0.3 and high > 0.3  # each pair differs by +-1


def test_unpaired_values_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([0.9, 0.8], [0.9])
    with pytest.raises(ValueError, match="non-empty"):
        paired_difference([], [])


def test_the_table_pairs_only_rows_of_the_same_items():
    items = {"camus": ["p1", "p2", "p3"], "family": {"seeds": [1], "frames": 6}}
    rows = {"DLIR m": {"ed_es_dice_lv" + PER_ITEM: [0.9, 0.8, 0.7] * 4, ITEMS: items},
            "OpenCV DIS": {"ed_es_dice_lv" + PER_ITEM: [0.8, 0.7, 0.6] * 4, ITEMS: items},
            "other run": {"ed_es_dice_lv" + PER_ITEM: [0.8, 0.7, 0.6] * 4, ITEMS: {**items, "camus": ["p4"]}},
            "few": {"ed_es_dice_lv" + PER_ITEM: [0.8, 0.7], ITEMS: items},
            "fewer": {"ed_es_dice_lv" + PER_ITEM: [0.7, 0.7], ITEMS: items},
            "old row": {"ed_es_dice_lv": 0.8}}  # from a run before the per-item values were kept
    text = differences_table(rows, [("DLIR m", "OpenCV DIS"), ("DLIR m", "old row"), ("DLIR m", "other run"),
                                    ("few", "fewer")])
    assert "| DLIR m - OpenCV DIS | +0.100 [+0.100, +0.100] | - |" in text
    assert "ED->ES Dice LV (n 12)" in text
    assert f"| DLIR m - other run | {NOT_PAIRED} |" in text
    assert "| few - fewer | +0.050 (n 2: no interval) |" in text
    assert "old row" not in text
    assert differences_table(rows, [("DLIR m", "old row")]) == ""


def _labelled_pair(seed: int) -> EchoSequence:
    rng = np.random.default_rng(seed)
    frames = rng.random((2, 40, 36)).astype(np.float32) * 255
    labels = np.zeros((2, 40, 36), np.uint8)
    labels[:, 10:30, 10:26] = 2
    labels[:, 14:26, 14:22] = 1
    labels[1, 14:26, 14:20] = 1  # ES: a smaller cavity, a thicker wall
    labels[1, 14:26, 20:22] = 2
    return EchoSequence(frames=frames, spacing=(0.5, 0.5), labels=labels, label_frames=(0, 1), ed_index=0,
                        es_index=1, metadata={"source": f"pair {seed}"})


def test_the_pair_scores_keep_every_paired_column_per_patient():
    pairs = [_labelled_pair(seed) for seed in range(3)]

    def identity(seq, reference):
        return np.zeros((*seq.frames.shape, 2), np.float32)

    row = camus_scores(identity, pairs)
    row.update({f"low_{key}": value for key, value in camus_scores(identity, [low_resolution_pair(p, 20) for p in
                                                                              pairs]).items()})
    for key, _, _ in PAIRED_SCORES[:8]:  # the CAMUS and 112 px columns
        assert len(row[key + PER_ITEM]) == 3 and np.mean(row[key + PER_ITEM]) == pytest.approx(row[key])


def test_a_column_pairs_on_the_items_it_depends_on():
    from benchmarks.benchmark_generalisation import same_items

    parts = {key: column_parts for key, _, column_parts in PAIRED_SCORES}
    items = {"camus": ["patient0200"], "low_resolution": 112, "family": {"seeds": [20000], "frames": 6}}
    fewer_patients = {**items, "camus": []}
    assert same_items({ITEMS: items}, {ITEMS: fewer_patients}, parts["epe_es"])  # the family is the same
    assert not same_items({ITEMS: items}, {ITEMS: fewer_patients}, parts["ed_es_dice_lv"])
    assert not same_items({ITEMS: items}, {ITEMS: {**items, "low_resolution": 96}}, parts["low_es_ed_dice_myo"])
    assert same_items({ITEMS: items}, {ITEMS: {**items, "low_resolution": 96}}, parts["es_ed_dice_myo"])
    assert not same_items({}, {}, parts["gls"])  # rows that do not say what they hold are never paired


def test_a_cut_rows_file_keeps_its_whole_rows(tmp_path, capsys):
    from benchmarks.benchmark_generalisation import included_rows

    path = tmp_path / "rows.jsonl"
    path.write_text('{"method": "OpenCV DIS", "scores": {"ms_pair": 25.0}}\n\n{"method": "OpenCV D')
    assert included_rows(path) == {"OpenCV DIS": {"ms_pair": 25.0}}
    assert "rows.jsonl:3: not a whole row, left out" in capsys.readouterr().err


def test_rows_of_an_earlier_run_are_marked_with_their_own_dis():
    row = {"epe_es": 0.5, "gls": 0.4, "folding": 0.0, "s_case": 2.0, "s_case_x_dis": 4.0}
    text = table({"OpenCV DIS": {**row, "s_case_x_dis": 1.0}, "DLIR old": row}, [], frozenset({"DLIR old"}))
    assert f"| DLIR old{EARLIER_RUN} | - |" in text and "| OpenCV DIS | - |" in text
    assert "against the DIS of that run" in text
    assert EARLIER_RUN not in table({"DLIR old": row}, []) and "earlier run" not in table({"DLIR old": row}, [])


def test_sequential_rows_reuse_their_pair_columns():
    from benchmarks.benchmark_generalisation import same_on_pairs

    assert same_on_pairs("DLIR echoreg-dlir-camus + refine 40, sequential") == "DLIR echoreg-dlir-camus + refine 40"
    assert same_on_pairs("DLIR echoreg-dlir-camus, sequential") == "DLIR echoreg-dlir-camus"
    assert same_on_pairs("DLIR echoreg-dlir-camus + refine 40, no anchor") == "DLIR echoreg-dlir-camus + refine 40"
    assert same_on_pairs("optimiser (deformable, to reference)") == "optimiser (deformable, sequential)"
    assert same_on_pairs("DLIR echoreg-dlir-camus") is None and same_on_pairs("OpenCV DIS") is None


def test_the_simus_columns_are_in_the_table():
    row = {"simus_epe_es": 0.47, "simus_gls": 0.21, "simus_segmental": 1.52, "simus_folding": 0.0,
           "simus_s_case": 0.8, "simus_s_case_x_dis": 8.0}
    text = table({"DLIR m": row, "old": {k: v for k, v in row.items() if k != "simus_segmental"}}, [])
    header = text.splitlines()[0].split(" | ")
    assert header[12:17] == ["SIMUS EPE ES mm", "SIMUS GLS err pts", "SIMUS segmental err pts", "SIMUS folding % (max)",
                             "SIMUS s/case (x DIS)"]
    assert "| DLIR m | - | - | - | - | - | - | - | - | - | - | - | 0.47 | 0.21 | 1.52 | 0.000 | 0.8 (8x) | - |" in text
    assert "| old | - | - | - | - | - | - | - | - | - | - | - | 0.47 | 0.21 | - | 0.000 | 0.8 (8x) | - |" in text


def test_the_segmental_error_averages_the_segments_not_gls():
    from benchmarks.benchmark_generalisation import segmental_error

    truth = {"GLS endocardial": -18.0, "GLS mid-wall": -16.0, "basal inferoseptal": -20.0, "apical lateral": -10.0}
    peaks = {"GLS endocardial": -8.0, "GLS mid-wall": -6.0, "basal inferoseptal": -18.0, "apical lateral": -14.0}
    assert segmental_error(peaks, truth) == pytest.approx(3.0)  # (2 + 4) / 2; the GLS curves left out
