"""What ``--float32`` costs and changes where the networks would run in reduced precision (a script).

On two simulated sequences, the demo's (seed 2026, A4C, ED -> ES; with ``--frames`` other than 20, its
motion over that many frames) and the speed script's (seed 10000, ``--frames`` frames of ``--shape``), every
frame is registered to the reference by
``register_sequence(seq, "dlir", refine=R)`` for R = 0 (the network alone) and the default refinement
(:data:`EchoRegistrationLib.workflow.DEFAULT_REFINE`), with the networks in their default precision
(:func:`EchoRegistrationLib.dlir.inference.mixed_precision`: bfloat16 on CPUs with AMX) and with
``amp=False`` (float32), in interleaved rounds (:func:`benchmarks.speed_register_sequence.interleaved_seconds`).
Prints, per sequence and refinement, the median and range of the per-round time ratios float32 /
default, and the length of the difference between the two fields (mm, every pixel of every frame):
mean and largest. On a CPU without AMX both rows run float32: the ratio is about 1 and the fields equal.

Usage (repository root)::

    .venv/bin/python benchmarks/compare_precisions.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.speed_register_sequence import interleaved_seconds  # noqa: E402
from EchoRegistrationLib.cli.common import count  # noqa: E402
from EchoRegistrationLib.demo import DEMO_SEED  # noqa: E402
from EchoRegistrationLib.dlir.inference import network_precision  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.workflow import DEFAULT_REFINE  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=count(32), nargs=2, default=[422, 512], metavar=("ROWS", "COLUMNS"),
                        help="the speed sequence's frames, at least 32 x 32 "
                             "(default 422 x 512, the CAMUS cines' geometry)")
    parser.add_argument("--frames", type=count(2), default=20, help="frames of each sequence (default 20)")
    parser.add_argument("--repeats", type=count(1), default=4, help="rounds (default 4)")
    parser.add_argument("--threads", type=count(1), default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sequences = {
        f"demo (seed {DEMO_SEED})": simulate_sequence(view="A4C", cycle="half", n_frames=args.frames,
                                                      seed=DEMO_SEED).sequence,
        "speed": simulate_sequence(n_frames=args.frames, image_size=tuple(args.shape), seed=10_000).sequence,
    }
    default = network_precision(torch.device("cpu"))
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, default precision {default}, "
          f"{args.repeats} rounds; difference: length of the field difference over every pixel and frame")
    print(f"| sequence | frames x rows x columns | refine | time float32 / {default} (lowest - highest) "
          "| mean difference mm | largest mm |")
    print("|---|---|---|---|---|---|")
    for name, seq in sequences.items():
        for refine in (0, DEFAULT_REFINE):
            fields = {}

            def run(amp: bool, refine: int = refine, seq=seq) -> None:
                fields[amp] = register_sequence(seq, "dlir", refine=refine, amp=amp, device="cpu").displacement

            _, ratios = interleaved_seconds({"default": lambda: run(True), "float32": lambda: run(False)},
                                            args.repeats)
            ratio = ratios["float32"]
            difference = np.linalg.norm(fields[True] - fields[False], axis=-1)
            size = " x ".join(map(str, (seq.n_frames, *seq.frame_shape)))
            print(f"| {name} | {size} | {refine} | {statistics.median(ratio):.2f} ({min(ratio):.2f} - "
                  f"{max(ratio):.2f}) | {difference.mean():.3f} | {difference.max():.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
