"""How a DLIR model should track a sequence, chosen on validation data only (a script).

A to-reference model (``echoreg-dlir-camus``) can register every frame directly to the reference (its
training mode; the rows "to the reference" turn off the systole anchor that is now its default) or
each frame to its neighbour and compose the fields ("sequential"), alone or refined
(:func:`EchoRegistrationLib.registration.register_sequence` ``refine``); two hybrids start from the
sequential chain and correct it against the reference. Scored by the myocardial end-point error at ES
(mm) on validation sets that no benchmark uses (the first three make the README's table):

* ``simus``: the SIMUS generator (:mod:`benchmarks.simus_family`, needs ``pymust`` unless the frames
  are cached) with seeds 40000+ (the benchmark uses 30000+);
* ``simulator``: the project's simulator, seeds 5000-5007, 10 frames ED -> ES (the training scripts'
  validation seeds);
* ``real-template``: the real-template generator (:mod:`benchmarks.real_template_family`) on CAMUS
  ``train`` patients (every 25th), seeds 70000+ (the benchmark uses CAMUS ``valid`` and 20000+);
* ``simulator-randomised``: the simulator's validation seeds with a randomised appearance
  (:func:`EchoRegistrationLib.dlir.data.simulate_item`; what ``sim-randomised`` training sources draw);
* ``simulator-plain``: the same seeds imaged with :data:`PLAIN_APPEARANCE` (the SIMUS family's
  echogenicities: blood 0.03, tissue beside the heart 6 dB below myocardium, pericardium 1.8; the valve at
  the level of blood; no texture; a 3.5-degree beam): a diagnostic of whether the simulator's own
  landmarks explain a network's error elsewhere;
* ``simulator-cycle``: the same seeds as whole cycles, 20 frames ED -> ES -> ED (``--metric mean`` or
  ``last`` shows what a tracking does in diastole).

Two more rows chain anchor frames (every ``--hop`` seconds) from the reference instead of every frame:
each frame is registered to the last anchor before it, alone and refined against the reference; two
more take one anchor in systole (``register_sequence(..., anchor=...)``,
:func:`EchoRegistrationLib.spatial.pairs.systole_anchors`), its refined row from the direct start; two more
refine from the chained start, and from the better of it and the direct start by the images' match (the
default method since 2026-12-02; ``refine_start`` of ``register_sequence``,
:data:`EchoRegistrationLib.registration.tracking.REFINE_STARTS`).
One more row, ``truth-refined`` (run only when ``--rows`` names it), is no method: it starts the
refinement (:func:`refined_to_reference`, as the rows refined from a chain: the default settings without
the anatomy maps) from the true fields, so its error is where a perfect start ends, how far the images and
the refinement's own terms pull the truth: in practice the floor of that refinement against the reference
on the set. With ``--truth-scale 0.9`` it starts from a field 10 % short of the motion everywhere instead:
whether the refinement recovers a start that falls short uniformly (its reach).
``--rows`` picks rows by key (:func:`trackers`): ``--rows network refine`` compares models (``--model``
takes a shipped name or a checkpoint folder). ``--learning-rate 0.5`` gives every refinement Adam's step of
0.5 pixel at every level (the refinement before 2026-12-02; default: ``registration.tracking.REFINE_LEARNING_RATES``),
``--digits 3`` prints the errors with three decimals.

With ``--ncc``, also the mean NCC with the reference after registration of the network alone in both
modes, per SIMUS case: whether a sequence could choose its mode by similarity.

Usage (repository root)::

    .venv/bin/python benchmarks/validate_tracking_modes.py            # the README's table (about 30 min)
    .venv/bin/python benchmarks/validate_tracking_modes.py --sets simus --ncc
    .venv/bin/python benchmarks/validate_tracking_modes.py --refine 24 --simus-cases 8 \
        --rows refine-best-start truth-refined      # the default method beside its floor
    .venv/bin/python benchmarks/validate_tracking_modes.py --rows network refine \
        --model runs/camus/dlir_camus_randomised --sets simus simulator simulator-randomised real-template
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_real_cines import DATA  # noqa: E402
from benchmarks.real_template_family import make_case  # noqa: E402
from benchmarks.simus_family import ECHOGENICITY as SIMUS_ECHOGENICITY  # noqa: E402
from benchmarks.simus_family import make_simus_case  # noqa: E402
from benchmarks.validate_passes import VALIDATION_SEEDS  # noqa: E402
from benchmarks.validate_refine_schedule import step_sizes  # noqa: E402
from EchoRegistrationLib.cli.common import count, non_negative_number  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.data import simulate_item  # noqa: E402
from EchoRegistrationLib.dlir.inference import predict_pair_fields, predict_sequence_fields  # noqa: E402
from EchoRegistrationLib.dlir.shipped import resolve_model  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.registration.pairwise import as_image_batch  # noqa: E402
from EchoRegistrationLib.registration.tracking import _optimised_fields, _refinement_options  # noqa: E402
from EchoRegistrationLib.sequence import LABEL_MYOCARDIUM, EchoSequence  # noqa: E402
from EchoRegistrationLib.simulation.appearance import ECHOGENICITY, TissueAppearance  # noqa: E402
from EchoRegistrationLib.spatial import compose, field_to_numpy, field_to_torch, warp  # noqa: E402
from EchoRegistrationLib.spatial.metrics import myocardial_end_point_error  # noqa: E402
from EchoRegistrationLib.spatial.pairs import SYSTOLE_ANCHOR, chain_to_reference, frame_pairs  # noqa: E402

SIMUS_VALIDATION_SEED = 40_000
TEMPLATE_VALIDATION_SEED = 70_000
SIMUS_VALIDATION_CACHE = Path(__file__).resolve().parents[1] / "runs" / "simus_cache_validation"
# A validation case: (sequence from ED, (T, H, W, 2) mm true fields from ED, (H, W) bool ED myocardium)
Case = tuple[EchoSequence, np.ndarray, np.ndarray]
# The SIMUS family's echogenicities (valve at the level of blood), no texture, a 3.5-degree beam.
PLAIN_APPEARANCE = TissueAppearance({**ECHOGENICITY, **SIMUS_ECHOGENICITY, "valve": SIMUS_ECHOGENICITY["blood"]},
                                    texture_strength=0.0, lateral_fwhm=float(np.deg2rad(3.5)))
# A validation case -> (T, H, W, 2) mm fields from frame 0 (a row reads the truth only to start from it).
Tracker = Callable[[Case], np.ndarray]


def validation_sets(names: list[str], simus_cases: int, template_cases: int) -> dict[str, list[Case]]:
    """The validation sets named (module docstring)."""
    sets: dict[str, list[Case]] = {}
    if "simus" in names:
        cases = [make_simus_case(SIMUS_VALIDATION_SEED + k, 6, SIMUS_VALIDATION_CACHE) for k in range(simus_cases)]
        sets["simus"] = [(c.sequence, c.displacement, c.myocardium) for c in cases]
    simulator_sets = {"simulator": ("nominal", 10, "half"), "simulator-randomised": ("randomised", 10, "half"),
                      "simulator-plain": (PLAIN_APPEARANCE, 10, "half"), "simulator-cycle": ("nominal", 20, "full")}
    for name, (appearance, n_frames, cycle) in simulator_sets.items():
        if name in names:
            items = [simulate_item(seed, n_frames=n_frames, cycle=cycle, appearance=appearance)
                     for seed in VALIDATION_SEEDS]
            sets[name] = [(i.sequence, i.displacement, i.sequence.label_map(0) == LABEL_MYOCARDIUM) for i in items]
    if "real-template" in names:
        train = CamusPairFolder(DATA / "camus_ed_es" / "train", views=("4CH",))
        chosen = list(range(0, len(train), 25))[:template_cases]
        cases = [make_case(train[k].frames[0], train[k].label_map(0), train[k].spacing, 6,
                           TEMPLATE_VALIDATION_SEED + k) for k in chosen]
        sets["real-template"] = [(c.sequence, c.displacement, c.myocardium) for c in cases]
    return sets


def refined_to_reference(model, seq: EchoSequence, start: torch.Tensor, refine: int,
                         options: dict | None = None) -> np.ndarray:
    """(T, H, W, 2) mm: every frame's field ``start`` (T, 2, H, W) refined against frame 0 by the
    default refinement (:func:`_refinement_options`, with ``options`` over it) of ``refine`` steps; ``start``
    itself for 0."""
    if not refine:
        return field_to_numpy(start)
    pairs = frame_pairs(seq.n_frames, 0, "to_reference")
    options = _refinement_options(refine, seq.frame_shape[0], model, options or {})
    frames = as_image_batch(seq.frames, device="cpu")
    roi = None if seq.mask is None else as_image_batch(np.asarray(seq.mask, np.float32)) > 0
    initial = torch.stack([start[m] for _, m in pairs])
    refined = _optimised_fields(seq.spacing, frames, "deformable", pairs, roi, 32, options, None, None,
                                initial=initial)
    fields = torch.zeros_like(start)
    fields[[m for _, m in pairs]] = refined
    return field_to_numpy(fields)


def sequential_then_reference_pass(model, seq: EchoSequence) -> torch.Tensor:
    """(T, 2, H, W) mm: the sequential chain of ``model``, each frame then registered once more to
    frame 0 by one network pass on the frame warped by the chain, the residual composed."""
    chained = predict_sequence_fields(model, seq, 0, "cpu", mode="sequential")
    one_pass = copy.deepcopy(model)
    one_pass.passes = 1
    with torch.inference_mode():
        warped = warp(torch.from_numpy(seq.frames)[:, None], chained, seq.spacing)[:, 0].numpy()
        pairs = frame_pairs(seq.n_frames, 0, "to_reference")
        residual = predict_pair_fields(one_pass, dataclasses.replace(seq, frames=warped), pairs, "cpu")
        total = chained.clone()
        moving = [m for _, m in pairs]
        total[moving] = compose(residual, chained[moving], seq.spacing)
    return total


def anchored_chain(model, seq: EchoSequence, hop_seconds: float) -> torch.Tensor:
    """(T, 2, H, W) mm: frames within ``hop_seconds`` of frame 0 registered to it directly; anchor
    frames every k frames (k: ``hop_seconds`` in frames, at least 1) chained from frame 0; every
    other frame registered to the last anchor before it and composed with that anchor's field."""
    k = max(1, round(hop_seconds / float(np.median(np.diff(seq.frame_times)))))
    last = seq.n_frames - 1
    direct = [(0, t) for t in range(1, min(k, last) + 1)]
    chain = [(a, a + k) for a in range(k, last - k + 1, k)]
    rest = [(t - t % k, t) for t in range(k + 1, last + 1) if t % k]
    pairs = direct + chain + rest
    fields = predict_pair_fields(model, seq, pairs, "cpu")
    with torch.inference_mode():
        return chain_to_reference(fields, pairs, seq.n_frames, 0, "sequential", seq.spacing)


def trackers(model, refine: int, hop_seconds: float, systole_anchor: float = SYSTOLE_ANCHOR,
             truth_scale: float = 1.0, refinement: dict | None = None) -> dict[str, tuple[str, Tracker]]:
    """Row key -> (row name, validation case -> fields from frame 0). Every row but "truth-refined" reads
    the sequence alone; that one starts the refinement from ``truth_scale`` times the true fields: at 1 its
    error is how far the images pull the truth (the refinement's floor on the set, not a method), below 1
    whether the refinement recovers a field that falls short of the motion everywhere by that factor.
    ``refinement``: options given to every refinement (``register_pair``'s, such as ``learning_rate``)."""
    refinement = refinement or {}

    def on_sequence(track: Callable[[EchoSequence], np.ndarray]) -> Tracker:
        return lambda case: track(case[0])

    def registered(**options) -> Tracker:
        extra = refinement if options.get("refine") else {}
        return on_sequence(lambda seq: register_sequence(seq, "dlir", model=model, reference=0,
                                                         **options, **extra).displacement)
    return {
        "network": ("network, to the reference", registered(anchor=0)),
        "network-sequential": ("network, sequential", registered(mode="sequential")),
        "refine": (f"+ refine {refine}, to the reference", registered(refine=refine, anchor=0, refine_start="direct")),
        "refine-sequential": (f"+ refine {refine}, sequential", registered(refine=refine, mode="sequential")),
        "refine-from-chain": (f"+ refine {refine} to the reference, from the sequential chain",
                              on_sequence(lambda seq: refined_to_reference(
                                  model, seq, predict_sequence_fields(model, seq, 0, "cpu", mode="sequential"),
                                  refine, refinement))),
        "chain-then-pass": (f"sequential network + one to-reference pass, + refine {refine}",
                            on_sequence(lambda seq: refined_to_reference(
                                model, seq, sequential_then_reference_pass(model, seq), refine, refinement))),
        "anchored": (f"network, anchored every {hop_seconds:g} s",
                     on_sequence(lambda seq: field_to_numpy(anchored_chain(model, seq, hop_seconds)))),
        "refine-from-anchored": (f"+ refine {refine} to the reference, from the anchored chain",
                                 on_sequence(lambda seq: refined_to_reference(
                                     model, seq, anchored_chain(model, seq, hop_seconds), refine, refinement))),
        "systole-anchor": (f"network, one anchor at {systole_anchor:g} of ED->ES", registered(anchor=systole_anchor)),
        "refine-from-systole-anchor": (f"+ refine {refine} to the reference, from one anchor at {systole_anchor:g}",
                                       registered(refine=refine, anchor=systole_anchor, refine_start="direct")),
        "refine-chained-start": (f"+ refine {refine} to the reference, from the chained start",
                                 registered(refine=refine, refine_start="chained")),
        "refine-best-start": (f"+ refine {refine}, the better of the two starts (one anchor at {systole_anchor:g}; "
                              "the default method)", registered(refine=refine, anchor=systole_anchor)),
        "truth-refined": ((f"the true fields + refine {refine} to the reference (the refinement's floor)"
                           if truth_scale == 1 else f"{truth_scale:g} x the true fields + refine {refine} to the "
                           "reference"),
                          lambda case: refined_to_reference(model, case[0], truth_scale * field_to_torch(case[1]),
                                                            refine, refinement)),
    }


ROW_KEYS = list(trackers(None, 0, 0.0))  # the rows' keys: no tracker runs (nor needs a model) until called
# The default rows: every tracking method; the truth-refined row, no method, runs when named.
METHOD_ROWS = [key for key in ROW_KEYS if key != "truth-refined"]


def end_point_error(fields: np.ndarray, case: Case, metric: str = "es") -> float:
    """Mean myocardial end-point error (mm) at ES (the last frame when ES is not known); ``metric``
    "mean": its mean over every frame after frame 0, "last": at the last frame."""
    seq, truth, wall = case
    errors = myocardial_end_point_error(fields, truth, wall)
    if metric == "mean":
        return float(errors[1:].mean())
    return float(errors[-1 if metric == "last" or seq.es_index is None else seq.es_index])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="echoreg-dlir-camus")
    parser.add_argument("--sets", nargs="+", default=["simus", "simulator", "real-template"],
                        choices=["simus", "simulator", "real-template", "simulator-randomised", "simulator-plain",
                                 "simulator-cycle"])
    parser.add_argument("--simus-cases", type=int, default=6)
    parser.add_argument("--template-cases", type=int, default=10)
    parser.add_argument("--refine", type=count(0), default=40)
    parser.add_argument("--ncc", action="store_true", help="also the per-case NCC check on the SIMUS set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", nargs="+", choices=ROW_KEYS, help="rows (default: every method's, all but "
                        "truth-refined); 'network refine' compares models")
    parser.add_argument("--hop", type=float, default=0.1, help="anchor spacing (s) of the anchored rows")
    parser.add_argument("--systole-anchor", type=float, default=SYSTOLE_ANCHOR,
                        help=f"systole-anchor rows: the anchor frame as a fraction of ED->ES ({SYSTOLE_ANCHOR})")
    parser.add_argument("--truth-scale", type=non_negative_number,
                        help="the truth-refined row (only) starts from this multiple of the true fields (default 1: "
                        "the floor; 0.9: a field 10 %% short of the motion everywhere)")
    parser.add_argument("--metric", choices=["es", "mean", "last"], default="es",
                        help="end-point error at ES (default), its mean over the frames, or at the last frame")
    parser.add_argument("--learning-rate", type=step_sizes,
                        help="every refinement's Adam step, full-resolution pixels: one value for every level or "
                             "one per level coarse to fine (default: registration.tracking.REFINE_LEARNING_RATES; "
                             "0.5: the refinement before 2026-12-02)")
    parser.add_argument("--digits", type=int, default=2, help="decimals of the errors printed (default 2)")
    args = parser.parse_args(argv)
    if args.truth_scale is not None and "truth-refined" not in (args.rows or ()):
        parser.error("--truth-scale sets the truth-refined row's start: add truth-refined to --rows")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model = load_model(resolve_model(args.model))
    sets = validation_sets(args.sets, args.simus_cases, args.template_cases)
    where = {"es": "at ES", "mean": "averaged over the frames", "last": "at the last frame"}[args.metric]
    print(f"{args.model}: mean myocardial end-point error {where} (mm) on validation data; "
          + ", ".join(f"{name} {len(cases)} cases" for name, cases in sets.items()))
    print("| " + " | ".join(["tracking", *sets]) + " |")
    print("|" + "---|" * (len(sets) + 1))
    rows = trackers(model, args.refine, args.hop, args.systole_anchor,
                    1.0 if args.truth_scale is None else args.truth_scale,
                    None if args.learning_rate is None else {"learning_rate": args.learning_rate})
    for name, track in (rows[key] for key in args.rows or METHOD_ROWS):
        cells = [f"{np.mean([end_point_error(track(case), case, args.metric) for case in cases]):.{args.digits}f}"
                 for cases in sets.values()]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.ncc and "simus" in sets:
        print("\nSIMUS cases, network alone (no anchor): ES error mm and mean NCC with frame 0 after registration, "
              "per mode")
        for k, case in enumerate(sets["simus"]):
            cells = []
            for mode in ("to_reference", "sequential"):
                result = register_sequence(case[0], "dlir", model=model, reference=0, mode=mode, anchor=0)
                cells.append(f"{mode} {end_point_error(result.displacement, case):.2f} mm, "
                             f"NCC {result.mean_similarity()[1]:.4f}")
            print(f"  case {SIMUS_VALIDATION_SEED + k}: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
