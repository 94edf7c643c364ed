"""Choose the weight of the anatomy maps in the DLIR refinement on validation data, never on the benchmarks
(a script).

The refinement (:func:`EchoRegistrationLib.registration.register_sequence` ``refine``) of a model with an
anatomy network (:mod:`EchoRegistrationLib.dlir.anatomy`) compares the frames' LV, myocardium and LA
probability maps beside their intensities, weighted
:data:`EchoRegistrationLib.registration.tracking.REFINE_ANATOMY_WEIGHT`. That weight was chosen here:

* an anatomy network is trained for the model (:func:`EchoRegistrationLib.dlir.anatomy_training.train_anatomy`,
  the shipped recipe) on the CAMUS ``train`` 4CH patients except every ``--every``-th, into ``--work``
  (resumed when there);
* those held-out patients, both directions: Dice LV / myocardium of the warped moving mask
  (:func:`benchmarks.benchmark_generalisation.camus_scores`), and the paired difference against the
  network alone with its 95 % bootstrap interval;
* the simulator's validation seeds 5000-5007 and warped CAMUS train templates with motion seeds 900000+
  (:mod:`benchmarks.validate_passes`): myocardial end-point error (mm) at ES, and its paired difference.

Rows: the network alone, then the refinement (``--refine`` steps) at each ``--weights`` entry (0: the
images alone); with 0 among the weights, a second table pairs each other weight with it.

Usage (repository root, ``../shared`` beside it; about 30 min of training and 15 of scoring on 2 cores)::

    python benchmarks/validate_refine_anatomy.py --weights 0 0.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_generalisation import PER_ITEM, camus_scores, ours, paired_difference  # noqa: E402
from benchmarks.benchmark_refine_folding import simulated_scores  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN, validation_sequences, validation_templates  # noqa: E402
from EchoRegistrationLib.dlir.anatomy_training import ANATOMY_ITERATIONS, train_anatomy  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.data import SequenceFolder, SequenceItem  # noqa: E402
from EchoRegistrationLib.dlir.shipped import resolve_model  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.workflow import DEFAULT_REFINE  # noqa: E402

EPE = "sim EPE mm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="echoreg-dlir-camus", help="installed name or checkpoint folder")
    parser.add_argument("--work", type=Path, default=Path("runs/validate_refine_anatomy"),
                        help="folder of the anatomy network trained without the held-out patients")
    parser.add_argument("--refine", type=int, default=DEFAULT_REFINE,
                        help=f"refinement steps (default {DEFAULT_REFINE}, the shipped default; the weight was "
                             "chosen at 40)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.03, 0.1, 0.3])
    parser.add_argument("--every", type=int, default=5, help="every N-th CAMUS train 4CH patient is held out")
    parser.add_argument("--templates", type=int, default=16, help="warped CAMUS train templates")
    parser.add_argument("--template-rows", type=int, default=512, help="rows of the templates")
    parser.add_argument("--iterations", type=int, default=ANATOMY_ITERATIONS,
                        help=f"anatomy network training steps (default {ANATOMY_ITERATIONS}, the shipped recipe)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not CAMUS_TRAIN.is_dir():
        print(f"skipped: {CAMUS_TRAIN} is not there", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    folder = CamusPairFolder(CAMUS_TRAIN, views=("4CH",))
    held_out = [folder[k] for k in range(0, len(folder), args.every)]
    training = [SequenceItem(folder[k]) for k in range(len(folder)) if k % args.every]
    train_anatomy(training, args.work, base=resolve_model(args.model), iterations=args.iterations, batch_size=4,
                  iterations_per_epoch=250, device="cpu")
    model = load_model(args.work)
    simulated = validation_sequences()
    templates = validation_templates(SequenceFolder(CAMUS_TRAIN), args.templates, args.template_rows)
    print(f"{len(held_out)} held-out CAMUS train patients (every {args.every}th 4CH) x 2 directions, the "
          f"anatomy network trained on the other {len(training)}; {len(simulated)} simulated validation "
          f"sequences; {len(templates)} warped train templates of {args.template_rows} rows; {args.model}, "
          f"refine {args.refine}, {torch.get_num_threads()} threads\n")
    rows = {"network alone": {}, **{f"weight {w:g}": {"refine": args.refine, "feature_weight": w}
                                    for w in args.weights}}
    scores = {}
    for name, options in rows.items():
        scores[name] = {**camus_scores(ours("dlir", model=model, **options), held_out),
                        **{f"sim {k}": v for k, v in simulated_scores(simulated, model=model, **options).items()},
                        **{f"template {k}": v for k, v in simulated_scores(templates, model=model, **options).items()}}
        print(f"  done: {name}", file=sys.stderr, flush=True)
    base = scores["network alone"]
    columns = [("ED->ES Dice LV", "ed_es_dice_lv"), ("myo", "ed_es_dice_myo"), ("ES->ED Dice LV", "es_ed_dice_lv"),
               ("myo", "es_ed_dice_myo"), ("sim EPE mm", f"sim {EPE}"), ("template EPE mm", f"template {EPE}")]
    print("| row | " + " | ".join(title for title, _ in columns) + " | folding % max | ms/pair |")
    print("|---" * (len(columns) + 3) + "|")
    for name, row in scores.items():
        cells = []
        for _, key in columns:
            cell = f"{row[key]:.4f}"
            if name != "network alone":
                mean, low, high = paired_difference(row[key + PER_ITEM], base[key + PER_ITEM])
                cell += f" ({mean:+.4f} [{low:+.4f}, {high:+.4f}])"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + f" | {row['folding_max']:.3f} | {row['ms_pair']:.0f} |")
    print("\nIn brackets: the paired difference from the network alone, 95 % bootstrap interval.")
    if 0.0 in args.weights and len(args.weights) > 1:
        images = scores["weight 0"]
        print("\n| row - weight 0 (the images alone) | " + " | ".join(title for title, _ in columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for name in (f"weight {w:g}" for w in args.weights if w):
            differences = (paired_difference(scores[name][key + PER_ITEM], images[key + PER_ITEM])
                           for _, key in columns)
            print(f"| {name} | " + " | ".join(f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"
                                              for mean, low, high in differences) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
