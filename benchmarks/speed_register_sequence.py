"""Wall time of register_sequence beside OpenCV DIS on one simulated sequence (a script, not a test).

Usage (repository root)::

    .venv/bin/python benchmarks/speed_register_sequence.py --threads 2 --repeats 3            # 20 x 256 x 256
    .venv/bin/python benchmarks/speed_register_sequence.py --shape 512 422 --methods dlir dlir-sequential
    .venv/bin/python benchmarks/speed_register_sequence.py --shape 512 422 --methods dlir dlir:runs/my_model \
        fields:echoreg-dlir-sim

Every frame of a 20-frame simulated sequence (seed 10000, ``--shape`` rows x columns, the sector
depth of 140-160 mm over the rows: about 0.3 mm pixels at 512 rows) is
registered to frame 0 (or tracked, for the sequential modes) by each method, and by OpenCV DIS (medium
preset, :func:`benchmarks.peer_methods.opencv_dis`, frame to frame 0) in the same run. Prints the
median seconds per sequence and per frame pair and the ratio to DIS's median; torch and OpenCV both
get ``--threads`` threads. The times are those a user gets from ``register_sequence`` (reading the
frames onto the working grid, the network or the optimiser, the fields back in mm, quality checks),
the model loaded once beforehand; ``fields:MODEL`` rows time the network's fields alone (on the input grid,
in mm: what DIS gives), ``enhance:MODEL`` rows the enhancement of every frame (per frame pair: per frame
but the first). Machines here are shared: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer_methods import opencv_dis, peer_sequence_fields  # noqa: E402
from EchoRegistrationLib.dlir.inference import predict_sequence_fields  # noqa: E402
from EchoRegistrationLib.enhancement.inference import enhance_sequence, load_enhancer  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SEQUENTIAL_MODEL, SHIPPED_MODEL  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.sequence import EchoSequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402

# name: (method, register_sequence options)
METHODS = {
    "rigid": ("rigid", {"mode": "sequential"}),
    "affine": ("affine", {"mode": "sequential"}),
    "deformable": ("deformable", {"mode": "sequential"}),
    "deformable-to-reference": ("deformable", {"mode": "to_reference"}),
    "dlir": ("dlir", {"model": SHIPPED_MODEL}),
    "dlir-sequential": ("dlir", {"model": SEQUENTIAL_MODEL}),
    "dlir-refine": ("dlir", {"model": SHIPPED_MODEL, "refine": 40}),
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


def median_seconds(run, repeats: int, device: str = "cpu") -> float:
    """Median wall seconds of ``repeats`` calls of ``run()`` after one warm-up call; on a CUDA
    ``device`` each call is timed until the device has finished its queued work."""
    finish = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" else (lambda: None)
    run()
    finish()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        finish()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_methods(seq: EchoSequence, names: list[str], repeats: int, device: str) -> dict[str, float]:
    """Median seconds per sequence of OpenCV DIS (key "OpenCV DIS") and of each named method."""
    seconds = {"OpenCV DIS": median_seconds(lambda: peer_sequence_fields(opencv_dis, seq, 0), repeats)}
    for name in names:
        if name.startswith(FIELDS_PREFIX):
            model = name[len(FIELDS_PREFIX):]
            run = lambda: predict_sequence_fields(model, seq, reference=0, device=device)  # noqa: E731
        elif name.startswith(ENHANCE_PREFIX):
            generator = load_enhancer(name[len(ENHANCE_PREFIX):], device)  # loaded once, not timed
            run = lambda: enhance_sequence(seq, generator, device=device)  # noqa: E731
        else:
            method, options = method_of(name)
            run = lambda: register_sequence(seq, method, device=device, **options)  # noqa: E731
        seconds[name] = median_seconds(run, repeats, device)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=2, default=[256, 256], metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--methods", nargs="+", type=method_name, default=DEFAULT_METHODS,
                        help=f"of {sorted(METHODS)} or {DLIR_PREFIX}MODEL (default {DEFAULT_METHODS})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    seq = simulate_sequence(n_frames=args.frames, image_size=tuple(args.shape), seed=10_000).sequence
    seconds = time_methods(seq, args.methods, args.repeats, args.device)
    pairs = args.frames - 1
    print(f"{args.frames} frames of {args.shape[0]} x {args.shape[1]} to frame 0, torch {torch.__version__}, "
          f"device {args.device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| method | s / sequence | ms / pair | x DIS |")
    print("|---|---|---|---|")
    for name, median in seconds.items():
        label = f"{name} (CPU, {args.threads} threads)" if name == "OpenCV DIS" and args.device != "cpu" else name
        print(f"| {label} | {median:.3f} | {1000 * median / pairs:.1f} | {median / seconds['OpenCV DIS']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
