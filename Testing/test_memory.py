"""Freed memory kept for reuse (EchoRegistrationLib.memory): each case in a fresh Python process, as the
setting is the process's and is made once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from EchoRegistrationLib.memory import GLIBC_VARIABLES, OPT_OUT

ROOT = Path(__file__).resolve().parents[1]

# Minor page faults of allocating, touching and freeing a 40 MB block 5 times, before and after
# keep_freed_memory (a block of 40 MB is above glibc's largest automatic mmap threshold, 32 MB: each
# one comes as fresh pages, about 10 000 faults, unless freed blocks are kept).
PAGE_FAULTS = """
import json, resource, sys
import torch
from EchoRegistrationLib.memory import keep_freed_memory

def faults_of_five_blocks():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        block = torch.ones(10_000_000)  # 40 MB of float32, every page touched
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_five_blocks()
kept = keep_freed_memory()
faults_of_five_blocks()  # the heap grows once
print(json.dumps({"kept": kept, "again": keep_freed_memory(), "default": default,
                  "tuned": faults_of_five_blocks()}))
"""


def run_case(**environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT and k not in GLIBC_VARIABLES}
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS], cwd=ROOT, env={**env, **environment},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def glibc() -> bool:
    return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None


@pytest.mark.skipif(not glibc(), reason="the setting is glibc's (Linux)")
def test_kept_blocks_are_reused_without_new_page_faults():
    case = run_case()
    assert case["kept"] is True and case["again"] is True
    assert case["default"] > 5 * 5_000  # each 40 MB block: about 9 800 pages of 4 kB
    assert case["tuned"] < case["default"] / 20


@pytest.mark.parametrize("variable", [OPT_OUT, GLIBC_VARIABLES[0]])
def test_the_users_setting_leaves_the_allocator_alone(variable):
    case = run_case(**{variable: "1" if variable == OPT_OUT else str(2 ** 20)})
    assert case["kept"] is False and case["again"] is False
    if glibc() and variable == OPT_OUT:
        assert case["tuned"] > 5 * 5_000  # blocks still come as fresh pages
