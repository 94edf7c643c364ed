"""Ablation of the DLIR training terms on the generalisation benchmark's held-out data (a script).

Issue 12 asks whether the seed paper's shape and texture terms and its multi-scale training help off the
training domain. Each variant here fine-tunes the same start (``--init``, default ``echoreg-dlir-sim``: the
project's simulator model, the start of the shipped recipe) for the same number of steps on the data of the
shipped recipe's first stage (``scripts/train_camus_model.sh``: the CAMUS train pairs with their masks,
warped CAMUS train templates with true motion, simulated sequences 0-31 three times, the appearance redrawn
in 80 % of pairs) and differs in one thing:

* ``base``: local NCC + bending energy + Dice of the masks + the true motion (weights 1, as the recipe),
  at the last of ``--scales``;
* ``shape``: + the shape term (latent distance of two mask VAEs, LV and myocardium, trained first on the
  CAMUS train and simulated masks, as the recipe does);
* ``texture``: + the PatchGAN texture term;
* ``shape_texture``: + both (the recipe's terms, at one scale);
* ``multiscale``: + both, trained over ``--scales`` (a quarter of the budget at each coarser scale, the
  rest at the last, as :mod:`benchmarks.ablation_dlir`);

Each variant is trained once per ``--seeds`` (default 0 and 1; the folder of seed s > 0 is
``<variant>_seed<s>``): ``base_seed1 - base`` is how far two runs that differ only in their random draws
land apart, the yardstick for the others, and each variant is paired with the base of its own seed, so a
term's effect is seen once per seed.

The networks alone (one pass; no correction stage, no anatomy network, as trained) are then scored by
:mod:`benchmarks.benchmark_generalisation` on data none of them saw: CAMUS ``valid`` in both directions, the
real-template family and SIMUS (needs pymust, else left out), and each variant is paired with the base of its
seed (mean and 95 % bootstrap interval over patients or cases; ``multiscale`` against ``base`` carries the
shape and texture terms too). A short budget ranks the terms at that budget: the shipped model
trained 5 stages (about 4.5 h on one CPU thread).

Usage (repository root, ``../shared`` beside it; resumable: run it again to continue; at 1500 steps on 2 CPU
cores each network takes 7-10 minutes, the SIMUS cases 2 minutes each the first time, the scoring 4)::

    .venv/bin/python benchmarks/ablation_generalisation.py --budget 1500 --work runs/ablation16 --cache runs/cache \
        --variants base shape texture --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import benchmark_generalisation  # noqa: E402
from benchmarks.ablation_dlir import stage_budget  # noqa: E402
from benchmarks.validate_passes import CAMUS_TRAIN  # noqa: E402
from EchoRegistrationLib.cli.common import count  # noqa: E402
from EchoRegistrationLib.dlir import train_dlir, train_vae  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import read_config  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SIM_MODEL, resolve_model  # noqa: E402

RECIPE_WEIGHTS = {"motion": 1.0, "dice": 1.0}  # scripts/train_camus_model.sh, stage 1
OFF = {"shape": 0.0, "texture": 0.0}
# name: (weights over the recipe's, shape term, texture term, multi-scale)
VARIANTS = {
    "base": (OFF, False, False, False),
    "shape": ({"texture": 0.0}, True, False, False),
    "texture": ({"shape": 0.0}, False, True, False),
    "shape_texture": ({}, True, True, False),
    "multiscale": ({}, True, True, True),
}


def run_name(variant: str, seed: int) -> str:
    """The folder (and row) name of ``variant`` trained with ``seed``."""
    return variant if seed == 0 else f"{variant}_seed{seed}"


def comparisons(variants: list[str], seeds: list[int]) -> list[tuple[str, str]]:
    """(row, baseline) benchmark method names: each variant against the base of its own seed, then each
    later seed's base against the first seed's (the yardstick: two runs apart only by their draws)."""
    pairs = [(f"DLIR {run_name(variant, seed)}", f"DLIR {run_name('base', seed)}")
             for seed in seeds for variant in variants if variant != "base"]
    first = f"DLIR {run_name('base', seeds[0])}"
    return pairs + [(f"DLIR {run_name('base', seed)}", first) for seed in seeds[1:]]


def training_data(camus: Path, cache: Path) -> list[str]:
    """The data specs of the recipe's first stage (:func:`EchoRegistrationLib.dlir.data.open_source`)."""
    simulated = f"sim:0-32:{cache}"
    return [str(camus), f"warped:{camus}", simulated, simulated, simulated]


def train_variants(args: argparse.Namespace) -> list[Path]:
    """Train the mask VAEs and every variant at every seed into ``args.work`` (each resumed where it is);
    their folders, seed by seed in the order of ``args.variants``."""
    init = resolve_model(args.init)
    unet = read_config(init)["architecture"]["unet"]
    common = {"device": "cpu", "progress": True, "iterations_per_epoch": 100}
    vaes = []
    for structure in ("lv", "myocardium"):
        folder = args.work / f"vae_{structure}"
        train_vae([str(args.camus), f"sim:0-12:{args.cache}"], folder, structure=structure,
                  iterations=args.vae_iterations, **common)
        vaes.append(folder)
    folders = []
    for seed in args.seeds:
        for variant in args.variants:
            overrides, shape, texture, multiscale = VARIANTS[variant]
            scales = args.scales if multiscale else args.scales[-1:]
            folder = args.work / run_name(variant, seed)
            train_dlir(training_data(args.camus, args.cache), folder, scales=scales,
                       iterations=stage_budget(args.budget, len(scales)), batch_size=args.batch_size,
                       weights={**RECIPE_WEIGHTS, **overrides}, vaes=vaes if shape else (), texture=texture,
                       unet=unet, randomise=0.8, init=init, seed=seed, **common)
            print(f"  trained: {folder.name}", file=sys.stderr, flush=True)
            folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/ablation_generalisation"),
                        help="folder of the VAEs, the variants and the benchmark rows")
    parser.add_argument("--budget", type=int, default=600, help="training steps per variant (default 600)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--scales", type=int, nargs="+", default=[32, 64, 128],
                        help="working rows of the multi-scale variant; the others train at the last")
    parser.add_argument("--vae-iterations", type=int, default=400, help="steps per mask VAE (the recipe's 400)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="variants to train and score (default all; base is required: every other is "
                             "paired with it); seed s > 0 goes into <variant>_seed<s>")
    parser.add_argument("--seeds", type=count(0), nargs="+", default=[0, 1],
                        help="training seeds: every variant is trained once per seed (default 0 1)")
    parser.add_argument("--init", default=SIM_MODEL, help="the model every variant starts from")
    parser.add_argument("--camus", type=Path, default=CAMUS_TRAIN, help="CAMUS train pairs (flat folder)")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"), help="simulated sequences, kept")
    parser.add_argument("--cases", type=int, default=50, help="CAMUS valid patients (default all 50)")
    parser.add_argument("--template-cases", type=int, default=10, help="real-template family cases")
    parser.add_argument("--simus-cases", type=int, default=10, help="SIMUS cases (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if "base" not in args.variants:
        parser.error("the variants are paired with base: include it")
    if len(set(args.variants)) != len(args.variants):
        parser.error(f"--variants must be distinct, got {args.variants}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    if not args.camus.is_dir():
        print(f"skipped: {args.camus} is not there", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    folders = train_variants(args)
    rows_file = args.work / "rows.jsonl"
    rows_file.unlink(missing_ok=True)  # scores of this run only
    networks = [f"DLIR {folder.name}" for folder in folders]
    status = benchmark_generalisation.main(
        ["--models", *map(str, folders), "--methods", *networks, "--low-resolution", "0", "--no-cines",
         "--cases", str(args.cases), "--template-cases", str(args.template_cases),
         "--simus-cases", str(args.simus_cases), "--threads", str(args.threads), "--rows", str(rows_file)])
    if status:
        return status
    rows = benchmark_generalisation.included_rows(rows_file)
    pairs = comparisons(args.variants, args.seeds)
    print(f"\nEach variant - the base of its seed, and each seed's base - the first seed's ({args.budget} steps from "
          f"{args.init}; the networks alone):\n")
    print(benchmark_generalisation.differences_table(rows, pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
