"""Folding of the DLIR refinement on CAMUS *training* pairs, by folding-penalty weight (a script).

The settings of the refinement's folding penalty (:func:`EchoRegistrationLib.losses.folding_penalty`,
``folding_weight`` / ``folding_margin`` of :func:`EchoRegistrationLib.registration.register_pair`)
are chosen here, on training patients only (every ``--every``-th 4CH patient of
``../shared/data/camus_ed_es/train``), never on ``valid`` (the benchmark). Each ED / ES pair is
registered in both directions and scored as in :mod:`benchmarks.benchmark_generalisation`: the
moving expert mask warped nearest-neighbour onto the fixed frame, Dice of LV / myocardium, folding
(% of pixels with det J <= 0), seconds per pair. Rows: the network alone, then ``refine`` steps
with each folding weight.

Usage (repository root)::

    python benchmarks/benchmark_refine_folding.py --model runs/v2/echoreg-dlir-camus --weights 0 1 10 100 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_generalisation import pair_scores  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.sequence import EchoSequence  # noqa: E402

DIRECTIONS = (("ED->ES", 1, 0), ("ES->ED", 0, 1))  # (name, fixed frame, moving frame)


def scores(pairs: list[EchoSequence], **options) -> dict[str, float]:
    """Mean Dice LV / myocardium per direction, folding % mean and max, seconds per pair of
    :func:`register_sequence` ("dlir", ``options``) on ``pairs`` in both directions."""
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in DIRECTIONS}
    seconds = []
    for seq in pairs:
        for name, fixed, moving in DIRECTIONS:
            start = time.perf_counter()
            fields = register_sequence(seq, "dlir", reference=fixed, device="cpu", **options).displacement
            seconds.append(time.perf_counter() - start)
            rows[name].append(pair_scores(seq.label_map(fixed), seq.label_map(moving), fields[moving],
                                          seq.spacing))
    result = {f"{name} {metric}": float(np.mean([r[metric] for r in values]))
              for name, values in rows.items() for metric in ("dice_lv", "dice_myo")}
    folding = [r["folding"] for values in rows.values() for r in values]
    return {**result, "folding mean": float(np.mean(folding)), "folding max": max(folding),
            "s / pair": float(np.mean(seconds))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="DLIR checkpoint folder")
    parser.add_argument("--data", type=Path, default=CAMUS_TRAIN, help="CAMUS train pairs (flat folder)")
    parser.add_argument("--every", type=int, default=10, help="every N-th 4CH patient")
    parser.add_argument("--refine", type=int, default=40)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0], help="folding weights")
    parser.add_argument("--margin", type=float, default=0.1, help="folding margin (det J)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = CamusPairFolder(args.data, views=("4CH",))
    pairs = [folder[k] for k in range(0, len(folder), args.every)]
    model = load_model(args.model)
    register_sequence(pairs[0], "dlir", model=model, refine=1, device="cpu")  # warm-up, not timed
    table = {"network alone": scores(pairs, model=model)}
    for weight in args.weights:
        table[f"refine {args.refine}, folding weight {weight:g}"] = scores(
            pairs, model=model, refine=args.refine, folding_weight=weight, folding_margin=args.margin)
        print(f"  done: weight {weight:g}", file=sys.stderr, flush=True)
    columns = list(next(iter(table.values())))
    print(f"{len(pairs)} CAMUS train patients (every {args.every}th 4CH) x 2 directions, "
          f"folding margin {args.margin:g}\n")
    print("| row | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
