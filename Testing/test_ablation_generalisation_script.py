"""benchmarks/ablation_generalisation.py: its runs' names, the pairs it compares and its refusals (no training)."""

from __future__ import annotations

import pytest

from benchmarks.ablation_generalisation import comparisons, main, run_name


def test_each_variant_is_paired_with_the_base_of_its_own_seed_and_the_seeds_bases_with_the_first():
    assert [run_name("shape", 0), run_name("shape", 1), run_name("base", 2)] == ["shape", "shape_seed1", "base_seed2"]
    assert comparisons(["base", "shape", "texture"], [0, 1]) == [
        ("DLIR shape", "DLIR base"), ("DLIR texture", "DLIR base"),
        ("DLIR shape_seed1", "DLIR base_seed1"), ("DLIR texture_seed1", "DLIR base_seed1"),
        ("DLIR base_seed1", "DLIR base")]
    assert comparisons(["base", "shape"], [2]) == [("DLIR shape_seed2", "DLIR base_seed2")]


@pytest.mark.parametrize("options, message", [
    (["--seeds", "0", "0"], "--seeds must be distinct"),
    (["--seeds", "-1"], "expected a whole number >= 0"),
    (["--variants", "shape"], "include it"),
    (["--variants", "base", "shape", "shape"], "--variants must be distinct"),
])
def test_it_refuses_bad_seeds_and_a_missing_base_before_training(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit):
        main([*options, "--work", str(tmp_path / "work"), "--camus", str(tmp_path / "absent")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
