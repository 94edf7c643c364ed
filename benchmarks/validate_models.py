"""DLIR models side by side on validation data only, the network alone as the default method runs it (a script).

Chooses between trained models (e.g. a correction stage's variants, ``echoreg train correction``) without
looking at the benchmarks. Each model registers through ``register_sequence(seq, "dlir", model=...)``
(the systole anchor where ES is known, no refinement) and is scored on

* the validation sets of :mod:`benchmarks.validate_tracking_modes` (``real-template``: the real-template
  generator on CAMUS *train* patients; ``simulator`` and ``simulator-randomised``: seeds 5000-5007;
  ``simus``: SIMUS seeds 40000+): myocardial end-point error at ES (mm) and the largest folding (%);
* ``camus-train``: CAMUS *train* A4C ED/ES pairs (every 10th patient), both directions: Dice of the LV
  cavity and the myocardium, the moving masks warped (nearest) onto the fixed frame, and the largest
  folding. These pairs may have been trained on (the default model's Dice term): they check that a
  change does not lose overlap on real pairs; CAMUS ``valid`` stays for the benchmark.

The networks run in the default precision (bfloat16 on CPUs with AMX,
:func:`EchoRegistrationLib.dlir.inference.mixed_precision`); ``--float32`` adds each model again in float32
(``amp=False``), to check that precision on validation data.

Usage (repository root)::

    .venv/bin/python benchmarks/validate_models.py --models echoreg-dlir-camus runs/correction/d192 \
        --sets real-template simulator simus simulator-randomised camus-train --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_generalisation import pair_scores  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN  # noqa: E402
from benchmarks.validate_tracking_modes import end_point_error, validation_sets  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.inference import network_precision  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.spatial import field_to_torch, folding_fraction  # noqa: E402

SETS = ("real-template", "simulator", "simus", "simulator-randomised", "camus-train")
CAMUS_STEP = 10  # every 10th CAMUS train patient


def folding_pct(fields: np.ndarray, spacing) -> float:
    """Largest folding (% of pixels) of (T, H, W, 2) mm fields."""
    return 100 * float(folding_fraction(field_to_torch(fields), spacing).max())


def camus_scores(model, amp: bool = True) -> str:
    """ED->ES and ES->ED Dice LV / myocardium and the largest folding on the CAMUS train pairs
    (:func:`benchmarks.benchmark_generalisation.pair_scores`, as the benchmark scores CAMUS valid)."""
    pairs = CamusPairFolder(CAMUS_TRAIN, views=("4CH",))
    scores = {"ED->ES": [], "ES->ED": []}
    folding = 0.0
    for k in range(0, len(pairs), CAMUS_STEP):
        seq = pairs[k]
        for fixed, moving, key in ((0, 1, "ED->ES"), (1, 0, "ES->ED")):
            field = register_sequence(seq, "dlir", model=model, reference=fixed, device="cpu",
                                      amp=amp).displacement[moving]
            pair = pair_scores(seq.label_map(fixed), seq.label_map(moving), field, seq.spacing)
            scores[key].append([pair["dice_lv"], pair["dice_myo"]])
            folding = max(folding, pair["folding"])
    dice_text = "  ".join(f"{key} {np.mean(v, axis=0)[0]:.3f} / {np.mean(v, axis=0)[1]:.3f}"
                          for key, v in scores.items())
    return f"Dice LV / myo {dice_text}  folding max {folding:.3f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="installed model names or checkpoint folders")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--simus-cases", type=int, default=6)
    parser.add_argument("--template-cases", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--float32", action="store_true",
                        help="each model also with amp=False (float32 where the default runs bfloat16)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    precision = network_precision(torch.device("cpu"))
    models = {}  # row label: (model, amp)
    for name in args.models:
        model = load_model(name).eval()
        models[f"{name} ({precision})"] = (model, True)
        if args.float32 and precision != "float32":
            models[f"{name} (float32)"] = (model, False)
    sets = validation_sets([s for s in args.sets if s != "camus-train"], args.simus_cases, args.template_cases)
    for set_name, cases in sets.items():
        for name, (model, amp) in models.items():
            errors, folding = [], 0.0
            for case in cases:
                seq = case[0]
                fields = register_sequence(seq, "dlir", model=model, reference=0, device="cpu", amp=amp).displacement
                errors.append(end_point_error(fields, case))
                folding = max(folding, folding_pct(fields, seq.spacing))
            print(f"| {set_name} | {name} | EPE ES {np.mean(errors):.3f} mm | folding max {folding:.3f} % |",
                  flush=True)
    if "camus-train" in args.sets:
        for name, (model, amp) in models.items():
            print(f"| camus-train | {name} | {camus_scores(model, amp)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
