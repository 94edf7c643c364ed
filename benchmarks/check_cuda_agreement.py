"""The DLIR network on a GPU against the CPU: agreement and per-pair time in a batch (a script).

For each ``--frames`` count, a simulated sequence (seed 10000, ``--shape`` rows x columns, as
:mod:`benchmarks.speed_register_sequence`) has every frame registered to frame 0 by the network alone
(:func:`EchoRegistrationLib.dlir.inference.predict_sequence_fields`, the frames batched
``--chunk-size`` pairs at a time):

* on the CPU in float32 (the reference), and in bfloat16 when the CPU has AMX (``amp``, the default
  there: :func:`EchoRegistrationLib.dlir.inference.mixed_precision`);
* on ``--device`` in float32 and with mixed precision (``amp``: bfloat16 where the device supports it,
  else float16).

Prints, per row, the median milliseconds per frame pair over ``--repeats`` rounds that call every row
once (after a warm-up; a CUDA device synchronised before the clock is read;
:func:`benchmarks.speed_register_sequence.interleaved_seconds`), its ratio to OpenCV DIS on the CPU
(the median of the per-round ratios) and the largest and mean absolute difference (mm) of the fields
from the CPU's, over all pixels and over the myocardium of frame 0 (end-point distance). With
``--device cpu`` only the CPU rows are printed (float32's differences 0): a dry run of the script, and on a
CPU with AMX the check of its bfloat16 rows.

Usage (repository root; on a lent GPU machine, ``scripts/device_check.sh`` runs it)::

    python benchmarks/check_cuda_agreement.py --device cuda --frames 20 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer_methods import opencv_dis, peer_sequence_fields  # noqa: E402
from benchmarks.speed_register_sequence import interleaved_seconds  # noqa: E402
from EchoRegistrationLib.dlir.inference import cpu_has_amx, network_precision, predict_sequence_fields  # noqa: E402
from EchoRegistrationLib.dlir.shipped import SHIPPED_MODEL  # noqa: E402
from EchoRegistrationLib.sequence import LABEL_MYOCARDIUM  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device to check against the CPU (default cuda)")
    parser.add_argument("--model", default=SHIPPED_MODEL)
    parser.add_argument("--frames", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--shape", type=int, nargs=2, default=[512, 422], metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--chunk-size", type=int, default=32, help="frame pairs per network batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of torch and OpenCV")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}): nothing to check", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.model} on {name} against the CPU ({args.threads} threads), torch {torch.__version__}, "
          f"{args.shape[0]} x {args.shape[1]} frames to frame 0, {args.chunk_size} pairs per batch, "
          f"medians of {args.repeats} rounds")
    if device.type == "cpu":
        print("a dry run: the CPU against itself (float32; bfloat16 too where the CPU has AMX), no GPU rows")
    print("| frames | device | precision | ms / pair | x DIS (CPU) | largest |x or y diff| mm | mean |x or y diff| mm "
          "(every frame) | mean end-point diff mm, myocardium |")
    print("|---|---|---|---|---|---|---|---|")
    for frames in args.frames:
        seq = simulate_sequence(n_frames=frames, image_size=tuple(args.shape), seed=10_000).sequence
        pairs = frames - 1
        wall = seq.label_map(0) == LABEL_MYOCARDIUM

        def fields(dev: torch.device, amp: bool) -> torch.Tensor:
            return predict_sequence_fields(args.model, seq, reference=0, device=dev, chunk_size=args.chunk_size,
                                           amp=amp)

        reference = fields(torch.device("cpu"), False).cpu()
        rows = [("cpu", torch.device("cpu"), False)] + ([("cpu", torch.device("cpu"), True)] if cpu_has_amx() else [])
        if device.type != "cpu":
            rows += [(str(device), device, False), (str(device), device, True)]
        runs = {"OpenCV DIS": lambda: peer_sequence_fields(opencv_dis, seq, 0),
                **{row: lambda dev=row[1], amp=row[2]: fields(dev, amp) for row in rows}}
        seconds, ratios = interleaved_seconds(runs, args.repeats, str(device))
        dis = 1000 * statistics.median(seconds["OpenCV DIS"])
        print(f"| {frames} | OpenCV DIS (CPU) | - | {dis / pairs:.2f} | 1.00 | - | - | - |")
        for row in rows:
            label, dev, amp = row
            ms = 1000 * statistics.median(seconds[row])
            difference = (fields(dev, amp).cpu() - reference).abs()
            myocardium = difference.norm(dim=1)[:, torch.from_numpy(wall)]
            precision = network_precision(dev, amp)
            print(f"| {frames} | {label} | {precision} | {ms / pairs:.2f} | {statistics.median(ratios[row]):.2f} | "
                  f"{float(difference.max()):.4f} | {float(difference.mean()):.5f} | "
                  f"{float(myocardium.mean()):.5f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
