"""``echoreg strain``: load, register, compute strain, volumes and EF, write tables and pictures.

    echoreg strain INPUT [--labels FILE | --landmarks x1,y1,x2,y2,x3,y3] -o OUTDIR

The myocardium at the reference frame comes from ``--labels`` (a CAMUS-coded label file on the
same grid; the reference frame's map), from ``--landmarks`` (mm, x,y order: annulus, apex,
annulus, with ``--wall-width``), or from the input's own labels (CAMUS folders).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

from ..sequence import EchoDataError, EchoSequence

if TYPE_CHECKING:
    from .myocardium import Myocardium


def parse_landmarks(text: str) -> np.ndarray:
    """(3, 2) mm points from "x1,y1,x2,y2,x3,y3" (argparse type)."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or not np.isfinite(values).all():
        raise argparse.ArgumentTypeError(f"expected six numbers x1,y1,x2,y2,x3,y3 in mm (annulus, apex, "
                                         f"annulus), got {text!r}")
    return np.array(values).reshape(3, 2)


def add_strain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``strain`` subcommand on the ``echoreg`` sub-parsers; returns its parser."""
    from ..cli import _add_input_options, add_slicer_views_option

    parser = subparsers.add_parser(
        "strain", help="register a sequence, then write GLS, segmental strain, volumes and EF",
        description="Register every frame to the reference (ED) frame, then compute GLS, segmental "
                    "strain, strain maps, LV volumes and EF and write CSV tables, a JSON summary and "
                    "PNG pictures.")
    _add_input_options(parser)
    parser.add_argument("--landmarks", type=parse_landmarks, metavar="x1,y1,x2,y2,x3,y3",
                        help="myocardium from three endocardial points in mm (x, y): mitral annulus, "
                             "apex, mitral annulus (instead of --labels)")
    parser.add_argument("--wall-width", type=float,
                        help="myocardial wall width in mm with --landmarks (default 10)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--method", default="deformable", choices=["rigid", "affine", "deformable"],
                        help="registration method (default deformable)")
    parser.add_argument("--reference", type=int,
                        help="reference frame (default: ED when known, else 0); strain is relative to it")
    parser.add_argument("--apical-view", choices=["A4C", "A2C"],
                        help="segment names when the input does not record its view")
    parser.add_argument("--full-cycle", action=argparse.BooleanOptionalAction, default=None,
                        help="the last frame is the next ED: report loop-closure drift (default: "
                             "when ED is frame 0 and ES lies inside the sequence)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier run")
    add_slicer_views_option(parser)
    parser.set_defaults(run=run_strain_command)
    return parser


def _myocardium(args: argparse.Namespace, seq: EchoSequence, reference: int) -> Myocardium:
    """The reference-frame myocardium from --landmarks, else from the (attached) labels."""
    from .compute import myocardium_at_reference
    from .myocardium import myocardium_from_landmarks

    if args.landmarks is not None:
        width = {} if args.wall_width is None else {"wall_width": args.wall_width}
        return myocardium_from_landmarks(args.landmarks, seq.frame_shape, seq.spacing,
                                         source="--landmarks", **width)
    if seq.labels is None:
        raise EchoDataError(seq.source, "no myocardium: the input has no labels; pass --labels FILE "
                                        "or --landmarks x1,y1,x2,y2,x3,y3 (mm)")
    return myocardium_at_reference(seq, reference, source=args.labels or seq.source)


def run_strain_command(args: argparse.Namespace) -> int:
    """The ``echoreg strain`` command; returns the exit status."""
    from tqdm import tqdm

    from ..cli import _load, write_slicer_views
    from ..registration import register_sequence
    from .outputs import check_strain_outputs, write_strain_outputs

    if args.labels is not None and args.landmarks is not None:
        raise EchoDataError(args.input, "give the myocardium by --labels or by --landmarks, not both")
    seq = _load(args)
    check_strain_outputs(args.output, args.overwrite)  # fail before the work, not after
    reference = (seq.ed_index or 0) if args.reference is None else args.reference
    if not 0 <= reference < seq.n_frames:
        raise EchoDataError(seq.source, f"reference frame {reference} is outside 0..{seq.n_frames - 1}")
    myocardium = _myocardium(args, seq, reference)
    with tqdm(total=seq.n_frames - 1, unit="pair", desc=f"{args.method} registration") as bar:
        registration = register_sequence(seq, args.method, reference=reference, device=args.device,
                                         progress=lambda done, _: bar.update(done - bar.n))
    result, paths = write_strain_outputs(seq, registration, myocardium, args.output, args.overwrite,
                                         view=args.apical_view, full_cycle=args.full_cycle)
    peaks = result.peaks()
    gls = peaks["GLS endocardial"]
    print(f"registered {seq.n_frames} frames to frame {reference} in {registration.seconds:.1f} s; "
          f"strain in {result.seconds:.2f} s")
    print(f"peak GLS {gls['peak_pct']:.1f} % (endocardial) at {1000 * gls['time_to_peak_s']:.0f} ms, "
          f"{peaks['GLS mid-wall']['peak_pct']:.1f} % (mid-wall); "
          f"EDV {result.edv:.0f} ml, ESV {result.esv:.0f} ml, EF {result.ef:.0f} %; "
          f"tracking quality {np.mean(result.quality.score):.2f}")
    print(f"wrote {', '.join(p.name for p in paths)} in {args.output}")
    write_slicer_views(args, seq, registration, result)
    return 0
