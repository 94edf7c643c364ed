"""Choose a DLIR model's number of passes on validation data, never on the benchmarks (a script).

A model's ``passes`` (:class:`EchoRegistrationLib.dlir.model.DLIRModel`: the network applied again to
the moving frame warped by the field so far, the residuals composed) is chosen here, on data that no
benchmark uses:

* the simulator's validation seeds 5000-5007 (the training scripts' validation seeds; the benchmarks use
  10000+): myocardial end-point error at ES of ED -> ES, and folding;
* warped templates of CAMUS ``train`` frames (:mod:`EchoRegistrationLib.dlir.templates`) with motion seeds
  900000+ (training used seeds below 10000): myocardial end-point error and folding. The frames were
  trained on (as the CAMUS pairs); the motions are new;
* CAMUS ``train`` ED/ES pairs (every 25th patient, both directions): folding only (it needs no truth).

Usage (repository root)::

    .venv/bin/python benchmarks/validate_passes.py --models echoreg-dlir-sim runs/camus/dlir_camus --passes 1 2 3
    .venv/bin/python benchmarks/validate_passes.py --models runs/camus/dlir_camus --write runs/camus/chosen

With ``--write`` (one model), the model is written there with the chosen ``passes``: among the rows with
at most :data:`MAX_FOLDING_PCT` % folding on every set, the fewest passes whose mean of the two end-point
errors is within :data:`EPE_TOLERANCE_MM` of the lowest (each pass costs one network run); the validation
table is kept in its config (``passes_validation``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_real_cines import DATA  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model, read_config, save_model  # noqa: E402
from EchoRegistrationLib.dlir.shipped import resolve_model  # noqa: E402
from EchoRegistrationLib.dlir.data import SequenceFolder, simulate_item  # noqa: E402
from EchoRegistrationLib.dlir.inference import predict_pair_fields, predict_sequence_fields  # noqa: E402
from EchoRegistrationLib.dlir.items import SequenceItem  # noqa: E402
from EchoRegistrationLib.dlir.templates import TEMPLATE_ROWS, WarpedTemplates  # noqa: E402
from EchoRegistrationLib.sequence import LABEL_MYOCARDIUM  # noqa: E402
from EchoRegistrationLib.spatial import field_to_numpy, folding_fraction  # noqa: E402

VALIDATION_SEEDS = range(5000, 5008)
TEMPLATE_MOTION_SEED = 900_000
MAX_FOLDING_PCT = 0.05
EPE_TOLERANCE_MM = 0.05  # passes this close to the most accurate count as equally accurate
CAMUS_TRAIN = DATA / "camus_ed_es" / "train"


def validation_sequences() -> list[SequenceItem]:
    """The simulator's validation sequences: seeds :data:`VALIDATION_SEEDS`, 10 frames each (never
    among the training seeds)."""
    return [simulate_item(seed, n_frames=10) for seed in VALIDATION_SEEDS]


def validation_templates(train, count: int, rows: int = TEMPLATE_ROWS) -> list[SequenceItem]:
    """``count`` (at most all) warped templates of the CAMUS ``train`` items, spread evenly over
    them, at about ``rows`` rows, with the validation motion seeds :data:`TEMPLATE_MOTION_SEED`+."""
    source = WarpedTemplates(train, seed=TEMPLATE_MOTION_SEED, rows=rows)
    count = min(count, len(source))
    step = len(source) // count
    return [source[k] for k in range(0, step * count, step)]


def scores(model, items: list[SequenceItem]) -> tuple[float, float]:
    """(mean myocardial EPE mm at the last frame against frame 0, mean folding %) over ``items``."""
    epe, folding = [], []
    for item in items:
        seq = item.sequence
        last = seq.es_index if seq.es_index is not None else seq.n_frames - 1
        fields = predict_sequence_fields(model, seq, reference=0, device="cpu")
        field = fields[last:last + 1]
        wall = seq.label_map(0) == LABEL_MYOCARDIUM
        error = np.linalg.norm(field_to_numpy(field)[0] - item.displacement[last], axis=-1)
        epe.append(float(error[wall].mean()))
        folding.append(100 * float(folding_fraction(field, seq.spacing)))
    return float(np.mean(epe)), float(np.mean(folding))


def pair_folding(model, pairs) -> float:
    """Mean folding % of the ED -> ES and ES -> ED fields of 2-frame ``pairs``."""
    folding = []
    for seq in pairs:
        for fixed, moving in ((0, 1), (1, 0)):
            field = predict_pair_fields(model, seq, [(fixed, moving)], "cpu")
            folding.append(100 * float(folding_fraction(field, seq.spacing)))
    return float(np.mean(folding))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="installed names or checkpoint folders")
    parser.add_argument("--passes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--templates", type=int, default=12, help="warped CAMUS train templates (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, help="write the (single) model with the chosen passes here")
    parser.add_argument("--diffeomorphic", action="store_true",
                        help="integrate each pass's field as a stationary velocity (scaling and squaring: "
                             "no folding), also in the written model")
    args = parser.parse_args(argv)
    if args.write is not None and len(args.models) != 1:
        parser.error("--write needs exactly one model")
    torch.set_num_threads(args.threads)
    simulated = validation_sequences()
    train = SequenceFolder(CAMUS_TRAIN) if CAMUS_TRAIN.is_dir() else []
    templates = validation_templates(train, args.templates) if args.templates and train else []
    camus_pairs = [train[k].sequence for k in range(0, len(train), 25)]
    print(f"validation: {len(simulated)} simulated sequences (seeds {VALIDATION_SEEDS.start}-"
          f"{VALIDATION_SEEDS.stop - 1}), {len(templates)} warped CAMUS train templates (motion seeds "
          f"{TEMPLATE_MOTION_SEED}+), {len(camus_pairs)} CAMUS train pairs (folding)")
    print("| model | passes | sim EPE ES mm | sim folding % | template EPE mm | template folding % "
          "| CAMUS train pairs folding % |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models:
        model = load_model(name)  # a private copy: passes is changed below
        model.diffeomorphic = model.diffeomorphic or args.diffeomorphic
        for passes in args.passes:
            model.passes = passes
            sim = scores(model, simulated)
            tmpl = scores(model, templates) if templates else (float("nan"), float("nan"))
            camus = pair_folding(model, camus_pairs) if camus_pairs else float("nan")
            rows.append({"passes": passes, "diffeomorphic": model.diffeomorphic, "sim_epe_mm": sim[0],
                         "sim_folding_pct": sim[1], "template_epe_mm": tmpl[0], "template_folding_pct": tmpl[1],
                         "camus_train_folding_pct": camus})
            kind = " (diffeomorphic)" if model.diffeomorphic else ""
            print(f"| {name}{kind} | {passes} | {sim[0]:.2f} | {sim[1]:.3f} | {tmpl[0]:.2f} | {tmpl[1]:.3f} "
                  f"| {camus:.3f} |", flush=True)
    if args.write is not None:
        model.passes = choose(rows)
        config = read_config(resolve_model(args.models[0]))
        extra = {k: v for k, v in config.items() if k not in ("format", "kind", "architecture")}
        save_model(model, args.write, **extra, passes_validation=rows)
        print(f"wrote {args.write} with passes = {model.passes}")
    return 0


def choose(rows: list[dict[str, float]]) -> int:
    """The fewest passes among the rows whose mean end-point error (simulated and template, NaN-free) is
    within :data:`EPE_TOLERANCE_MM` of the lowest, of the rows whose folding is at most
    :data:`MAX_FOLDING_PCT` % on every set (else of all rows)."""
    def error(row):
        return float(np.nanmean([row["sim_epe_mm"], row["template_epe_mm"]]))
    folding = ("sim_folding_pct", "template_folding_pct", "camus_train_folding_pct")
    scored = [r for r in rows if np.isfinite(error(r))] or rows
    candidates = [r for r in scored if np.nanmax([r.get(k, np.nan) for k in folding]) <= MAX_FOLDING_PCT] or scored
    lowest = min(error(r) for r in candidates)
    return int(min(r["passes"] for r in candidates if error(r) <= lowest + EPE_TOLERANCE_MM))


if __name__ == "__main__":
    sys.exit(main())
