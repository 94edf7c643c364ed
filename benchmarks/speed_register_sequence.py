"""Wall time of register_sequence on a 20-frame 256 x 256 simulated sequence (a script, not a test).

Usage (repository root)::

    .venv/bin/python benchmarks/speed_register_sequence.py --threads 2 --repeats 3

Prints the median seconds per sequence and per frame pair of each optimisation method, on the CPU
(or ``--device cuda``). Run it on a quiet machine: timings drift by up to +-30 % with other load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402

RUNS = [("rigid", "sequential"), ("affine", "sequential"), ("deformable", "sequential"),
        ("deformable", "to_reference")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seq = simulate_sequence(n_frames=args.frames, image_size=(args.size, args.size), seed=10_000).sequence
    register_sequence(seq, "deformable", device=args.device)  # warm-up
    print(f"{args.frames} frames of {args.size}x{args.size}, torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print("| method | mode | s / sequence | ms / pair |")
    print("|---|---|---|---|")
    for method, mode in RUNS:
        times = [register_sequence(seq, method, mode=mode, device=args.device).seconds
                 for _ in range(args.repeats)]
        median = statistics.median(times)
        print(f"| {method} | {mode} | {median:.2f} | {1000 * median / (args.frames - 1):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
