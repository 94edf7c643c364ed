"""benchmarks/compare_precisions.py on short sequences: its table, and float32 against the default precision."""

from __future__ import annotations

from benchmarks.compare_precisions import main
from EchoRegistrationLib.demo import DEMO_SEED
from EchoRegistrationLib.dlir.inference import cpu_has_amx
from EchoRegistrationLib.workflow import DEFAULT_REFINE


def test_the_table_compares_float32_with_the_default_precision(capsys):
    assert main(["--frames", "3", "--shape", "64", "56", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    default = "bfloat16" if cpu_has_amx() else "float32"
    assert f"default precision {default}" in out and f"| time float32 / {default} " in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith(("| demo", "| speed"))]
    sequences = (f"demo (seed {DEMO_SEED})", "speed, 64 x 56")
    assert [(row[0].strip(), int(row[1])) for row in rows] == [
        (sequence, refine) for sequence in sequences for refine in (0, DEFAULT_REFINE)]
    for row in rows:
        assert float(row[2].split()[0]) > 0
        mean, largest = float(row[3]), float(row[4])
        if cpu_has_amx():  # bfloat16 networks: close to float32, not equal
            assert 0 < mean <= largest < 2, row
        else:  # both runs float32: the same computation twice
            assert mean == largest == 0, row
