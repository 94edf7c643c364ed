"""Strain benchmark on simulated apical echo sequences with known GLS and EF (a script, not a test).

Every registration method of ``benchmark_registration.py`` tracks each case (frame 0 = ED as the
reference); strain is computed from its fields with the myocardium of the ED label map, and
scored against the simulator's ground truth. The first row uses the simulator's TRUE
displacement: the error of the strain method itself, without tracking error.

* GLS error: |peak endocardial GLS - truth| in strain points, mean over cases; GLS bias: the
  signed mean (positive = shortening underestimated); mid-wall GLS error likewise;
* segment error: mean |segment strain - truth| at ES over the six segments and the cases;
* EF error: |EF (single-plane discs on the tracked cavity) - the simulator's EF| in EF points,
  and its signed mean (EF bias);
* s/case: wall seconds of the registration and strain of one case.

Usage (from the repository root)::

    .venv/bin/python benchmarks/benchmark_strain.py --cases 4 --frames 12

Cases cycle through A4C / A2C and half / full cycles on seeds from 10000 (never used for
training). Timings drift by up to +-30 % between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_registration import FIRST_SEED, methods, select_methods  # noqa: E402
from EchoRegistrationLib.simulation import SimulatedSequence, simulate_sequence  # noqa: E402
from EchoRegistrationLib.strain import (Myocardium, StrainResult, compute_strain,  # noqa: E402
                                        myocardium_from_labels, result_from_displacement)

CASE_KINDS = (("A4C", "half"), ("A2C", "half"), ("A4C", "full"), ("A2C", "full"))


def true_motion(sim: SimulatedSequence) -> np.ndarray:
    return sim.displacement


def score(sim: SimulatedSequence, result: StrainResult, seconds: float) -> dict[str, float]:
    es = sim.sequence.es_index
    peaks = result.peaks()
    return {
        "gls": peaks["GLS endocardial"]["peak_pct"] - sim.gls_endo.min(),
        "gls_mid": peaks["GLS mid-wall"]["peak_pct"] - sim.gls_mid.min(),
        "segments": float(np.abs(result.segmental[es] - sim.segmental_strain[es]).mean()),
        "ef": result.ef - sim.ef,
        "seconds": seconds,
    }


def run_case(run, sim: SimulatedSequence, myocardium: Myocardium) -> dict[str, float]:
    start = time.perf_counter()
    fields = run(sim)
    result = compute_strain(sim.sequence, result_from_displacement(sim.sequence, fields, 0), myocardium)
    return score(sim, result, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="simulated sequences (seeds from 10000)")
    parser.add_argument("--frames", type=int, default=12, help="frames per sequence")
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (square)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--methods", nargs="*", help="only these methods (names as in the table)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cases = []
    for k in range(args.cases):
        view, cycle = CASE_KINDS[k % len(CASE_KINDS)]
        sim = simulate_sequence(view=view, cycle=cycle, n_frames=args.frames,
                                image_size=(args.size, args.size), seed=FIRST_SEED + k)
        cases.append((sim, myocardium_from_labels(sim.sequence.labels[0], sim.sequence.spacing)))
    table = select_methods({"true motion (method error)": true_motion, **methods()}, args.methods)
    kinds = ", ".join("/".join(c) for c in CASE_KINDS[:args.cases])
    print(f"{args.cases} simulated cases ({kinds}; {args.frames} frames, {args.size}x{args.size}, "
          f"seeds {FIRST_SEED}..{FIRST_SEED + args.cases - 1}), "
          f"true peak GLS {np.mean([s.gls_endo.min() for s, _ in cases]):.1f} %, "
          f"EF {np.mean([s.ef for s, _ in cases]):.1f} % on average; torch {torch.__version__} "
          f"on {torch.get_num_threads()} CPU threads")
    rows = []
    for name, run in table.items():
        scores = [run_case(run, sim, myocardium) for sim, myocardium in cases]
        rows.append((name, {k: np.array([s[k] for s in scores]) for k in scores[0]}))
        print(f"  done: {name}", file=sys.stderr, flush=True)

    print()
    print("| method | GLS error (pts) | GLS bias (pts) | mid-wall GLS error (pts) "
          "| segment error at ES (pts) | EF error (pts) | EF bias (pts) | s/case |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {np.abs(m['gls']).mean():.2f} | {m['gls'].mean():+.2f} | "
              f"{np.abs(m['gls_mid']).mean():.2f} | {m['segments'].mean():.2f} | "
              f"{np.abs(m['ef']).mean():.2f} | {m['ef'].mean():+.2f} | {m['seconds'].mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
