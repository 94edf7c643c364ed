"""Choose the DLIR refinement's pyramid schedule on validation data, never on the benchmarks (a script).

The refinement (:func:`EchoRegistrationLib.registration.register_sequence` ``refine``) warm-starts the
optimiser from the network's field over a few pyramid levels; its schedule (levels and steps per level,
:func:`EchoRegistrationLib.registration.tracking.refine_schedule`) was chosen here, on:

* CAMUS ``train`` ED/ES pairs (every ``--every``-th 4CH patient, both directions; the models trained on
  these frames, the refinement never saw them): Dice of LV / myocardium of the warped moving mask, as in
  :mod:`benchmarks.benchmark_generalisation`, ms per pair;
* the same pairs at ``--low-resolution`` pixels, pixel size unknown
  (:func:`benchmarks.benchmark_generalisation.low_resolution_pair`);
* the simulator's validation seeds 5000-5007 and warped CAMUS train templates with motion seeds 900000+
  (:mod:`benchmarks.validate_passes`): myocardial end-point error (mm) of the ED -> ES field.

Rows: the optimiser alone (CAMUS pairs only; every time is also given as a ratio to its own), the
network alone, the schedule in use (``default``; also with its regulariser and folding penalty on
the images' grid instead of the network's, ``penalty_rows`` of ``register_pair``), the schedule it
replaced (``former``, with its step of 0.5 pixel at every level), and each ``--schedules`` entry, steps per
level coarse to fine (``20,10`` = 20 steps at half resolution then 10 at full; the number of levels is the
number of entries); ``--caps``: the default with the images compared on at most that many rows (``max_rows``
of ``register_pair``); ``--learning-rates``: the default with other Adam step sizes (``learning_rate`` of
``register_pair``; the ``--schedules`` rows take the default's, 0.5 at every level but the finest of several,
0.25).

Usage (repository root, ``../shared`` beside it)::

    python benchmarks/validate_refine_schedule.py --template-rows 512 --caps 256 --schedules 20,20 20
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_generalisation import camus_scores, low_resolution_pair, ours  # noqa: E402
from benchmarks.benchmark_refine_folding import simulated_scores  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN, validation_sequences, validation_templates  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.data import SequenceFolder  # noqa: E402
from EchoRegistrationLib.dlir.shipped import resolve_model  # noqa: E402
from EchoRegistrationLib.dlir.templates import TEMPLATE_ROWS  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402


def schedule(text: str) -> tuple[int, ...]:
    """"20,10" -> (20, 10): steps per level, coarse to fine."""
    steps = tuple(int(n) for n in text.split(","))
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"a schedule is positive steps per level, got {text!r}")
    return steps


def step_sizes(text: str) -> float | tuple[float, ...]:
    """"0.5" -> 0.5 (every level), "0.5,0.25" -> (0.5, 0.25) (per level, coarse to fine)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"a step size is a positive finite number, or one per level, got {text!r}")
    return values[0] if len(values) == 1 else values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="echoreg-dlir-camus", help="installed name or checkpoint folder")
    parser.add_argument("--refine", type=int, default=40, help="refine steps of the default row")
    parser.add_argument("--schedules", type=schedule, nargs="*", default=[], help="e.g. 40,20,5 20,10")
    parser.add_argument("--every", type=int, default=10, help="every N-th CAMUS train 4CH patient")
    parser.add_argument("--low-resolution", type=int, default=112, help="pixels of the low-resolution pairs")
    parser.add_argument("--templates", type=int, default=32, help="warped CAMUS train templates")
    parser.add_argument("--template-rows", type=int, default=TEMPLATE_ROWS,
                        help=f"rows of the templates (default {TEMPLATE_ROWS}, as trained on; larger: nearer "
                             "the CAMUS frames' own size)")
    parser.add_argument("--caps", type=int, nargs="*", default=[],
                        help="also the default with the images compared on at most these rows")
    parser.add_argument("--learning-rates", type=step_sizes, nargs="*", default=[],
                        help="also the default with these Adam step sizes in full-resolution pixels, each one value "
                             "for every level or one per level coarse to fine (0.5,0.25: the default, "
                             "registration.tracking.REFINE_LEARNING_RATES; 0.5: the refinement before 2026-12-02)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not CAMUS_TRAIN.is_dir():
        print(f"skipped: {CAMUS_TRAIN} is not there", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    folder = CamusPairFolder(CAMUS_TRAIN, views=("4CH",))
    pairs = [folder[k] for k in range(0, len(folder), args.every)]
    low_pairs = [low_resolution_pair(seq, args.low_resolution) for seq in pairs]
    simulated = validation_sequences()
    templates = validation_templates(SequenceFolder(CAMUS_TRAIN), args.templates, args.template_rows)
    model = load_model(resolve_model(args.model))
    former = {"levels": 3, "iterations": (args.refine, args.refine // 2, args.refine // 8), "penalty_rows": None,
              "learning_rate": 0.5}
    rows = {"network alone": {}, f"default (refine {args.refine})": {"refine": args.refine},
            "default, penalties on the images' grid": {"refine": args.refine, "penalty_rows": None},
            "former (N, N/2, N/8 from quarter resolution, penalties on the images' grid)":
                {"refine": args.refine, **former}}
    rows.update({f"default, images compared on at most {rows_} rows": {"refine": args.refine, "max_rows": rows_}
                 for rows_ in args.caps})
    rows.update({f"{','.join(map(str, s))}": {"refine": args.refine, "levels": len(s), "iterations": s}
                 for s in args.schedules})
    rows.update({f"default, step size {rate if isinstance(rate, float) else ','.join(map(str, rate))} px":
                 {"refine": args.refine, "learning_rate": rate} for rate in args.learning_rates})
    optimiser = ours("deformable")
    ours("dlir", model=model, refine=1)(pairs[0], 1)  # warm-ups, not timed
    optimiser(pairs[0], 1)
    print(f"{len(pairs)} CAMUS train patients (every {args.every}th 4CH) x 2 directions, also at "
          f"{args.low_resolution} px; {len(simulated)} simulated validation sequences; {len(templates)} "
          f"warped train templates; {args.model}, {torch.get_num_threads()} threads\n")
    print("| schedule | ED->ES Dice LV / myo | ES->ED | ms/pair (x optimiser) | low-res ED->ES | low-res ES->ED "
          "| ms/pair (x optimiser) | sim EPE mm | template EPE mm |")
    print("|---|---|---|---|---|---|---|---|---|")
    # the optimiser first (CAMUS pairs only): every row's time is also a ratio to it
    reference = camus_scores(optimiser, pairs), camus_scores(optimiser, low_pairs)

    def cells(scores: tuple[dict[str, float], dict[str, float]]) -> list[str]:
        return [f"{r['ed_es_dice_lv']:.3f} / {r['ed_es_dice_myo']:.3f} | {r['es_ed_dice_lv']:.3f} / "
                f"{r['es_ed_dice_myo']:.3f} | {r['ms_pair']:.0f} ({r['ms_pair'] / o['ms_pair']:.2f}x)"
                for r, o in zip(scores, reference)]

    print(f"| optimiser (deformable) | {' | '.join(cells(reference))} | - | - |", flush=True)
    for name, options in rows.items():
        run = ours("dlir", model=model, **options)
        scores = camus_scores(run, pairs), camus_scores(run, low_pairs)
        sim = simulated_scores(simulated, model=model, **options)["sim EPE mm"]
        tmpl = simulated_scores(templates, model=model, **options)["sim EPE mm"]
        print(f"| {name} | {' | '.join(cells(scores))} | {sim:.3f} | {tmpl:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
