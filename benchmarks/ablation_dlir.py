"""DLIR ablation on simulated apical sequences: which loss terms and multi-scale training help.

Six models (the same U-Net: the shipped model's, or ``--encoder`` / ``--decoder`` /
``--output-stride``) are trained with the same optimiser-step budget on the same simulated sequences
(seeds 0..N-1) and tested on held-out seeds from 10000 (ES registered to ED at the input
resolution, :func:`EchoRegistrationLib.dlir.evaluate`):

1. similarity only (local NCC) + bending energy, at the final scale;
2. + Dice of the warped labels;
3. + shape (latent means of the two mask VAEs, trained first with the same budget);
4. + texture (conditional PatchGAN, adversarial);
5. + multi-scale (the same, trained over ``--scales``: a quarter of the budget at each coarser
   scale, the rest at the finest);
6. + motion: the simulator's true motion supervises the field as well, with the shipped model's
   weight unless ``--weight motion=...`` (the shipped recipe).

Columns: myocardial end-point error at ES (mm, against the simulator's true motion), mean Dice of LV
cavity and myocardium at ES, folding (% of pixels with det J <= 0). The last lines time inference:
a 20-frame sequence of 512 x 422 frames (CAMUS size), every frame to frame 0, on ``--threads`` CPU
threads and on CUDA when present (``--speed-only``: the shipped registration models' timings alone).

Usage (from the repository root)::

    .venv/bin/python benchmarks/ablation_dlir.py --budget 300                  # CPU, tens of minutes
    .venv/bin/python benchmarks/ablation_dlir.py --budget 20000 --train-seeds 400 \\
        --cache sim_cache --device cuda                                          # a GPU, an hour or so

``--budget`` is the number of optimiser steps per model. ``--cache`` keeps simulated sequences
between runs (``echoreg train simulate`` fills one in parallel).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from EchoRegistrationLib import EchoSequence  # noqa: E402
from EchoRegistrationLib.dlir import (DLIRModel, SimulatedSequences, evaluate,  # noqa: E402
                                      load_model, predict_sequence_fields, read_config, train_dlir,
                                      train_vae)
from EchoRegistrationLib.dlir.data import SequenceItem  # noqa: E402
from EchoRegistrationLib.dlir.evaluation import score_ed_es  # noqa: E402
from EchoRegistrationLib.dlir.shipped import (SEQUENTIAL_MODEL, SHIPPED_MODEL, SIM_MODEL,  # noqa: E402
                                              shipped_model_path)
from EchoRegistrationLib.registration import resolve_device  # noqa: E402
from EchoRegistrationLib.spatial import warp  # noqa: E402

FIRST_TEST_SEED = 10_000  # never used for training
UNSUPERVISED = {"motion": 0.0}
NO_LABEL_TERMS = {**UNSUPERVISED, "dice": 0.0, "shape": 0.0, "texture": 0.0}
VARIANTS = [  # name, weights set, shape term, texture term, multi-scale
    ("similarity only", NO_LABEL_TERMS, False, False, False),
    ("+ Dice", {**UNSUPERVISED, "shape": 0.0, "texture": 0.0}, False, False, False),
    ("+ shape", {**UNSUPERVISED, "texture": 0.0}, True, False, False),
    ("+ texture", UNSUPERVISED, True, True, False),
    ("+ multi-scale", UNSUPERVISED, True, True, True),
    ("+ motion", {}, True, True, True),
]


def stage_budget(budget: int, n_scales: int) -> list[int]:
    """Steps per stage: a quarter of the budget at each coarser scale, the rest at the finest."""
    coarse = [budget // 4] * (n_scales - 1)
    return [*coarse, budget - sum(coarse)]


def identity_scores(items: list[SequenceItem]) -> dict[str, float]:
    rows = [score_ed_es(item, torch.zeros(1, 2, *item.sequence.frame_shape)) for item in items]
    return {key: float(np.mean([r[key] for r in rows])) for key in ("epe_es", "dice_es", "folding")}


def time_inference(model: DLIRModel, device: torch.device, repeats: int = 5) -> tuple[float, float]:
    """Best wall seconds of (field prediction, prediction + warping every frame) for a 20-frame
    512 x 422 sequence registered to frame 0."""
    rng = np.random.default_rng(0)
    seq = EchoSequence(rng.random((20, 512, 422), dtype=np.float32) * 255, (0.308, 0.308))
    frames = torch.from_numpy(seq.frames)[:, None].to(device)

    def run(with_warp: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fields = predict_sequence_fields(model, seq, reference=0, device=device)
        if with_warp:
            with torch.inference_mode():
                warp(frames, fields, seq.spacing)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(True)  # warm-up: lazy initialisation, allocator, cuDNN autotuning
    return min(run(False) for _ in range(repeats)), min(run(True) for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=300, help="optimiser steps per model (default 300)")
    parser.add_argument("--train-seeds", type=int, default=40, help="training sequences (seeds from 0)")
    parser.add_argument("--test-seeds", type=int, default=6, help="test sequences (seeds from 10000)")
    parser.add_argument("--frames", type=int, default=10, help="frames per sequence, ED -> ES (default 10)")
    parser.add_argument("--size", type=int, default=256, help="simulated frame size (default 256)")
    parser.add_argument("--scales", type=int, nargs="+", default=[32, 64, 128],
                        help="multi-scale working sizes; the last one is every model's (default 32 64 128)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--encoder", type=int, nargs="+",
                        help="U-Net encoder channels (default: the shipped model's)")
    parser.add_argument("--decoder", type=int, nargs="+",
                        help="U-Net decoder channels (default: the shipped model's)")
    parser.add_argument("--output-stride", type=int,
                        help="field grid / working grid (default: the shipped model's)")
    parser.add_argument("--weight", action="append", default=[], metavar="TERM=WEIGHT",
                        help="loss weight for every model that uses the term, repeatable "
                             "(default: LossWeights' defaults; motion only in the last row)")
    parser.add_argument("--cache", help="folder for simulated sequences (kept between runs)")
    parser.add_argument("--output", help="folder for the models and results.json (default: temporary)")
    parser.add_argument("--device", default="auto", help="training and test device (default auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only time the shipped registration models' inference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.speed_only:
        for name in (SHIPPED_MODEL, SIM_MODEL, SEQUENTIAL_MODEL):
            print(name)
            report_speed(load_model(shipped_model_path(name)), args.threads)
        return 0

    options = {"n_frames": args.frames, "image_size": (args.size, args.size), "cache": args.cache}
    train = SimulatedSequences(range(args.train_seeds), **options)
    test = SimulatedSequences(range(FIRST_TEST_SEED, FIRST_TEST_SEED + args.test_seeds), **options)
    started = time.perf_counter()
    train_items = [train[k] for k in range(len(train))]
    test_items = [test[k] for k in range(len(test))]
    print(f"simulated {len(train_items)} + {len(test_items)} sequences in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    output = Path(args.output or tempfile.mkdtemp(prefix="ablation_dlir_"))
    common = {"device": device, "seed": args.seed, "progress": True}
    vaes = []
    for structure in ("lv", "myocardium"):
        folder = output / f"vae_{structure}"
        history = train_vae(train_items, folder, structure=structure, iterations=args.budget,
                            storage_size=args.scales[-1], **common)
        print(f"VAE {structure}: loss {history[-1]['loss']:.4f}", file=sys.stderr, flush=True)
        vaes.append(folder)

    shipped = read_config(shipped_model_path(SIM_MODEL))
    chosen = {"motion": shipped["training"]["loss"]["weights"]["motion"],
              **{term: float(value) for term, _, value in (w.partition("=") for w in args.weight)}}
    results = [("identity", identity_scores(test_items), 0.0)]
    unet = {key: shipped["architecture"]["unet"][key] if value is None else value
            for key, value in (("encoder", args.encoder), ("decoder", args.decoder),
                               ("output_stride", args.output_stride))}
    for name, variant_weights, shape, texture, multiscale in VARIANTS:
        weights = {**chosen, **variant_weights}
        scales = args.scales if multiscale else args.scales[-1:]
        iterations = stage_budget(args.budget, len(scales))
        folder = output / name.replace("+ ", "plus_").replace(" ", "_")
        started = time.perf_counter()
        train_dlir(train_items, folder, scales=scales, iterations=iterations, batch_size=args.batch_size,
                   weights=weights, vaes=vaes if shape else (), texture=texture, unet=unet, **common)
        seconds = time.perf_counter() - started
        results.append((name, evaluate(folder, test_items, device=device), seconds))
        print(f"  done: {name} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    print(f"\n{args.train_seeds} training sequences, {args.test_seeds} test sequences (seeds "
          f"{FIRST_TEST_SEED}..{FIRST_TEST_SEED + args.test_seeds - 1}), {args.frames} frames "
          f"{args.size}x{args.size}, budget {args.budget} steps of {args.batch_size} pairs per model, "
          f"final working size {args.scales[-1]}, U-Net {unet}, weights {chosen}, "
          f"on {device}\n")
    print("| model | EPE ES (mm) | Dice ES | folding (%) | training (s) |")
    print("|---|---|---|---|---|")
    for name, m, seconds in results:
        print(f"| {name} | {m['epe_es']:.2f} | {m['dice_es']:.3f} | {m['folding']:.3f} | {seconds:.0f} |")
    (output / "results.json").write_text(json.dumps(
        {"arguments": {k: v for k, v in vars(args).items()},
         "results": [{"model": n, **m, "training_seconds": s} for n, m, s in results]}, indent=1))
    print(f"\nmodels and results.json in {output}")
    report_speed(load_model(folder), args.threads)
    return 0


def report_speed(model: DLIRModel, threads: int) -> None:
    fields, total = time_inference(model, torch.device("cpu"))
    print(f"CPU ({threads} threads), 20 frames 512x422 to frame 0, working size {model.working_size}: "
          f"fields {fields:.3f} s, fields + warping {total:.3f} s")
    if torch.cuda.is_available():
        fields, total = time_inference(model, torch.device("cuda"))
        print(f"CUDA ({torch.cuda.get_device_name()}): fields {1000 * fields / 19:.2f} ms per pair, "
              f"{1000 * total / 19:.2f} ms with warping")


if __name__ == "__main__":
    sys.exit(main())
