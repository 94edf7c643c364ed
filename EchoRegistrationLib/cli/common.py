"""What every ``echoreg`` subcommand shares: the one-line argument parser, argument types, the
input and registration options (one definition, so ``register``, ``strain`` and ``batch`` take the
same ones), the conversion of options to :class:`~..workflow.Study` /
:class:`~..workflow.WorkflowSettings`, and the one-line warning and error formats."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sequence import EchoDataError, error_line  # noqa: F401 (the CLI's error format)
from ..workflow import (DEFAULT_METHOD, DEFAULT_REFINE, METHODS, Analysis, Study, WorkflowSettings,
                        parse_landmarks)

# EchoDataError covers bad input and model files; OSError an unreadable input or an output
# location that cannot be written (read-only, full, below a file, existing files).
INPUT_ERRORS = (EchoDataError, OSError)
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``echoreg register: error: ...``)
    with exit status 2, like every other error of the command."""

    def error(self, message: str):  # noqa: D102 (argparse API)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str) -> float:
    """``text`` as a float; nan when it is not a number (which every bound below refuses)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_number(text: str) -> float:
    """argparse type: a finite number >= 0 (a loss weight, a size in mm)."""
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def share(text: str) -> float:
    """argparse type: a number in [0, 1] (a share of the training pairs)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def anchor_fraction(text: str) -> float:
    """argparse type: a number in [0, 1) (the systole anchor's place; 0: none)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) (0: no anchor), got {text!r}")
    return value


def count(minimum: int):
    """argparse type factory: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value
    return parse


def option_value(args: argparse.Namespace, option: str) -> Any:
    """The parsed value of ``option`` ("--frame-rate") in ``args`` (None or False when not given)."""
    return getattr(args, option[2:].replace("-", "_"))


def port_number(text: str) -> int:
    """argparse type: a TCP port, a whole number 0..65535 (0: any free port)."""
    value = count(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535 (0: any free port), got {value}")
    return value


def device_name(text: str) -> str:
    """argparse type: a device this machine has ("auto", "cpu", "cuda", "cuda:N")."""
    from ..device import resolve_device

    try:
        resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def landmarks_type(text: str) -> np.ndarray:
    """argparse type: (3, 2) points from "x1,y1,x2,y2,x3,y3" (:func:`..workflow.parse_landmarks`)."""
    try:
        return parse_landmarks(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def print_warnings(lines: Sequence[str]) -> None:
    """Print each warning as one line on stderr (``echoreg: warning: ...``)."""
    for line in lines:
        print(f"echoreg: warning: {line}", file=sys.stderr)


def describe_model_use(parameters: Mapping[str, Any], reused: str | None = None) -> str:
    """How a DLIR registration used its model, from its ``parameters`` (model, licence, passes and their
    precision (when recorded), the correction stage, the systole anchor, and the refinement's steps per
    level when known, refine): "model NAME (licence: TERMS; 2 passes of the network per pair in bfloat16;
    then its correction stage on 192 rows; systole anchor 0.6: later systolic frames registered through
    frame 11; refine 40: up to 20 + 10 optimisation steps, coarse to fine, on the images and the model's
    anatomy maps (weight 0.1))". ``reused``: the folder of a registration reused as it was made
    (``echoreg strain --registration``), whose unused anchor is then said to be that registration's (the ES
    given now does not change it)."""
    details = [f"licence: {parameters.get('licence') or 'unknown'}"]
    if "passes" in parameters:
        passes = parameters["passes"]
        precision = parameters.get("network_precision")  # absent from reports written before it was recorded
        details.append(f"{passes} pass{'es' if passes != 1 else ''} of the network per pair"
                       + (f" in {precision}" if precision else ""))
    if parameters.get("correction_rows"):
        details.append(f"then its correction stage on {parameters['correction_rows']} rows")
    anchor = parameters.get("anchor")
    used, mismatch = parameters.get("refine_start_used"), parameters.get("refine_start_mismatch")
    other = "direct" if used == "chained" else "chained"
    steps = parameters.get("refine_iterations")  # absent from reports written before it was recorded
    first = " after the refinement's first level" if isinstance(steps, list) and len(steps) > 1 else ""
    compared = "" if not mismatch else (f", its frames matching the reference better than the {other} start's{first} "
                                        f"(mean squared difference {mismatch[used]:.4g} against "
                                        f"{mismatch[other]:.4g})")
    if used == "chained":
        key = parameters.get("refine_chain_key_seconds")  # None: every frame (unknown times, or reports before it)
        level = " at that level" if first else ""
        previous = (f"the refined field{level} of the last key frame before it, key frames at least {key:g} s apart,"
                    if key else f"the previous one's refined field{level}")
        details.append(f"the refinement {'kept' if mismatch else 'started from'} the chained start (each frame from "
                       f"{previous} and the network's step between them; the systole anchor not used){compared}")
    elif parameters.get("anchor_frame") is not None:
        details.append(f"systole anchor {anchor}: later systolic frames registered through frame "
                       f"{parameters['anchor_frame']}")
    elif isinstance(anchor, float) and anchor > 0 and reused:
        es = parameters.get("es_frame")  # absent from reports written before it was recorded
        made = "" if "es_frame" not in parameters else " without ES" if es is None else f" with ES frame {es}"
        details.append(f"systole anchor {anchor} not used when {reused} was registered{made} (it needs ES after the "
                       f"reference and an anchor frame with signal between them): every frame registered directly, "
                       f"as reused (--registration), whatever ES the input has now; register again to use the "
                       f"anchor")
    elif isinstance(anchor, float) and anchor > 0:
        details.append(f"systole anchor {anchor} not used (it needs ES after the reference, from the file or "
                       f"--es-frame, and an anchor frame with signal between them): every frame registered directly")
    refine = parameters.get("refine") or 0
    if not refine:
        details.append("not refined")
    else:
        where = "" if not steps else \
            f": up to {' + '.join(map(str, steps))} optimisation step{'s' if sum(steps) != 1 else ''}, " \
            f"{'coarse to fine' if len(steps) > 1 else 'at full resolution'}"
        weight = parameters.get("refine_anatomy_weight", 0)  # None: the model has no anatomy network
        if weight:
            guide = f", on the images and the model's anatomy maps (weight {weight:g})"
        elif "refine_anatomy_weight" in parameters:  # absent from reports written before it was recorded
            guide = ", on the images alone" + (" (the model has no anatomy network)" if weight is None else "")
        else:
            guide = ""
        details.append(f"refine {refine}{where}{guide}")
        if used == "direct" and mismatch:
            details.append(f"the refinement kept the direct start{compared}")
    return f"model {parameters['model']} ({'; '.join(details)})"


def describe_registration_quality(result: Any) -> str:
    """One line on how well a registration (a ``RegistrationResult``) matched its frames: the mean NCC
    to the reference over the other frames with signal, before and after, and the largest share of
    folded pixels (det J <= 0) of any frame."""
    before, after = result.mean_similarity()
    return (f"NCC to the reference (mean over the other frames with signal): {before:.3f} before, "
            f"{after:.3f} after; max folding {result.folding_fraction.max():.2%}")


def print_run_details(parameters: Mapping[str, Any], reused: str | None = None) -> None:
    """Print what a registration used beyond its method (its ``parameters``; ``reused``: the folder it is reused
    from, as it was made): the DLIR model (:func:`describe_model_use`), and the enhancement with its time (which
    the registration's time leaves out)."""
    if parameters.get("model"):
        print(describe_model_use(parameters, reused))
    if parameters.get("enhance"):
        print(f"frames enhanced first by {parameters['enhance']} in {parameters['enhance_seconds']:.2f} s: "
              f"the warped frames, NCC and fields are those of the enhanced frames")


LABELS_HELP = ("label map (CAMUS codes) on the same grid, to attach: any input format holding integer codes, e.g. "
               ".nii.gz or a Slicer labelmap .seq.nrrd")
MASK_HELP = ("field-of-view (sector) mask on the same grid, nonzero inside, in any input format; only the pixels "
             "inside it are compared (registration) or kept (enhancement: 0 outside)")


def add_input_options(parser: argparse.ArgumentParser, *, one_input: bool = True, es_frame: bool = False,
                      labels_help: str = LABELS_HELP, mask_help: str = MASK_HELP) -> None:
    """The options saying how to read the input (``one_input``: with the positional input and --labels; ``es_frame``:
    with --es-frame, for the commands that use ES, which most files do not record: .seq.nrrd files this
    project writes and CAMUS folders do; ``labels_help``, ``mask_help``: what the command does with them)."""
    if one_input:
        parser.add_argument("input", help="DICOM, NIfTI, MetaImage, NRRD, .seq.nrrd, AVI/MP4, or a CAMUS "
                                          "patient folder")
    parser.add_argument("--frame-rate", type=positive_number,
                        help="frames per second, for files that do not record time (refused over times the "
                             "file records; replaces a video container's playback rate or a DICOM's "
                             "RecommendedDisplayFrameRate with a warning)")
    parser.add_argument("--view", help="CAMUS view (2CH or 4CH) when the folder holds both")
    if es_frame:
        parser.add_argument("--es-frame", type=count(0), metavar="FRAME",
                            help="end-systole frame (from 0), over the file's: times peak systolic strain and EF, "
                                 "and places dlir's systole anchor (default: the file's ES, else the frame of "
                                 "smallest tracked LV volume, and no anchor)")
    parser.add_argument("--crop-to-region", action="store_true", help="DICOM: crop to the 2D tissue region")
    if one_input:
        parser.add_argument("--labels", help=labels_help)
    parser.add_argument("--mask", help=mask_help)


# The options that attach something to the sequence a command writes to a file of the user's format (convert,
# enhance), each with the sequence attribute that holds it (io.dispatch.unwritten) and what to do instead where
# that format does not hold it
ATTACHING_OPTIONS = {
    "--labels": ("labels", "no format echoreg writes a sequence to does: leave --labels out, and give it with the "
                           "written file to echoreg register or strain"),
    "--mask": ("mask", "no format echoreg writes a sequence to does: leave --mask out, and give it with the written "
                       "file to echoreg register or strain"),
    "--frame-rate": ("frame_times", "write .seq.nrrd, .mha or .nrrd, which hold the frame times, or leave "
                                    "--frame-rate out and give it where the written file is read"),
}


def refuse_unheld_attachments(seq: Any, args: argparse.Namespace, options: Sequence[str],
                              used: Mapping[str, str] | None = None) -> list[str]:
    """What of the sequence ``seq`` the format of ``args.output`` does not hold (:func:`..io.dispatch.unwritten`):
    refused where one of the ``options`` given (of :data:`ATTACHING_OPTIONS`) attached it, else returned as one
    warning line each, to print once the file is written ("...: not written", or, for an attribute of ``used``,
    "...: " and what the command did with it instead).

    Raises:
        EchoDataError: naming the option, what the output does not hold and what to do instead; a suffix that
            no format has (:func:`..io.dispatch.unwritten`).
    """
    from ..io.dispatch import unwritten

    dropped = unwritten(seq, args.output)
    for option in options:
        key, instead = ATTACHING_OPTIONS[option]
        if key in dropped and option_value(args, option) is not None:
            raise EchoDataError(option, f"{dropped[key]}; {instead}")
    return [f"{problem}: {(used or {}).get(key, 'not written')}" for key, problem in dropped.items()]


def add_output_options(parser: argparse.ArgumentParser, overwrite_help: str) -> None:
    """-o / --output (a folder) and --overwrite."""
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)


def add_slicer_views_option(parser: argparse.ArgumentParser) -> None:
    """--slicer-views: pictures of the run as the Slicer module shows it (:func:`write_slicer_views`)."""
    parser.add_argument("--slicer-views", action="store_true",
                        help="also write slicer_view_frameNNN.png of the reference and ES frames, rendered "
                             "as the Slicer module shows the run (needs slicer-core and EGL or OSMesa)")


def check_slicer_views_writable(args: argparse.Namespace) -> None:
    """With ``--slicer-views`` and without ``--overwrite``, before any work: ``args.output`` holds no picture of
    an earlier run (which frames a run draws is known only at its end, after its other files are written).

    Raises:
        FileExistsError: naming the first such picture.
    """
    if not args.slicer_views or args.overwrite:
        return
    from ..io.atomic import check_writable
    from ..mrml.pictures import SLICE_VIEW_GLOB

    for path in sorted(Path(args.output).glob(SLICE_VIEW_GLOB)):
        check_writable(path)


def write_slicer_views(args: argparse.Namespace, analysis: Analysis) -> None:
    """With ``--slicer-views``: the run's pictures as the Slicer module shows it, into ``args.output``; with
    ``--overwrite``, an earlier run's pictures of other frames are removed (as its other outputs are replaced)."""
    if not args.slicer_views:
        return
    from ..mrml.pictures import SLICE_VIEW_GLOB, write_slice_views

    paths = write_slice_views(analysis, args.output, overwrite=args.overwrite)
    if args.overwrite:
        for stale in set(Path(args.output).glob(SLICE_VIEW_GLOB)) - set(paths):
            stale.unlink()
    print(f"wrote {', '.join(p.name for p in paths)} in {args.output}")


def add_myocardium_options(parser: argparse.ArgumentParser, *, one_input: bool = True) -> None:
    """--landmarks (one input only), --wall-width, --apical-view and --full-cycle."""
    if one_input:
        parser.add_argument("--landmarks", type=landmarks_type, metavar="x1,y1,x2,y2,x3,y3",
                            help="myocardium from three endocardial points in mm (x, y): mitral annulus, "
                                 "apex, mitral annulus (instead of --labels); in pixels (column, row) "
                                 "when the file gives no pixel size (videos, DICOM without regions)")
    parser.add_argument("--wall-width", type=positive_number,
                        help="myocardial wall width in mm with landmarks (default 10)")
    parser.add_argument("--apical-view", choices=["A4C", "A2C"],
                        help="segment names when the input does not record its view")
    parser.add_argument("--full-cycle", action=argparse.BooleanOptionalAction, default=None,
                        help="the last frame is the next ED: report the loop-closure drift there, from ED "
                             "(default: when ED is frame 0 and the file's ES lies inside the sequence). Left "
                             "blank, with a warning saying why, where the last frame cannot be the next ED: ES "
                             "not between ED and the last frame (the cine ends at ES, or before the ES of the "
                             "cycle from ED), strain relative to a frame other than ED, or a last frame without "
                             "measured motion")


def add_registration_options(parser: argparse.ArgumentParser) -> None:
    """Every registration option: method, DLIR model / refine / flip averaging, reference, mode,
    loss, iterations, control spacing, device, enhancement."""
    # every registration option defaults to None (or False), so that the commands can tell the options given
    # (echoreg strain --registration refuses those its reused registration was not made with)
    parser.add_argument("--method", choices=METHODS,
                        help=f"default {DEFAULT_METHOD} (the default model refined by {DEFAULT_REFINE} steps, "
                             "through the systole anchor where ES is known: never folding, near the best on "
                             "the held-out benchmarks; its segmental strain is not validated along the wall: use "
                             "deformable for segmental strain; README, Generalisation)")
    parser.add_argument("--model", help="dlir: installed model name (echoreg models lists them) or checkpoint folder "
                             "(default: echoreg-dlir-camus, CC BY-NC-SA 4.0, non-commercial; "
                             "echoreg-dlir-sim is BSD-3-Clause)")
    parser.add_argument("--refine", type=count(0),
                        help=f"dlir: the budget of optimisation steps refining the network (default {DEFAULT_REFINE}; "
                             "0: the network alone, 0.75-1.1x OpenCV DIS's time on 2 CPU cores with AMX, 1.0-1.6x in "
                             "float32; 24: about 13-23x on sequences of more than two frames, refined from two starts "
                             "(--refine-start), about 6.5-12x from one; N: up to N/2 steps at half resolution, then up "
                             "to N/4 at full "
                             "resolution, or N/2 at full resolution on small frames, each level stopping early once it "
                             "converges; "
                             "the images and, where the model has an anatomy network as the default does, its LV, "
                             "myocardium and LA maps of the two frames are compared (that network learnt from apical "
                             "four-chamber CAMUS frames))")
    # the choices are registration.tracking.REFINE_STARTS, written out: that module imports torch, this one does
    # not (Testing/test_refine_start.py holds the two together)
    parser.add_argument("--refine-start", choices=["best", "direct", "chained"],
                        help="dlir refined to the reference: where each frame's refinement starts: best (default: "
                             "both of the others, the sequence keeping the one whose warped frames match the "
                             "reference better, chosen after the refinement's half level, only the one kept refining "
                             "the full level; 1.9-2.1x the refinement's time on 2 CPU cores on sequences with frames "
                             "to chain), direct (the network's "
                             "field of the frame; the default before 2026-12-02) or chained (the field of the last key "
                             "frame before it, refined at the half level where the refinement has two (frames of "
                             "more than about 256 rows; before 2026-12-02, at both), composed with the network's step "
                             "between the two, outwards from the reference through key frames at least 0.05 s apart "
                             "(every frame where the times are unknown); not with sequential tracking)")
    parser.add_argument("--flip-average", action="store_true",
                        help="dlir: average each pair's field with that of the mirrored pair (twice the time)")
    parser.add_argument("--float32", action="store_true",
                        help="dlir: run the networks in float32 where they would run in reduced precision (bfloat16 "
                             "on CPUs with AMX, bfloat16 or float16 on CUDA): results that do not depend on AMX, the "
                             "network alone taking about 1.3-1.6x as long there, the refined default 1.0-1.2x "
                             "(the model line and report.json's network_precision name the precision either way)")
    # the default is spatial.pairs.SYSTOLE_ANCHOR, written out: that module imports torch, this one does not
    # (Testing/test_systole_anchor.py holds the two together)
    parser.add_argument("--anchor", type=anchor_fraction,
                        help="dlir to the reference, when ES is known (the file's or --es-frame): register the "
                             "systolic frames after the anchor frame reference + round(F x (ES - reference)) to it, "
                             "their fields composed with its own (frames after ES go directly again once back "
                             "within F of the ES motion from the last frame; default 0.6; 0: every frame directly)")
    parser.add_argument("--reference", type=int,
                        help="reference frame, also taken as ED when the file gives none (default: ED "
                             "when the file gives it, else frame 0, with strain relative to ED detected as "
                             "the frame of largest tracked LV volume)")
    parser.add_argument("--mode", choices=["sequential", "to_reference"],
                        help="track neighbouring frames or register each frame to the reference "
                             "(default: sequential; dlir: the mode its model was trained for)")
    parser.add_argument("--loss", choices=["lncc", "ncc", "mse", "mi"],
                        help="similarity (default: mse for deformable and DLIR's refinement, ncc for rigid "
                             "and affine)")
    parser.add_argument("--iterations", type=count(1),
                        help="deformable, affine, rigid: optimiser steps per pyramid level (dlir: refused; "
                             "its refinement's steps are --refine)")
    parser.add_argument("--control-spacing", type=positive_number,
                        help="deformable control grid spacing, mm (also DLIR's refinement)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu or cuda")
    parser.add_argument("--enhance", metavar="MODEL",
                        help="enhance the frames first with this enhancement model (installed name or "
                             "checkpoint folder; echoreg train enhancer); off by default")


def settings_from_args(args: argparse.Namespace, myocardium: str = "none") -> WorkflowSettings:
    """The :class:`WorkflowSettings` of parsed options (``myocardium``: the source to use; without --method,
    :data:`..workflow.DEFAULT_METHOD`).

    Raises:
        EchoDataError: DLIR options given for another method, or optimiser options DLIR would not use
            (named as options): --iterations (DLIR's refinement steps are --refine), --loss and
            --control-spacing without a refinement (--refine 0), --refine-start with --refine 0, --anchor with
            sequential tracking.
        FileNotFoundError: --anchor with a --model that cannot be found (its tracking is read first).
    """
    method = args.method or DEFAULT_METHOD
    if method != "dlir" and (args.refine or args.flip_average or args.model or args.anchor or args.float32
                             or args.refine_start):
        raise EchoDataError("--method", f"--model, --refine, --refine-start, --flip-average, --anchor and --float32 "
                                        f"are DLIR options; the method is {method}")
    if method == "dlir" and args.iterations is not None:
        raise EchoDataError("--iterations", f"sets the optimiser's steps per pyramid level (--method deformable, "
                                            f"affine or rigid); the method is dlir, whose refinement steps are "
                                            f"--refine N (default {DEFAULT_REFINE}: N/2 steps at half resolution, "
                                            f"then N/4 at full resolution; small frames: N/2 at full "
                                            f"resolution)")
    if method == "dlir" and args.refine == 0 and (args.loss is not None or args.control_spacing is not None):
        raise EchoDataError("--refine", "0: the network alone, no optimisation for --loss or --control-spacing "
                                        "to set (they apply to DLIR's refinement, --refine N >= 1)")
    if method == "dlir" and args.refine == 0 and args.refine_start is not None:
        raise EchoDataError("--refine-start", "says where the refinement starts; --refine 0 runs the network alone")
    options: dict[str, Any] = {k: v for k, v in (("loss", args.loss), ("iterations", args.iterations),
                                                  ("control_spacing", args.control_spacing),
                                                  ("refine_start", args.refine_start)) if v is not None}
    settings = WorkflowSettings(
        method=method, model=args.model, mode=args.mode, refine=args.refine,
        flip_average=args.flip_average, float32=args.float32, anchor=args.anchor, device=args.device,
        reference=args.reference, options=options, enhance=args.enhance,
        myocardium=myocardium, wall_width=getattr(args, "wall_width", None),
        apical_view=getattr(args, "apical_view", None), full_cycle=getattr(args, "full_cycle", None))
    if args.refine_start and settings.dlir_mode() == "sequential":
        raise EchoDataError("--refine-start", "says where the refinement to the reference starts; this run tracks "
                                              "sequentially (--mode, or the model's own tracking): leave "
                                              "--refine-start out")
    if args.anchor and settings.dlir_mode() == "sequential":
        raise EchoDataError("--anchor", "the systole anchor is for DLIR tracking to the reference; this run tracks "
                                        "sequentially (--mode, or the model's own tracking): leave --anchor out")
    return settings


def study_from_args(args: argparse.Namespace) -> Study:
    """The :class:`Study` of a one-input command's options."""
    landmarks = getattr(args, "landmarks", None)
    return Study(input=args.input, labels=args.labels, mask=args.mask, view=args.view,
                 frame_rate=args.frame_rate, es_frame=getattr(args, "es_frame", None),
                 crop_to_region=args.crop_to_region,
                 landmarks=None if landmarks is None else tuple(map(tuple, landmarks)))


@contextlib.contextmanager
def pair_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback (``register_sequence``'s: frame pairs of work, each pair
    counted once per part of the work, so twice or three times where the DLIR refinement chains)
    that shows a tqdm bar in per cent of the work, opened at the first report (an error before the work prints
    no bar) and closed on leaving."""
    from tqdm import tqdm

    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=100, unit="%", desc=description,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"))
        bars[0].update(int(100 * done / max(total, 1)) - bars[0].n)
    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()
