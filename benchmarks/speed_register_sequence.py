"""Wall time of register_sequence beside OpenCV DIS on one simulated sequence (a script, not a test).

Usage (repository root)::

    .venv/bin/python benchmarks/speed_register_sequence.py --threads 2            # 20 x 256 x 256
    .venv/bin/python benchmarks/speed_register_sequence.py --shape 512 422 --methods dlir dlir-sequential
    .venv/bin/python benchmarks/speed_register_sequence.py --shape 512 422 --methods dlir dlir:runs/my_model \
        fields:echoreg-dlir-sim

Every frame of a 20-frame simulated sequence (seed 10000, ``--shape`` rows x columns, the sector
depth of 140-160 mm over the rows: about 0.3 mm pixels at 512 rows) is
registered to frame 0 (or tracked, for the sequential modes) by each method, and by OpenCV DIS (medium
preset, :func:`benchmarks.peer_methods.opencv_dis`, frame to frame 0) in the same run, in rounds
that call each method once (:func:`interleaved_seconds`). Prints the median seconds per sequence and
per frame pair, and the median and range of the per-round ratios to DIS; torch and OpenCV both get
``--threads`` threads. The times are those a user gets from ``register_sequence`` (reading the
frames onto the working grid, the network or the optimiser, the fields back in mm, quality checks),
the model loaded once beforehand, the networks in bfloat16 on CPUs with AMX as by default
(:func:`EchoRegistrationLib.dlir.inference.mixed_precision`; the ``dlir-float32`` row keeps float32);
``fields:MODEL`` rows time the network's fields alone (on the input grid,
in mm: what DIS gives), ``enhance:MODEL`` rows the enhancement of every frame (per frame pair: per frame
but the first). Machines here are shared: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer_methods import opencv_dis, peer_sequence_fields  # noqa: E402
from EchoRegistrationLib.device import resolve_device  # noqa: E402
from EchoRegistrationLib.dlir.inference import network_precision, predict_sequence_fields  # noqa: E402
from EchoRegistrationLib.enhancement.inference import enhance_sequence, load_enhancer  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SEQUENTIAL_MODEL, SHIPPED_MODEL  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.sequence import EchoSequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.workflow import DEFAULT_REFINE  # noqa: E402

# name: (method, register_sequence options)
METHODS = {
    "rigid": ("rigid", {"mode": "sequential"}),
    "affine": ("affine", {"mode": "sequential"}),
    "deformable": ("deformable", {"mode": "sequential"}),
    "deformable-to-reference": ("deformable", {"mode": "to_reference"}),
    "dlir": ("dlir", {"model": SHIPPED_MODEL}),
    # float32 where the default would run the networks in bfloat16 (CPUs with AMX, CUDA)
    "dlir-float32": ("dlir", {"model": SHIPPED_MODEL, "amp": False}),
    "dlir-sequential": ("dlir", {"model": SEQUENTIAL_MODEL}),
    "dlir-refine": ("dlir", {"model": SHIPPED_MODEL, "refine": DEFAULT_REFINE}),  # the command line's default
}
DEFAULT_METHODS = ["deformable", "deformable-to-reference", "dlir"]
DLIR_PREFIX = "dlir:"  # "dlir:MODEL": any installed model or checkpoint, alone
FIELDS_PREFIX = "fields:"  # "fields:MODEL": the network's fields on the input grid only, as DIS gives
ENHANCE_PREFIX = "enhance:"  # "enhance:MODEL": enhancement of every frame (enhance_sequence) alone
PREFIXES = (DLIR_PREFIX, FIELDS_PREFIX, ENHANCE_PREFIX)


def method_of(name: str) -> tuple[str, dict]:
    """(method, register_sequence options) of a :data:`METHODS` name or ``dlir:MODEL``."""
    if name.startswith(DLIR_PREFIX):
        return "dlir", {"model": name[len(DLIR_PREFIX):]}
    return METHODS[name]


def method_name(text: str) -> str:
    """argparse type: a :data:`METHODS` name, or one of :data:`PREFIXES` followed by a model."""
    if text in METHODS or any(text.startswith(p) and len(text) > len(p) for p in PREFIXES):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: not one of {sorted(METHODS)} nor "
                                     f"{', '.join(p + 'MODEL' for p in PREFIXES)}")


def interleaved_seconds(runs: dict[str, Callable[[], object]], repeats: int,
                        device: str = "cpu") -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall seconds of every call of ``runs`` taken in rounds: one warm-up call of each, then
    ``repeats`` rounds that call each run once, in order. Returns ({name: seconds per round},
    {name: per-round ratio to the first run}): on a shared machine whose speed drifts, a run and
    the first one timed a few seconds apart meet the same load, so the per-round ratios scatter
    far less than ratios of medians taken minutes apart. On a CUDA ``device`` each call is timed
    until the device has finished its queued work."""
    finish = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" else (lambda: None)
    for run in runs.values():
        run()
        finish()
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            finish()
            seconds[name].append(time.perf_counter() - start)
    first = seconds[next(iter(runs))]
    return seconds, {name: [t / f for t, f in zip(times, first)] for name, times in seconds.items()}


def method_runs(seq: EchoSequence, names: list[str], device: str) -> dict[str, Callable[[], object]]:
    """{"OpenCV DIS": its fields of every frame to frame 0, then each named method: a call to time}."""
    runs = {"OpenCV DIS": lambda: peer_sequence_fields(opencv_dis, seq, 0)}
    for name in names:
        if name.startswith(FIELDS_PREFIX):
            model = name[len(FIELDS_PREFIX):]
            runs[name] = lambda model=model: predict_sequence_fields(model, seq, reference=0, device=device)
        elif name.startswith(ENHANCE_PREFIX):
            generator = load_enhancer(name[len(ENHANCE_PREFIX):], device)  # loaded once, not timed
            runs[name] = lambda generator=generator: enhance_sequence(seq, generator, device=device)
        else:
            method, options = method_of(name)
            runs[name] = lambda method=method, options=options: register_sequence(seq, method, device=device,
                                                                                 **options)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=2, default=[256, 256], metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--methods", nargs="+", type=method_name, default=DEFAULT_METHODS,
                        help=f"of {sorted(METHODS)} or {DLIR_PREFIX}MODEL (default {DEFAULT_METHODS})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--device", default="cpu", help='"cpu" (default), "cuda", "auto" ...')
    args = parser.parse_args(argv)
    args.device = str(resolve_device(args.device))  # "auto" -> "cuda" or "cpu"
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    seq = simulate_sequence(n_frames=args.frames, image_size=tuple(args.shape), seed=10_000).sequence
    seconds, ratios = interleaved_seconds(method_runs(seq, args.methods, args.device), args.repeats, args.device)
    pairs = args.frames - 1
    print(f"{args.frames} frames of {args.shape[0]} x {args.shape[1]} to frame 0, torch {torch.__version__}, "
          f"device {args.device}, {torch.get_num_threads()} threads, networks in "
          f"{network_precision(torch.device(args.device))}, {args.repeats} rounds (each method once "
          f"per round, in table order); medians over the rounds; x DIS: the median of the per-round ratios "
          f"(lowest - highest)")
    print("| method | s / sequence | ms / pair | x DIS | (lowest - highest) |")
    print("|---|---|---|---|---|")
    for name, times in seconds.items():
        label = f"{name} (CPU, {args.threads} threads)" if name == "OpenCV DIS" and args.device != "cpu" else name
        median, ratio = statistics.median(times), ratios[name]
        print(f"| {label} | {median:.3f} | {1000 * median / pairs:.1f} | {statistics.median(ratio):.2f} "
              f"| {min(ratio):.2f} - {max(ratio):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
