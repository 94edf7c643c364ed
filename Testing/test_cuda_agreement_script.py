"""benchmarks/check_cuda_agreement.py, the GPU check's agreement table, run on the CPU (its dry run)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.check_cuda_agreement import main
from EchoRegistrationLib.dlir.inference import cpu_has_amx


def test_the_dry_run_compares_the_cpu_with_itself(capsys):
    assert main(["--device", "cpu", "--frames", "3", "--shape", "64", "56", "--repeats", "1", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| 3 |")]
    assert rows[0].startswith("| 3 | OpenCV DIS (CPU) | - |") and "a dry run" in lines[1]
    assert len(rows) == (3 if cpu_has_amx() else 2) and rows[1].startswith("| 3 | cpu | float32 |")
    assert rows[1].endswith("| 0.0000 | 0.00000 | 0.00000 |")  # the same computation twice
    if cpu_has_amx():  # the default precision there: bfloat16, close to float32 but not equal
        assert rows[2].startswith("| 3 | cpu | bfloat16 |")
        largest = float(rows[2].split("|")[6])
        assert 0 < largest < 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so_and_fails(capsys):
    assert main(["--device", "cuda", "--frames", "3"]) == 1
    assert "no CUDA device here" in capsys.readouterr().err
