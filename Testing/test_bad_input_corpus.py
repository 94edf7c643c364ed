"""The bad-input corpus (``bad_inputs.py``): every case ends with its exit status and one line that
names the file and the problem, or with exit 0 and its right value; no traceback, no partial
output, nothing changed."""

import hashlib
import re
from pathlib import Path

import pytest

from bad_inputs import CASES, BadInput
from EchoRegistrationLib.cli import main

PROGRESS_BAR = re.compile(r"^\w+ registration: +\d+%\|")  # tqdm's lines, before the error


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (hidden ones too) with a hash of its content."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_ends_cleanly(case: BadInput, tmp_path, monkeypatch, capsys):
    argv = case.build(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    if case.patch is not None:
        case.patch(monkeypatch)
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own exits (usage errors)
        status = stop.code
    out, err = capsys.readouterr()
    assert status == case.exit_status, err
    assert "Traceback" not in err
    after = snapshot(tmp_path)
    created = {path for path in set(after) - set(before)
               if not any(path == c or path.startswith(f"{c}/") for c in case.changes)}
    assert not created, f"left behind: {sorted(created)}"
    assert {p: h for p, h in after.items() if p in before} == before, "changed an existing file"
    if case.exit_status == 0:
        assert case.check is not None, "an exit-0 case must check its right value"
        case.check(tmp_path, out, err)
        return
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not PROGRESS_BAR.match(line)]
    assert len(lines) == 1, err
    for text in case.says:
        assert text.format(dir=tmp_path) in lines[0], lines[0]
