"""Paired differences with bootstrap intervals (benchmarks/benchmark_generalisation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.benchmark_generalisation import PER_ITEM, differences_table, paired_difference


def test_a_constant_difference_has_no_spread():
    base = list(np.linspace(0.8, 0.9, 50))
    mean, low, high = paired_difference([b + 0.01 for b in base], base)
    assert mean == pytest.approx(0.01) and low == pytest.approx(0.01) and high == pytest.approx(0.01)


def test_the_interval_matches_the_normal_one_for_many_items():
    differences = np.random.default_rng(3).normal(0.002, 0.01, 400)
    mean, low, high = paired_difference(list(differences), [0.0] * 400)
    half = 1.96 * differences.std() / np.sqrt(400)  # the normal approximation's half-width
    assert mean == pytest.approx(differences.mean())
    assert low == pytest.approx(mean - half, abs=2e-4) and high == pytest.approx(mean + half, abs=2e-4)


def test_unpaired_values_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([0.9, 0.8], [0.9])
    with pytest.raises(ValueError, match="non-empty"):
        paired_difference([], [])


def test_the_table_compares_only_rows_with_per_item_values():
    rows = {"DLIR m": {"ed_es_dice_lv" + PER_ITEM: [0.9, 0.8, 0.7]},
            "OpenCV DIS": {"ed_es_dice_lv" + PER_ITEM: [0.8, 0.7, 0.6]},
            "old row": {"ed_es_dice_lv": 0.8}}  # from a run before the per-item values were kept
    text = differences_table(rows, [("DLIR m", "OpenCV DIS"), ("DLIR m", "old row")])
    assert "| DLIR m - OpenCV DIS | +0.100 [+0.100, +0.100] | - |" in text
    assert "old row" not in text
    assert differences_table(rows, [("DLIR m", "old row")]) == ""
