"""``echoreg train ...``: the training functions on the command line.

Subcommands: ``simulate`` (fill a cache folder with simulated sequences), ``vae``, ``affine``,
``dlir`` (:mod:`..dlir.training`), ``correction`` (the fine-grid correction stage of a trained DLIR
model, :mod:`..dlir.correction_training`) and ``enhancer`` (:func:`..enhancement.training.train_enhancer`).
Data are given as source specs (:func:`..dlir.data.open_source`):
``sim:0-500`` (simulator seeds 0..499), ``sim:0-500:CACHE`` (read from / written to a cache
folder), ``sim-randomised:0-500:CACHE`` (the same seeds with randomised echogenicity, texture and PSF),
``warped:FOLDER`` (annotated frames moved by known motion), or a folder (CAMUS root, cached ``.npz``
items, any sequence files). Multi-GPU::

    torchrun --nproc_per_node 4 -m EchoRegistrationLib.cli train dlir --data sim:0-500:cache ...
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dlir.items import DATA_SPECS
from ..sequence import EchoDataError
from .common import count, device_name, non_negative_number, positive_number, share

SEED_RANGE_HELP = "simulator seeds START-STOP (STOP excluded), e.g. 0-500"
_PACKAGE = Path(__file__).resolve().parents[1]  # EchoRegistrationLib


def _seed_range(text: str) -> range:
    start, _, stop = text.partition("-")
    if not (start.isdigit() and stop.isdigit()) or int(stop) <= int(start):
        raise argparse.ArgumentTypeError(f"expected START-STOP with START < STOP, got {text!r}")
    return range(int(start), int(stop))


def _weight(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, non_negative_number(value)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"expected TERM=WEIGHT with a weight >= 0, got {text!r} ({err})") from None


def _raised_by_this_package(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in this package (a deliberate check of
    a setting), not in a library it calls (numpy, torch: a bug, to be shown with its traceback)."""
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def _one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A train subcommand whose Ctrl-C says that its output folder's checkpoints stay, and whose own
    ValueErrors (bad data specs, U-Nets, weights, a crop larger than the grid, a run in the output
    folder with other settings to resume) end it with one error line, as
    :class:`~..sequence.EchoDataError` (exit status 2), not a traceback: "OUTPUT: problem" when the
    problem is the output folder's, else "train SUBCOMMAND: problem". A ValueError raised inside a
    library is a bug and keeps its traceback."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except KeyboardInterrupt:
            output = Path(args.output)
            if not (output.is_dir() and any(output.iterdir())):
                raise KeyboardInterrupt(f"nothing was written into {args.output} yet") from None
            if args.model == "simulate":
                raise KeyboardInterrupt(f"the sequences already in {args.output} stay; the same command "
                                        "simulates only the others") from None
            raise KeyboardInterrupt(f"the checkpoints in {args.output} stay; run the command again (without "
                                    "--no-resume) to go on from the last one") from None
        except EchoDataError:
            raise
        except ValueError as err:
            if not _raised_by_this_package(err):
                raise
            message, folder = str(err), f"{Path(args.output)}: "  # as the trainers write it
            if message.startswith(folder):
                raise EchoDataError(str(args.output), message.removeprefix(folder)) from None
            raise EchoDataError(f"train {args.model}", message) from None
    return run


def _add_common(parser: argparse.ArgumentParser, *, batch_size: int, learning_rate: float,
                torchrun: bool = True, items: str = "pairs", iterations_per_epoch: int = 100) -> None:
    """The options every DLIR trainer shares; ``batch_size`` and ``learning_rate`` are the trainer's
    own defaults, shown in the help (the option passes nothing unless given); ``items``: what a
    batch holds; ``iterations_per_epoch``: the option's default."""
    parser.add_argument("--data", action="append", required=True,
                        help=f"training source, repeatable: {DATA_SPECS} or a folder")
    parser.add_argument("--validation", action="append", help="validation source, repeatable")
    parser.add_argument("-o", "--output", required=True, help="checkpoint folder")
    parser.add_argument("--batch-size", type=count(1), help=f"{items} per step (default {batch_size})")
    parser.add_argument("--learning-rate", type=positive_number,
                        help=f"Adam step size (default {learning_rate:g})")
    parser.add_argument("--iterations-per-epoch", type=count(1), default=iterations_per_epoch,
                        help=f"steps between history rows and checkpoints (default {iterations_per_epoch})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", type=device_name, default="auto",
                        help="auto, cpu or cuda (default auto)"
                             + ("; torchrun: one GPU per process" if torchrun else ""))
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="refuse to continue a run found in the output folder")


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {"output": args.output, "iterations_per_epoch": args.iterations_per_epoch,
               "seed": args.seed, "device": args.device, "resume": args.resume,
               "validation": args.validation}
    for name in ("batch_size", "learning_rate"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _finish(history: list[dict[str, Any]], output: str) -> int:
    if history:
        print(json.dumps(history[-1]))
    print(f"checkpoint: {output}")
    return 0


@_one_line_errors
def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..dlir.data import write_simulated_cache

    paths = write_simulated_cache(args.output, args.seeds, workers=args.workers,
                                  n_frames=args.frames, image_size=(args.size, args.size),
                                  appearance=args.appearance)
    print(f"{len(paths)} sequences in {args.output}")
    return 0


@_one_line_errors
def _cmd_vae(args: argparse.Namespace) -> int:
    from ..dlir.training import train_vae

    history = train_vae(args.data, structure=args.structure, iterations=args.iterations,
                        latent_size=args.latent_size, beta=args.beta, **_common_options(args))
    return _finish(history, args.output)


@_one_line_errors
def _cmd_affine(args: argparse.Namespace) -> int:
    from ..dlir.training import train_affine

    history = train_affine(args.data, size=args.size, iterations=args.iterations,
                           **_common_options(args))
    return _finish(history, args.output)


@_one_line_errors
def _cmd_dlir(args: argparse.Namespace) -> int:
    from ..dlir.training import train_dlir

    weights = dict(args.weight or [])
    iterations = args.iterations[0] if len(args.iterations) == 1 else args.iterations
    unet = {key: value for key, value in (("encoder", args.encoder), ("decoder", args.decoder),
                                          ("output_stride", args.output_stride)) if value is not None}
    if args.network == "cost_volume":
        if unet:
            raise ValueError("--encoder, --decoder and --output-stride shape the U-Net, not --network cost_volume")
        unet = {"kind": "cost_volume"}
    history = train_dlir(args.data, scales=args.scales, iterations=iterations, weights=weights or None,
                         similarity=args.similarity, vaes=args.vae or (), texture=args.texture,
                         unet=unet or None, diffeomorphic=args.diffeomorphic, passes=args.passes,
                         affine=args.affine,
                         mode=args.mode, max_frame_gap=args.max_frame_gap, init=args.init,
                         randomise=args.randomise, **_common_options(args))
    return _finish(history, args.output)


def _add_unet_widths(parser: argparse.ArgumentParser, whose: str, encoder: str, decoder: str) -> None:
    """--stem, --encoder and --decoder of a U-Net trained behind a model (``whose``: "the stage's"),
    its default widths in the help."""
    parser.add_argument("--stem", type=count(1), help=f"channels of {whose} full-resolution stem (default 16)")
    parser.add_argument("--encoder", type=count(1), nargs="+",
                        help=f"channels of {whose} U-Net at each stride-2 level, fine to coarse (default {encoder})")
    parser.add_argument("--decoder", type=count(1), nargs="+",
                        help=f"channels of {whose} U-Net at each decoder level, coarse to fine (default {decoder})")


def _unet_options(args: argparse.Namespace) -> dict[str, Any]:
    """The U-Net widths given on the command line (--stem, --encoder, --decoder) of a stage or network
    trained behind a model; the others keep the trainer's defaults."""
    return {key: value for key, value in (("stem", args.stem), ("encoder", args.encoder),
                                          ("decoder", args.decoder)) if value is not None}


@_one_line_errors
def _cmd_correction(args: argparse.Namespace) -> int:
    from ..dlir.correction_training import train_correction

    unet = _unet_options(args)
    history = train_correction(args.data, base=args.base, size=args.size, iterations=args.iterations,
                               crop=args.crop, perturbation_mm=args.perturbation, smoothness=args.smoothness,
                               dice=args.dice, randomise=args.randomise, unet=unet or None, passes=args.passes,
                               **_common_options(args))
    return _finish(history, args.output)


@_one_line_errors
def _cmd_anatomy(args: argparse.Namespace) -> int:
    from ..dlir.anatomy_training import train_anatomy

    unet = _unet_options(args)
    history = train_anatomy(args.data, base=args.base, size=args.size, iterations=args.iterations,
                            randomise=args.randomise, unet=unet or None, **_common_options(args))
    return _finish(history, args.output)


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` and its subcommands to an ``argparse`` subparsers object; each subcommand sets
    ``run`` to a function of the parsed arguments returning the exit status."""
    train = subparsers.add_parser("train", help="train the deep-learning registration models (DLIR)",
                                  description=__doc__.splitlines()[0])
    sub = train.add_subparsers(dest="model", required=True)

    simulate = sub.add_parser("simulate", help="simulate training sequences into a cache folder")
    simulate.add_argument("--seeds", type=_seed_range, required=True, help=SEED_RANGE_HELP)
    simulate.add_argument("-o", "--output", required=True, help="cache folder")
    simulate.add_argument("--frames", type=count(2), default=20, help="frames per sequence (default 20)")
    simulate.add_argument("--size", type=count(16), default=256, help="frame size in pixels (default 256)")
    simulate.add_argument("--workers", type=count(1), default=1, help="processes (default 1)")
    simulate.add_argument("--appearance", choices=["nominal", "randomised"], default="nominal",
                          help="tissue echogenicity, texture and PSF: nominal, or drawn per seed "
                               "(domain randomisation; read back as sim-randomised:START-STOP:CACHE; default nominal)")
    simulate.set_defaults(run=_cmd_simulate)

    vae = sub.add_parser("vae", help="train the mask VAE of one structure (shape prior)")
    _add_common(vae, batch_size=32, learning_rate=1e-3, items="masks")
    vae.add_argument("--structure", choices=["lv", "myocardium"], default="lv",
                     help="the mask the VAE learns (default lv)")
    vae.add_argument("--iterations", type=count(1), default=3000, help="steps (default 3000)")
    vae.add_argument("--latent-size", type=count(1), default=32, help="latent dimensions (default 32)")
    vae.add_argument("--beta", type=non_negative_number, default=1.0, help="weight of the KL term (default 1)")
    vae.set_defaults(run=_cmd_vae)

    affine = sub.add_parser("affine", help="train the affine CNN (unsupervised, NCC)")
    _add_common(affine, batch_size=16, learning_rate=1e-3)
    affine.add_argument("--size", type=count(32), default=64,
                        help="working-grid rows, at least 32: one pixel after the network's 5 halvings (default 64)")
    affine.add_argument("--iterations", type=count(1), default=3000, help="steps (default 3000)")
    affine.set_defaults(run=_cmd_affine)

    dlir = sub.add_parser("dlir", help="train the registration network (multi-scale)")
    _add_common(dlir, batch_size=8, learning_rate=1e-3)
    dlir.add_argument("--scales", type=count(8), nargs="+", default=[32, 64, 128],
                      help="working-grid rows per stage, coarse to fine (default 32 64 128)")
    dlir.add_argument("--iterations", type=count(0), nargs="+", default=[1000],
                      help="steps per stage: one for all or one per scale (default 1000)")
    dlir.add_argument("--weight", type=_weight, action="append",
                      help="loss weight TERM=WEIGHT, repeatable (similarity, bending, dice, shape, texture, "
                           "motion)")
    dlir.add_argument("--similarity", choices=["lncc", "mi"], default="lncc",
                      help="image similarity term: local NCC or mutual information (default lncc)")
    dlir.add_argument("--vae", action="append", help="VAE checkpoint for the shape term, repeatable")
    dlir.add_argument("--no-texture", dest="texture", action="store_false",
                      help="switch the adversarial texture term off")
    dlir.add_argument("--diffeomorphic", action="store_true",
                      help="predict a stationary velocity field (scaling and squaring)")
    dlir.add_argument("--passes", type=count(1), default=1,
                      help="network applications per training pair, trained end to end on the composed "
                           "field (a recurrent cascade; each costs a network run; default 1)")
    dlir.add_argument("--network", choices=["unet", "cost_volume"], default="unet",
                      help="the registration network: the U-Net (default), or a PWC-Net-style network with "
                           "cost volumes (CostVolumeNet; docs/generalisation.md, 'A cost-volume network')")
    dlir.add_argument("--encoder", type=count(1), nargs="+",
                      help="U-Net channels of each stride-2 level, fine to coarse (default 32 32 32 32)")
    dlir.add_argument("--decoder", type=count(1), nargs="+",
                      help="U-Net channels of each decoder level, coarse to fine (default 32 32 32 16)")
    dlir.add_argument("--output-stride", type=int,
                      help="predict the field on a grid this many times coarser than the working grid "
                           "(a power of 2; one decoder level fewer per factor 2; default 1)")
    dlir.add_argument("--affine", help="affine model (echoreg train affine) to use as a frozen first stage")
    dlir.add_argument("--mode", choices=["to_reference", "sequential"], default="to_reference",
                      help="tracking the model is for: any frame pairs incl. ED<->ES (to_reference, default) "
                           "or near neighbours whose fields are composed (sequential)")
    dlir.add_argument("--max-frame-gap", type=int, default=3,
                      help="sequential: largest frame distance of the training pairs (default 3)")
    dlir.add_argument("--init", help="DLIR checkpoint of the same network (U-Net widths, or --network cost_volume) "
                                     "to start from (fine-tuning)")
    dlir.add_argument("--randomise", type=share, default=0.0,
                      help="share of the training pairs whose echo appearance is redrawn (blur, "
                           "time-gain, dynamic range, haze, dropout, noise), 0-1 (default 0: off)")
    dlir.set_defaults(run=_cmd_dlir)

    correction = sub.add_parser("correction", help="train the fine-grid correction stage of a trained DLIR "
                                                   "model (pairs with true motion; the model is frozen)")
    _add_common(correction, batch_size=8, learning_rate=1e-3, torchrun=False)
    correction.add_argument("--base", required=True, help="the trained DLIR model (installed name or checkpoint)")
    correction.add_argument("--size", type=count(2), default=192, help="rows of the correction grid (default 192)")
    correction.add_argument("--iterations", type=count(1), default=3000, help="steps (default 3000)")
    correction.add_argument("--crop", type=count(8), default=128,
                            help="side of the random square of the grid each step trains on (default 128)")
    correction.add_argument("--perturbation", type=non_negative_number, default=0.6,
                            help="largest standard deviation (mm) of the random smooth field added to the "
                                 "model's field (default 0.6)")
    correction.add_argument("--smoothness", type=non_negative_number, default=1.0,
                            help="weight of the residual's squared neighbour differences (default 1)")
    correction.add_argument("--dice", type=non_negative_number, default=0.0,
                            help="weight of the soft Dice of LV and myocardium on annotated pairs, e.g. CAMUS "
                                 "ED/ES (default 0: off)")
    correction.add_argument("--randomise", type=share, default=0.0,
                            help="share of the pairs whose echo appearance is redrawn, 0-1 (default 0: off)")
    correction.add_argument("--passes", type=count(1),
                            help="applications of the base network per pair, saved with the model (default: the "
                                 "base's own)")
    _add_unet_widths(correction, "the stage's", "32 32 32", "32 32 16")
    correction.set_defaults(run=_cmd_correction)

    about = ("train the anatomy network of a trained DLIR model (LV, myocardium and LA probabilities that guide "
             "the refinement) on annotated frames: a folder of CAMUS pairs with their *_gt masks, or sim:START-STOP")
    anatomy = sub.add_parser("anatomy", help=about, description=about[0].upper() + about[1:] + ".")
    # the defaults are the shipped recipe (scripts/train_camus_model.sh)
    _add_common(anatomy, batch_size=4, learning_rate=2e-3, torchrun=False, items="annotated pairs",
                iterations_per_epoch=250)
    anatomy.add_argument("--base", required=True, help="the trained DLIR model (installed name or checkpoint)")
    # dlir.anatomy_training.ANATOMY_ITERATIONS and dlir.anatomy.DEFAULT_ANATOMY_SIZE, written out: that package
    # imports torch, this module does not (Testing/test_dlir_anatomy.py holds them together)
    anatomy.add_argument("--size", type=count(16), default=160, help="rows of its working grid (default 160)")
    anatomy.add_argument("--iterations", type=count(1), default=10000, help="steps (default 10000)")
    anatomy.add_argument("--randomise", type=share, default=0.8,
                         help="share of the frames whose echo appearance is redrawn, 0-1 (default 0.8)")
    _add_unet_widths(anatomy, "its", "32 48 64 64", "64 48 32 16")
    anatomy.set_defaults(run=_cmd_anatomy)
    _add_enhancer_parser(sub)
    return train


@_one_line_errors
def _cmd_enhancer(args: argparse.Namespace) -> int:
    from ..enhancement.training import train_enhancer

    weights = dict(args.weight or [])
    history = train_enhancer(args.low, args.high, args.output, validation=args.validation,
                             iterations=args.iterations, crop=args.crop, width=args.width,
                             blocks=args.blocks, learning_rate=args.learning_rate,
                             weights=weights or None, licence=args.licence,
                             iterations_per_epoch=args.iterations_per_epoch, seed=args.seed,
                             device=args.device, resume=args.resume)
    return _finish(history, args.output)


def _add_enhancer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``train enhancer`` on the ``train`` sub-parsers."""
    parser = subparsers.add_parser("enhancer", help="train the enhancement CycleGAN (low -> high quality)")
    parser.add_argument("--low", action="append", required=True,
                        help="low-quality source, repeatable: degraded:START-STOP (degraded simulator "
                             "seeds), sim:START-STOP or a folder")
    parser.add_argument("--high", action="append", required=True,
                        help="high-quality source, repeatable: sim:START-STOP or a folder (e.g. the CAMUS "
                             "root: the model then carries CAMUS's CC BY-NC-SA 4.0 terms)")
    parser.add_argument("--validation", help="degraded:START-STOP seeds scored against their clean frames")
    parser.add_argument("-o", "--output", required=True, help="checkpoint folder")
    parser.add_argument("--iterations", type=count(1), default=2000, help="steps (default 2000)")
    parser.add_argument("--crop", type=count(8), default=80, help="crop side in model pixels (default 80)")
    parser.add_argument("--width", type=count(1), default=16, help="generator width (default 16)")
    parser.add_argument("--blocks", type=count(0), default=6, help="generator residual blocks (default 6)")
    parser.add_argument("--learning-rate", type=positive_number, default=2e-4,
                        help="Adam step size (default 2e-4)")
    parser.add_argument("--weight", type=_weight, action="append",
                        help="loss weight TERM=WEIGHT, repeatable (adversarial, cycle, identity, ssim, "
                             "illumination)")
    parser.add_argument("--licence", help="terms of the weights for the config (default: BSD-3-Clause for "
                                          "simulated data only, else unknown)")
    parser.add_argument("--iterations-per-epoch", type=count(1), default=100,
                        help="steps between history rows and checkpoints (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="refuse to continue a run found in the output folder")
    parser.set_defaults(run=_cmd_enhancer)
    return parser
