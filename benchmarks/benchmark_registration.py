"""Registration benchmark on simulated apical echo sequences with known motion (a script, not a test).

Every method registers every frame of each case to frame 0 (ED), and the fields are scored against
the simulator's true displacement:

* EPE ES / EPE mean: myocardial end-point error (mm) at ES, and averaged over frames 1..T-1, over the
  ED myocardium;
* Dice ES: mean Dice (LV cavity, myocardium) of the ED labels and the ES labels warped onto ED;
* folding: largest fraction of pixels (%) with a non-positive Jacobian determinant;
* s/pair: wall seconds per frame pair on this machine (pairs of a sequence may run as one batch).

Usage (from the repository root, after ``make demo`` or ``make test`` created .venv)::

    .venv/bin/pip install -c constraints.txt -e ".[benchmark]"   # itk-elastix for the B-spline peer
    .venv/bin/python benchmarks/benchmark_registration.py --cases 3 --frames 12
    .venv/bin/python benchmarks/benchmark_registration.py --methods "dlir (shipped model)" identity

Peers whose package is missing are left out with a note. Timings drift by up to +-30 % between runs
on a shared machine: compare methods within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer_methods import available_peer_methods, peer_sequence_fields  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SEQUENTIAL_MODEL, SIM_MODEL, shipped_model_path  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.spatial.metrics import (myocardial_end_point_error,  # noqa: E402
                                                      warped_label_dice)
from EchoRegistrationLib.simulation import SimulatedSequence, simulate_sequence  # noqa: E402
from EchoRegistrationLib.spatial import field_to_torch, folding_fraction  # noqa: E402

FIRST_SEED = 10_000  # benchmark cases: seeds never used for training
Fields = np.ndarray  # (T, H, W, 2) mm on the frame-0 grid


def ours(method: str, **options) -> Callable[[SimulatedSequence], Fields]:
    def run(sim: SimulatedSequence) -> Fields:
        return register_sequence(sim.sequence, method, reference=0, **options).displacement
    return run


def pairwise(peer: Callable[[np.ndarray, np.ndarray, tuple[float, float]], np.ndarray]
             ) -> Callable[[SimulatedSequence], Fields]:
    def run(sim: SimulatedSequence) -> Fields:
        return peer_sequence_fields(peer, sim.sequence, 0)
    return run


def identity(sim: SimulatedSequence) -> Fields:
    return np.zeros_like(sim.displacement)


def methods() -> dict[str, Callable[[SimulatedSequence], Fields]]:
    table = {
        "identity": identity,
        "rigid (ours)": ours("rigid", mode="to_reference"),
        "affine (ours)": ours("affine", mode="to_reference"),
        "deformable (ours, to reference)": ours("deformable", mode="to_reference"),
        "deformable (ours, sequential)": ours("deformable", mode="sequential"),
    }
    try:
        tracker = str(shipped_model_path(SEQUENTIAL_MODEL))
        simulator_model = str(shipped_model_path(SIM_MODEL))  # the rows of the README's simulated tables
        table["dlir (echoreg-dlir-sim)"] = ours("dlir", model=simulator_model)
        table["dlir (echoreg-dlir-sim, flip-averaged)"] = ours("dlir", model=simulator_model, flip_average=True)
        table["dlir + refine 40 (sequential)"] = ours("dlir", model=simulator_model, refine=40, mode="sequential")
        table["dlir (default model)"] = ours("dlir")
        table["dlir + refine 40 (default)"] = ours("dlir", refine=40)  # the workflow's default
        table["dlir sequential model"] = ours("dlir", model=tracker)
        table["dlir sequential model, flip-averaged"] = ours("dlir", model=tracker, flip_average=True)
        table["dlir sequential model + refine 40"] = ours("dlir", model=tracker, refine=40)
    except FileNotFoundError as missing:
        print(f"note: no DLIR rows: {missing}", file=sys.stderr)
    table.update({name: pairwise(peer) for name, peer in available_peer_methods().items()})
    return table


def select_methods(table: dict[str, Callable], names: list[str] | None) -> dict[str, Callable]:
    """The rows of ``table`` named in ``names`` (all when None or empty); an unknown name is an error."""
    if not names:
        return table
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; the methods are {sorted(table)}")
    return {name: run for name, run in table.items() if name in names}


def score(sim: SimulatedSequence, fields: Fields, seconds: float) -> dict[str, float]:
    epe = myocardial_end_point_error(fields, sim.displacement, sim.myocardium_ed)
    spacing = sim.sequence.spacing
    u = field_to_torch(fields)
    es = sim.sequence.es_index
    labels = sim.sequence.labels
    return {
        "epe_es": float(epe[es]),
        "epe_mean": float(epe[1:].mean()),
        "dice_es": warped_label_dice(labels[0], labels[es], u[es:es + 1], spacing),
        "folding": 100 * float(folding_fraction(u, spacing).max()),
        "s_per_pair": seconds / (sim.sequence.n_frames - 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="simulated sequences (seeds from 10000)")
    parser.add_argument("--frames", type=int, default=12, help="frames per sequence (ED -> ES)")
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (square)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--methods", nargs="*", help="only these methods (names as in the table)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cases = [simulate_sequence(view=("A4C", "A2C")[k % 2], n_frames=args.frames,
                               image_size=(args.size, args.size), seed=FIRST_SEED + k)
             for k in range(args.cases)]
    table = methods()
    missing = sorted({"elastix_bspline", "opencv_farneback", "opencv_dis"} - set(table))
    table = select_methods(table, args.methods)
    print(f"{args.cases} simulated cases (A4C/A2C, {args.frames} frames ED->ES, {args.size}x{args.size}, "
          f"seeds {FIRST_SEED}..{FIRST_SEED + args.cases - 1}), torch {torch.__version__} "
          f"on {torch.get_num_threads()} CPU threads" + (f"; not installed: {missing}" if missing else ""))
    # warm-up: first-call costs (lazy module loading, allocator) are not timed
    ours("deformable", mode="sequential")(cases[0])
    for peer in available_peer_methods().values():
        peer(cases[0].sequence.frames[0], cases[0].sequence.frames[1], cases[0].sequence.spacing)
    rows = []
    for name, run in table.items():
        scores = []
        for sim in cases:
            start = time.perf_counter()
            fields = run(sim)
            scores.append(score(sim, fields, time.perf_counter() - start))
        rows.append((name, {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}))
        print(f"  done: {name}", file=sys.stderr, flush=True)

    print()
    print("| method | EPE ES (mm) | EPE mean (mm) | Dice ES | folding (%) | s/pair |")
    print("|---|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['epe_es']:.2f} | {m['epe_mean']:.2f} | {m['dice_es']:.3f} | "
              f"{m['folding']:.3f} | {m['s_per_pair']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
