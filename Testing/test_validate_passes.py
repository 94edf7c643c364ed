"""The rule that picks a DLIR model's passes on validation data (benchmarks/validate_passes.py)."""

from __future__ import annotations

from benchmarks.validate_passes import choose


def row(passes, sim, template, folding=0.0):
    return {"passes": passes, "sim_epe_mm": sim, "template_epe_mm": template, "sim_folding_pct": folding,
            "template_folding_pct": 0.0, "camus_train_folding_pct": 0.0}


def test_the_fewest_passes_within_the_tolerance_of_the_most_accurate_win():
    rows = [row(1, 1.0, 1.2), row(2, 0.52, 0.62), row(3, 0.50, 0.60)]
    assert choose(rows) == 2  # 0.02 mm behind 3 passes, for two network runs instead of three
    rows[1]["template_epe_mm"] = 0.80  # now 0.11 mm behind: no longer equally accurate
    assert choose(rows) == 3


def test_passes_that_fold_are_passed_over_unless_all_fold():
    assert choose([row(2, 0.4, 0.4, folding=0.2), row(3, 0.6, 0.6)]) == 3
    assert choose([row(2, 0.4, 0.4, folding=0.2), row(3, 0.6, 0.6, folding=0.3)]) == 2
