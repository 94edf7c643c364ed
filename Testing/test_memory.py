"""Freed memory kept for reuse (EchoRegistrationLib.memory): each case in a fresh Python process, as the
setting is the process's and is made once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from EchoRegistrationLib import memory
from EchoRegistrationLib.memory import GLIBC_VARIABLES, OPT_OUT

ROOT = Path(__file__).resolve().parents[1]

# Minor page faults of allocating, touching and freeing a 40 MB block 10 times, before and after
# keep_freed_memory. A block of 40 MB is above glibc's largest automatic mmap threshold (32 MB): by
# default each comes as fresh pages, about 9 800 faults each. Kept, the heap first grows a few times
# (torch's aligned blocks and Python's own small allocations between them leave gaps): 10 blocks of
# warm-up, after which no run here faulted again.
PAGE_FAULTS = """
import json, resource
import torch
from EchoRegistrationLib.memory import allocator_setting, keep_freed_memory

def faults_of_ten_blocks():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        block = torch.ones(10_000_000)  # 40 MB of float32, every page touched
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_ten_blocks()
kept = keep_freed_memory()
faults_of_ten_blocks()  # warm-up: the heap grows
print(json.dumps({"kept": kept, "again": keep_freed_memory(), "setting": allocator_setting(),
                  "default": default, "tuned": faults_of_ten_blocks()}))
"""


def run_case(**environment: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in (OPT_OUT, "GLIBC_TUNABLES", *GLIBC_VARIABLES)}
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS], cwd=ROOT, env={**env, **environment},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def glibc() -> bool:
    return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None


@pytest.mark.skipif(not glibc(), reason="the setting is glibc's (Linux)")
def test_kept_blocks_are_reused_with_few_new_page_faults():
    case = run_case()
    assert case["kept"] is True and case["again"] is True
    assert case["setting"].startswith("freed blocks up to ") and "kept for reuse" in case["setting"]
    assert case["default"] > 10 * 5_000  # each 40 MB block: about 9 800 pages of 4 kB
    assert case["tuned"] < case["default"] / 10


@pytest.mark.parametrize("variable, value, why", [(OPT_OUT, "1", f"{OPT_OUT} is set"),
                                                  (GLIBC_VARIABLES[0], str(2 ** 20), "glibc malloc settings"),
                                                  ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576",
                                                   "glibc malloc settings")])
def test_the_users_setting_leaves_the_allocator_alone(variable, value, why):
    case = run_case(**{variable: value})
    assert case["kept"] is False and case["again"] is False
    assert case["setting"].startswith("the system's") and why in case["setting"]
    if glibc() and variable == OPT_OUT:
        assert case["tuned"] > 10 * 5_000  # blocks still come as fresh pages


class OldGlibc:
    """mallopt of glibc up to 2.34: an mmap threshold above 32 MB is refused (and changes nothing)."""

    def __init__(self, largest: int):
        self.calls = []

        def mallopt(parameter: int, value: int) -> int:  # a function: it takes ctypes' argtypes, restype
            self.calls.append((parameter, value))
            return int(parameter != memory.M_MMAP_THRESHOLD or value <= largest)
        self.mallopt = mallopt


@pytest.mark.parametrize("largest, expected", [(32 * 2 ** 20, 32 * 2 ** 20), (2 ** 20, 0)])
def test_a_refused_threshold_changes_nothing_and_the_fallback_is_tried(monkeypatch, largest, expected):
    # the trim threshold alone would switch off glibc's own raising of the mmap threshold: it may be
    # set only once an mmap threshold was accepted
    libc = OldGlibc(largest)
    monkeypatch.setattr(memory.sys, "platform", "linux")
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: libc)
    for name in (OPT_OUT, "GLIBC_TUNABLES", *GLIBC_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    assert memory._set_thresholds() == expected
    tried = [(memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD),
             (memory.M_MMAP_THRESHOLD, memory.FALLBACK_MMAP_THRESHOLD)]
    assert libc.calls == tried + ([(memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD)] if expected else [])
