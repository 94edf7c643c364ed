"""The rule that picks a DLIR model's pass schedule on validation data (benchmarks/validate_passes.py)."""

from __future__ import annotations

from benchmarks.validate_passes import choose, network_cost


def row(passes, coarse, sim, template, folding=0.0):
    return {"passes": passes, "coarse_passes": coarse, "sim_epe_mm": sim, "template_epe_mm": template,
            "sim_folding_pct": folding, "template_folding_pct": 0.0, "camus_train_folding_pct": 0.0}


def test_the_cheapest_schedule_within_the_tolerance_of_the_most_accurate_wins():
    rows = [row(1, 0, 1.0, 1.2), row(3, 0, 0.50, 0.60), row(2, 1, 0.52, 0.62), row(3, 1, 0.50, 0.59)]
    assert network_cost(rows[2]) == 1.25 and network_cost(rows[3]) == 2.25
    assert choose(rows) == (2, 1)  # 0.02 mm behind the best, at 1.25 network passes against 2.25 / 3
    rows[2]["template_epe_mm"] = 0.80  # now 0.11 mm behind: no longer equally accurate
    assert choose(rows) == (3, 1)


def test_schedules_that_fold_are_passed_over_and_old_tables_read_as_no_coarse_pass():
    rows = [row(2, 1, 0.4, 0.4, folding=0.2), row(3, 0, 0.6, 0.6)]
    assert choose(rows) == (3, 0)
    old = {k: v for k, v in row(2, 0, 0.5, 0.5).items() if k != "coarse_passes"}
    assert choose([old]) == (2, 0)
