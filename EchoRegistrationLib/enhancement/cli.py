"""Enhancement on the command line: ``echoreg train enhancer``, ``echoreg enhance`` and the
``--enhance MODEL`` option of ``register`` and ``strain``."""

from __future__ import annotations

import argparse
from typing import Any


def add_enhance_option(parser: argparse.ArgumentParser) -> None:
    """``--enhance MODEL`` on a registering command (``args.enhance``, None when absent)."""
    parser.add_argument("--enhance", metavar="MODEL",
                        help="enhance the frames first with this enhancement model (installed name or "
                             "checkpoint folder; echoreg train enhancer); off by default")


def _cmd_enhance(args: argparse.Namespace) -> int:
    from ..cli import _load
    from ..io.dispatch import save_sequence
    from .inference import enhance_sequence

    seq = enhance_sequence(_load(args), args.model, device=args.device)
    out = save_sequence(seq, args.output, overwrite=args.overwrite)
    print(f"wrote {out} ({seq.n_frames} enhanced frames)")
    return 0


def add_enhance_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``enhance`` subcommand: enhance a sequence and save it."""
    from ..cli import _add_input_options, device_name

    parser = subparsers.add_parser("enhance", help="enhance an echo sequence (CycleGAN) and save it")
    _add_input_options(parser)
    parser.add_argument("-o", "--output", required=True, help="output file; the suffix chooses the format")
    parser.add_argument("--model", required=True, help="enhancement model: installed name or checkpoint folder")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(run=_cmd_enhance)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from ..dlir.cli import _finish
    from .training import train_enhancer

    weights = dict(args.weight or [])
    history = train_enhancer(args.low, args.high, args.output, validation=args.validation,
                             iterations=args.iterations, crop=args.crop, width=args.width,
                             blocks=args.blocks, learning_rate=args.learning_rate,
                             weights=weights or None, licence=args.licence,
                             iterations_per_epoch=args.iterations_per_epoch, seed=args.seed,
                             device=args.device, resume=args.resume)
    return _finish(history, args.output)


def add_train_enhancer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``train enhancer`` on the ``train`` sub-parsers."""
    from ..dlir.cli import _weight

    parser = subparsers.add_parser("enhancer", help="train the enhancement CycleGAN (low -> high quality)")
    parser.add_argument("--low", action="append", required=True,
                        help="low-quality source, repeatable: degraded:START-STOP (degraded simulator "
                             "seeds), sim:START-STOP or a folder")
    parser.add_argument("--high", action="append", required=True,
                        help="high-quality source, repeatable: sim:START-STOP or a folder (e.g. the CAMUS "
                             "root: the model then carries CAMUS's CC BY-NC-SA 4.0 terms)")
    parser.add_argument("--validation", help="degraded:START-STOP seeds scored against their clean frames")
    parser.add_argument("-o", "--output", required=True, help="checkpoint folder")
    parser.add_argument("--iterations", type=int, default=2000, help="steps (default 2000)")
    parser.add_argument("--crop", type=int, default=80, help="crop side in model pixels (default 80)")
    parser.add_argument("--width", type=int, default=16, help="generator width (default 16)")
    parser.add_argument("--blocks", type=int, default=6, help="generator residual blocks (default 6)")
    parser.add_argument("--learning-rate", type=float, default=2e-4, help="Adam step size (default 2e-4)")
    parser.add_argument("--weight", type=_weight, action="append",
                        help="loss weight TERM=WEIGHT, repeatable (adversarial, cycle, identity, ssim, "
                             "illumination)")
    parser.add_argument("--licence", help="terms of the weights for the config (default: BSD-3-Clause for "
                                          "simulated data only, else unknown)")
    parser.add_argument("--iterations-per-epoch", type=int, default=100,
                        help="steps between history rows and checkpoints (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="refuse to continue a run found in the output folder")
    parser.set_defaults(run=_cmd_train)
    return parser
