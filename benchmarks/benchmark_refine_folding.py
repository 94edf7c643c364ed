"""Folding of the DLIR refinement on CAMUS *training* pairs, by folding-penalty weight (a script).

The settings of the refinement's folding penalty (:func:`EchoRegistrationLib.losses.folding_penalty`,
``folding_weight`` / ``folding_margin`` of :func:`EchoRegistrationLib.registration.register_pair`)
are chosen here, on training patients only (every ``--every``-th 4CH patient of
``../shared/data/camus_ed_es/train``), never on ``valid`` (the benchmark). Each ED / ES pair is
registered in both directions and scored as in :mod:`benchmarks.benchmark_generalisation`: the
moving expert mask warped nearest-neighbour onto the fixed frame, Dice of LV / myocardium, folding
(% of pixels with det J <= 0), seconds per pair. Rows: the network alone, then ``refine`` steps
with each folding weight, each regularised field (``regularise`` of ``register_pair``: "total" =
network + residual, "residual" = the optimised residual alone), each regularisation weight and each
image similarity (``--losses``).
With ``--simulated``, also the simulator's validation seeds 5000-5007
(:data:`benchmarks.validate_passes.VALIDATION_SEEDS`; the benchmarks use 10000+): myocardial end-point
error (mm) of the ED -> ES field (the pair registered directly, the ED frame fixed) and its folding.

Usage (repository root)::

    python benchmarks/benchmark_refine_folding.py --model runs/v2/echoreg-dlir-camus --weights 0 1 10 100 1000
    python benchmarks/benchmark_refine_folding.py --model echoreg-dlir-camus --weights 100 \
        --regularise total residual --regularisation-weights 1 0.3 0.1
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_generalisation import pair_scores  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN, validation_sequences  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.items import SequenceItem  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.registration.pairwise import SIMILARITIES  # noqa: E402
from EchoRegistrationLib.registration.tracking import METHOD_DEFAULTS  # noqa: E402
from EchoRegistrationLib.sequence import LABEL_MYOCARDIUM, EchoSequence  # noqa: E402
from EchoRegistrationLib.spatial import field_to_torch, folding_fraction  # noqa: E402

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


def simulated_scores(items: list[SequenceItem], **options) -> dict[str, Any]:
    """Mean myocardial end-point error (mm) at ES and mean folding % of the ED -> ES fields of
    :func:`register_sequence` ("dlir", ``options``) on the ED / ES pairs of simulated ``items``, and
    the error of each item ("sim EPE mm_per_item", in order: for paired differences)."""
    epe, folding = [], []
    for item in items:
        seq = item.sequence
        last = seq.es_index if seq.es_index is not None else seq.n_frames - 1
        pair = seq.subsequence([0, last])
        field = register_sequence(pair, "dlir", reference=0, device="cpu", **options).displacement[1]
        wall = seq.label_map(0) == LABEL_MYOCARDIUM
        error = np.linalg.norm(field - item.displacement[last], axis=-1)
        epe.append(float(error[wall].mean()))
        folding.append(100 * float(folding_fraction(field_to_torch(field[None]), seq.spacing)[0]))
    return {"sim EPE mm": float(np.mean(epe)), "sim folding %": float(np.mean(folding)), "sim EPE mm_per_item": epe}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="DLIR checkpoint folder")
    parser.add_argument("--data", type=Path, default=CAMUS_TRAIN, help="CAMUS train pairs (flat folder)")
    parser.add_argument("--every", type=int, default=10, help="every N-th 4CH patient")
    parser.add_argument("--refine", type=int, default=40)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0], help="folding weights")
    parser.add_argument("--margin", type=float, default=0.1, help="folding margin (det J)")
    parser.add_argument("--regularise", nargs="+", default=["total"], choices=("total", "residual"),
                        help="field the regulariser sees: network + residual, or the residual alone")
    parser.add_argument("--regularisation-weights", type=float, nargs="+", default=[1.0],
                        help="bending-energy weights (default 1; the refinement uses 3, "
                             "tracking.REFINE_REGULARISATION)")
    parser.add_argument("--losses", nargs="+", default=[METHOD_DEFAULTS["deformable"]["loss"]],
                        choices=sorted(SIMILARITIES), help="image similarities of the refinement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--simulated", action="store_true",
                        help="also score the simulator's validation seeds 5000-5007 (EPE at ES)")
    parser.add_argument("--no-camus", action="store_true", help="skip the CAMUS train pairs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.no_camus and not args.simulated:
        parser.error("--no-camus leaves nothing to score without --simulated")
    pairs = []
    if not args.no_camus:
        folder = CamusPairFolder(args.data, views=("4CH",))
        pairs = [folder[k] for k in range(0, len(folder), args.every)]
    simulated = validation_sequences() if args.simulated else []
    model = load_model(args.model)
    warm = pairs[0] if pairs else simulated[0].sequence
    register_sequence(warm, "dlir", model=model, refine=1, device="cpu")  # warm-up, not timed

    def row(**options) -> dict[str, float]:
        return {**(scores(pairs, model=model, **options) if pairs else {}),
                **(simulated_scores(simulated, model=model, **options) if simulated else {})}

    table = {"network alone": row()}
    print(f"  network alone: {table['network alone']}", file=sys.stderr, flush=True)
    for loss, weight, regularise, regularisation_weight in itertools.product(
            args.losses, args.weights, args.regularise, args.regularisation_weights):
        name = (f"refine {args.refine}, {loss}, folding weight {weight:g}, regularise {regularise} "
                f"x {regularisation_weight:g}")
        table[name] = row(refine=args.refine, loss=loss, folding_weight=weight, folding_margin=args.margin,
                          regularise=regularise, regularisation_weight=regularisation_weight)
        print(f"  {name}: {table[name]}", file=sys.stderr, flush=True)
    columns = [c for c, v in next(iter(table.values())).items() if not isinstance(v, list)]
    print(f"{len(pairs)} CAMUS train patients (every {args.every}th 4CH) x 2 directions, "
          f"{len(simulated)} simulated validation sequences, folding margin {args.margin:g}\n")
    print("| row | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
