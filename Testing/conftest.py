"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECHOREG_SHARED_DATA", REPO.parent / "shared" / "data"))
# Pictures the tests make for people to look at (rendered views, web page screenshots); CI keeps them.
ARTEFACTS = Path(os.environ.get("ECHOREG_ARTEFACTS", REPO / "Testing" / "artefacts"))

# The suite must fit 2 cores; keep torch from oversubscribing them.
SUITE_THREADS = min(2, os.cpu_count() or 1)
torch.set_num_threads(SUITE_THREADS)


@pytest.fixture(autouse=True)
def suite_threads():
    """Every test starts and ends with the suite's torch threads: a script's ``main(["--threads", "1"])`` run in a
    test sets them for the whole process, the next module's fixtures included."""
    torch.set_num_threads(SUITE_THREADS)
    yield
    torch.set_num_threads(SUITE_THREADS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real test files (``../shared/data``); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not available: {SHARED_DATA} is absent "
                    "(it sits beside the project checkout on developer machines and in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """The folder for pictures the tests make (``$ECHOREG_ARTEFACTS``, default ``Testing/artefacts``)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS
