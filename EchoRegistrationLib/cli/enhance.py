"""``echoreg enhance``: enhance a sequence and save it (``--enhance MODEL`` of ``register``,
``strain`` and ``batch`` is in :mod:`.common`; ``echoreg train enhancer`` in :mod:`.train`)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_input_options, device_name, print_warnings, refuse_unheld_attachments, study_from_args


def _cmd_enhance(args: argparse.Namespace) -> int:
    """``echoreg enhance``: what the output's format does not hold is refused before the work when an option
    attached it, else named by one warning line each (:func:`.common.refuse_unheld_attachments`); the mask is
    used (0 outside), not attached."""
    from ..enhancement.inference import enhance_sequence
    from ..io.dispatch import save_sequence

    seq = study_from_args(args).load()
    dropped = refuse_unheld_attachments(seq, args, ("--labels", "--frame-rate"),
                                        used={"mask": "the enhancement used it (0 outside), but it is not written"})
    seq = enhance_sequence(seq, args.model, device=args.device)
    out = save_sequence(seq, args.output, overwrite=args.overwrite)
    print_warnings(dropped)
    print(f"wrote {out} ({seq.n_frames} enhanced frames)")
    return 0


def add_enhance_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``enhance`` subcommand: enhance a sequence and save it."""
    parser = subparsers.add_parser("enhance", help="enhance an echo sequence (CycleGAN) and save it")
    add_input_options(parser, labels_help="refused: no format enhance writes holds labels (give the label map "
                                          "with the enhanced file to echoreg register or strain)")
    parser.add_argument("-o", "--output", required=True, help="output file; the suffix chooses the format")
    parser.add_argument("--model", required=True, help="enhancement model: installed name or checkpoint folder")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(run=_cmd_enhance)
    return parser
