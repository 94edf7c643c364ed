"""Registration on the real cines of ``../shared/data`` (a script, not a test).

Real echo has no known motion, so this reports what can be measured: the mean global NCC of the
frames with the reference frame before and after registration (frames other than the reference),
the largest folding fraction of a frame, and the wall time of the sequence. Higher NCC is better
only up to a point (a map that folds can raise it); read it with the folding.

Usage (from the repository root, with ``../shared`` beside it)::

    .venv/bin/python benchmarks/benchmark_real_cines.py

The files are used in place, never copied (terms in ``../shared/data/README.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from EchoRegistrationLib import load_sequence  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SEQUENTIAL_MODEL, SIM_MODEL, shipped_model_path  # noqa: E402
from EchoRegistrationLib.registration import RegistrationResult, register_sequence  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CINES = {"CAMUS 2CH": "camus/patient0500_2CH_half_sequence.nii.gz",
         "A4C": "echo_a4c/a4c_sequence.nii.gz"}


def methods() -> dict[str, dict]:
    """Row name -> keyword arguments of :func:`register_sequence`."""
    return {
        "deformable (ours, sequential)": {"method": "deformable"},
        "dlir (echoreg-dlir-sim)": {"method": "dlir", "model": str(shipped_model_path(SIM_MODEL))},
        "dlir + refine 20 (sequential)": {"method": "dlir", "model": str(shipped_model_path(SIM_MODEL)),
                                          "refine": 20, "mode": "sequential"},
        "dlir (default model)": {"method": "dlir"},
        "dlir sequential model": {"method": "dlir", "model": str(shipped_model_path(SEQUENTIAL_MODEL))},
    }


def cine_scores(result: RegistrationResult, seconds: float) -> dict[str, float]:
    """Mean NCC with the reference after and before registration over the other frames, the
    largest folding of a frame (%), and the wall ``seconds`` of the cine."""
    before, after = result.mean_similarity()
    return {"ncc_after": after, "ncc_before": before,
            "folding": 100 * float(result.folding_fraction.max()), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default {DATA})")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    missing = [str(args.data / path) for path in CINES.values() if not (args.data / path).is_file()]
    if missing:
        print(f"skipped: the real cines are not there: {missing}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    sequences = {name: load_sequence(args.data / path) for name, path in CINES.items()}
    print(f"torch {torch.__version__} on {torch.get_num_threads()} CPU threads; mean NCC with the "
          "reference frame (after / before), largest folding (% of pixels), seconds per sequence")
    print()
    print("| method | " + " | ".join(f"{name} NCC | folding | s" for name in sequences) + " |")
    print("|---|" + "---|---|---|" * len(sequences))
    for row, options in methods().items():
        cells = []
        for seq in sequences.values():
            result = register_sequence(seq, **options)
            scores = cine_scores(result, result.seconds)
            cells.append(f"{scores['ncc_after']:.3f} ({scores['ncc_before']:.3f}) | "
                         f"{scores['folding']:.2f} | {scores['seconds']:.1f}")
        print(f"| {row} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
