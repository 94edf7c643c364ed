"""The default method's time per real pair against the optimiser's, timed pair by pair (a script).

The generalisation benchmark times each method over all its pairs, one method after the other, minutes
apart; on a shared machine whose speed drifts, the ratio of two such times moves with the load (0.39x
to 0.65x for the same code). Here each CAMUS ``valid`` pair (every ``--step``-th A4C patient, both
directions) is registered by DLIR + refine (the default method) and then by the optimiser (deformable,
to the reference) straight after, and the ratio is taken per pair: median and range.

Usage (repository root, ``../shared`` beside it)::

    .venv/bin/python benchmarks/refine_time_per_pair.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_real_cines import DATA  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.workflow import DEFAULT_REFINE  # noqa: E402


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=3, help="every step-th CAMUS valid patient")
    parser.add_argument("--refine", type=int, default=DEFAULT_REFINE)
    parser.add_argument("--model", help="DLIR model name or checkpoint folder (default: the shipped default)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    valid = CamusPairFolder(DATA / "camus_ed_es" / "valid", views=("4CH",))
    refined = lambda seq, ref: register_sequence(seq, "dlir", model=args.model, refine=args.refine,  # noqa: E731
                                                 reference=ref)
    optimised = lambda seq, ref: register_sequence(seq, "deformable", mode="to_reference", reference=ref)  # noqa: E731
    refined(valid[0], 0), optimised(valid[0], 0)  # warm-up: model loading, first calls
    ratios, times = [], []
    for k in range(0, len(valid), args.step):
        seq = valid[k]
        for reference in (0, 1):  # ES -> ED (ED fixed), ED -> ES
            a = seconds(lambda: refined(seq, reference))
            b = seconds(lambda: optimised(seq, reference))
            ratios.append(a / b)
            times.append((a, b))
    refine_ms, optimiser_ms = (1000 * np.median(column) for column in zip(*times))
    print(f"{len(ratios)} CAMUS valid pairs ({len(ratios) // 2} patients x 2 directions), torch "
          f"{torch.__version__} on {args.threads} CPU threads: DLIR + refine {args.refine} {refine_ms:.0f} ms, "
          f"optimiser (deformable, to reference) {optimiser_ms:.0f} ms per pair (medians); per-pair ratio "
          f"median {np.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
