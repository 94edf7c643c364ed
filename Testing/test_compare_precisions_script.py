"""benchmarks/compare_precisions.py on short sequences: its table, and float32 against the default precision."""

from __future__ import annotations

import pytest

from benchmarks.compare_precisions import main
from EchoRegistrationLib.demo import DEMO_SEED
from EchoRegistrationLib.dlir.inference import cpu_has_amx
from EchoRegistrationLib.workflow import DEFAULT_REFINE


def test_the_table_compares_float32_with_the_default_precision(capsys):
    assert main(["--frames", "3", "--shape", "64", "56", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    default = "bfloat16" if cpu_has_amx() else "float32"
    assert f"default precision {default}" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| sequence"))
    rows = [line.split("|")[1:-1] for line in lines if line.startswith(("| demo", "| speed"))]
    assert f"| time float32 / {default} " in header and len(header.split("|")) == len(rows[0]) + 2 == 8
    sequences = ((f"demo (seed {DEMO_SEED})", "3 x 256 x 256"), ("speed", "3 x 64 x 56"))  # the frames registered
    assert [(row[0].strip(), row[1].strip(), int(row[2])) for row in rows] == [
        (*sequence, refine) for sequence in sequences for refine in (0, DEFAULT_REFINE)]
    for row in rows:
        assert float(row[3].split()[0]) > 0
        mean, largest = float(row[4]), float(row[5])
        if cpu_has_amx():  # bfloat16 networks: close to float32 on average, not equal
            assert 0 < mean < 0.2 and largest >= mean, row
        else:  # both runs float32: the same computation twice
            assert mean == largest == 0, row


def test_it_refuses_too_few_frames_or_rounds(capsys):
    for option in (["--frames", "1"], ["--repeats", "0"], ["--threads", "0"], ["--shape", "8", "64"]):
        with pytest.raises(SystemExit):
            main(option)
        assert "expected a whole number >=" in capsys.readouterr().err
