"""Enhancement benchmark: does CycleGAN enhancement of low-quality echo help registration? (a script)

Three conditions of the same frames: ``clean`` (the simulator's or CAMUS's own frames), ``degraded``
(:func:`EchoRegistrationLib.simulation.degradation.degrade_sequence`, a random degradation drawn from
the case's seed at full severity) and ``degraded + enhanced`` (the degraded frames through the
enhancement model, :func:`EchoRegistrationLib.enhancement.enhance_sequence`). Per condition:

* EPE ES (mm): myocardial end-point error at ES against the simulator's true field, for the default
  DLIR (``register_sequence(seq, "dlir")``) and the optimiser (``"deformable"``), frame 0 (ED) the
  reference; GLS error (pts): |peak endocardial GLS - truth| from those fields and the ED labels;
* CAMUS Dice: mean Dice (LV cavity, myocardium) of the ED masks and the ES masks warped onto ED, on
  CAMUS ``valid`` patients (real frames; degraded by the same model, each patient its own seed);
* SSIM, PSNR (dB): of the frames against the clean frames, inside the field of view (simulated cases,
  every frame);
* boundary (mm): hallucination check. The frame of the condition is registered to the clean frame
  (deformable, local NCC, the clean frame fixed) at ED and ES; the true myocardium mask is carried
  by that field, and the mean symmetric distance between the carried and the true myocardium
  boundaries is reported. Structures that the enhancement moved, erased or invented pull the
  registration and show as a distance; the ``clean`` row (a frame registered to itself) is the floor
  of the method and the ``degraded`` row what the degradation alone does.
* s/frame: wall seconds per frame of the enhancement (its row), and of the two registrations and of
  OpenCV DIS (peer) per frame pair, measured in this run on the degraded cases.

Cases: seeds from 10000 (never used to train the enhancer, whose seeds are 40000+; the shipped DLIR
trains on 0..499), A4C/A2C and half/full cycles alternating. Usage (from the repository root)::

    .venv/bin/python benchmarks/benchmark_enhancement.py --model runs/enhancer_sim --cases 4 --camus 10

Timings drift by up to +-30 % between runs on a shared machine: read them as ratios within a run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_registration import FIRST_SEED  # noqa: E402
from benchmarks.benchmark_strain import CASE_KINDS  # noqa: E402
from benchmarks.peer_methods import opencv_dis  # noqa: E402
from EchoRegistrationLib.enhancement.inference import enhance_sequence, load_enhancer  # noqa: E402
from EchoRegistrationLib.enhancement.networks import to_unit  # noqa: E402
from EchoRegistrationLib.enhancement.objectives import SSIM_WINDOW, ssim_map  # noqa: E402
from EchoRegistrationLib.io import load_sequence  # noqa: E402
from EchoRegistrationLib.registration import register_pair, register_sequence  # noqa: E402
from EchoRegistrationLib.spatial.metrics import (myocardial_end_point_error,  # noqa: E402
                                                      warped_label_dice)
from EchoRegistrationLib.sequence import LABEL_MYOCARDIUM, EchoSequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.simulation.degradation import degrade_sequence  # noqa: E402
from EchoRegistrationLib.spatial import field_to_torch, warp  # noqa: E402
from EchoRegistrationLib.strain import compute_strain, myocardium_from_labels, result_from_displacement  # noqa: E402

CONDITIONS = ("clean", "degraded", "degraded + enhanced")
METHODS = ("dlir", "deformable")
CAMUS_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camus_ed_es" / "valid"
HALLUCINATION_OPTIONS = {"loss": "lncc", "iterations": (60, 40, 20)}


def versions(seq: EchoSequence, seed: int, model) -> tuple[dict[str, EchoSequence], float]:
    """The three conditions of ``seq`` and the enhancement's seconds per frame."""
    degraded = degrade_sequence(seq, seed=seed)
    start = time.perf_counter()
    enhanced = enhance_sequence(degraded, model, device="cpu")
    seconds = (time.perf_counter() - start) / seq.n_frames
    return dict(zip(CONDITIONS, (seq, degraded, enhanced))), seconds


def fidelity(frames: np.ndarray, clean: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """(SSIM, PSNR dB) of (T, H, W) frames against clean ones, 0..255, inside the field of view
    (SSIM: the 7 x 7 windows centred inside; PSNR for a peak of 255)."""
    a, b = (to_unit(torch.as_tensor(f, dtype=torch.float32)[:, None]) for f in (frames, clean))
    half = SSIM_WINDOW // 2
    local = ssim_map(a, b)[:, 0].numpy()
    mse = ((frames.astype(np.float64) - clean) ** 2)[:, inside].mean()
    return (float(local[:, inside[half:-half, half:-half]].mean()),
            float(10 * np.log10(255.0 ** 2 / mse)) if mse > 0 else float("inf"))


def boundary_distance(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> float:
    """Mean symmetric distance (mm) between the boundaries (pixels of a mask with a 4-neighbour outside
    it) of two non-empty (H, W) boolean masks on a grid of square pixels."""
    if not np.isclose(spacing[0], spacing[1]):
        raise ValueError(f"boundary distance needs square pixels, got spacing {spacing}")

    def edge(mask):
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        return mask & ~cv2.erode(mask.astype(np.uint8), cross, borderValue=1).astype(bool)

    def distance_to(mask):  # mm from every pixel to the nearest boundary pixel of mask
        return cv2.distanceTransform((~edge(mask)).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * spacing[0]
    return float(0.5 * (distance_to(b)[edge(a)].mean() + distance_to(a)[edge(b)].mean()))


def hallucination(frame: np.ndarray, clean: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """Boundary distance (mm) of the true ``mask`` and the mask carried by registering ``frame`` to
    ``clean`` (module docstring)."""
    result = register_pair(clean, frame, "deformable", spacing=spacing, **HALLUCINATION_OPTIONS)
    carried = warp(torch.as_tensor(mask[None, None], dtype=torch.float32), result.displacement, spacing)
    return boundary_distance(carried[0, 0].numpy() > 0.5, mask, spacing)


def simulated_case(k: int, n_frames: int, size: int, model) -> dict[str, dict[str, float]]:
    view, cycle = CASE_KINDS[k % len(CASE_KINDS)]
    sim = simulate_sequence(view=view, cycle=cycle, n_frames=n_frames, image_size=(size, size),
                            seed=FIRST_SEED + k)
    seq, es = sim.sequence, sim.sequence.es_index
    myocardium = myocardium_from_labels(seq.labels[0], seq.spacing)
    inside = (seq.frames > 0).any(axis=0)
    conditions, enhance_seconds = versions(seq, FIRST_SEED + k, model)
    scores: dict[str, dict[str, float]] = {}
    for condition, version in conditions.items():
        row = dict(zip(("ssim", "psnr"), fidelity(version.frames, seq.frames, inside)))
        row["boundary"] = float(np.mean([hallucination(version.frames[t], seq.frames[t],
                                                       seq.labels[t] == LABEL_MYOCARDIUM, seq.spacing)
                                         for t in (0, es)]))
        for method in METHODS:
            result = register_sequence(version, method, reference=0, device="cpu")
            epe = myocardial_end_point_error(result.displacement, sim.displacement, sim.myocardium_ed)
            strain = compute_strain(version, result_from_displacement(version, result.displacement, 0), myocardium)
            row[f"{method} epe"] = float(epe[es])
            row[f"{method} gls"] = abs(strain.peaks()["GLS endocardial"]["peak_pct"] - sim.gls_endo.min())
            row[f"{method} s"] = result.seconds / (seq.n_frames - 1)
        scores[condition] = row
    scores["degraded + enhanced"]["enhance s"] = enhance_seconds
    start = time.perf_counter()
    degraded = conditions["degraded"]
    for t in range(1, seq.n_frames):
        opencv_dis(degraded.frames[0], degraded.frames[t], seq.spacing)
    scores["degraded"]["dis s"] = (time.perf_counter() - start) / (seq.n_frames - 1)
    return scores


def camus_pair(patient: Path) -> EchoSequence:
    """ED and ES frames of a CAMUS ``valid`` patient with their masks, as a 2-frame sequence."""
    name = patient.name
    frames, labels = [], []
    for phase in ("ED", "ES"):
        image = load_sequence(patient.parent / f"{name}_4CH_{phase}.nii.gz")
        frames.append(image.frames[0])
        labels.append(load_sequence(patient.parent / f"{name}_4CH_{phase}_gt.nii.gz").frames[0].astype(np.uint8))
    return EchoSequence(frames=np.stack(frames), spacing=image.spacing, labels=np.stack(labels),
                        ed_index=0, es_index=1, metadata={"source": name})


def camus_case(patient: Path, seed: int, model) -> dict[str, dict[str, float]]:
    seq = camus_pair(patient)
    conditions, _ = versions(seq, seed, model)
    scores = {}
    for condition, version in conditions.items():
        scores[condition] = {}
        for method in METHODS:
            result = register_sequence(version, method, reference=0, device="cpu")
            scores[condition][f"{method} dice"] = warped_label_dice(
                seq.labels[0], seq.labels[1], field_to_torch(result.displacement[1:2]), seq.spacing)
    return scores


def _mean(cases: list[dict[str, dict[str, float]]], condition: str, key: str) -> float:
    values = [c[condition][key] for c in cases if key in c.get(condition, {})]
    return float(np.mean(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="enhancement model (installed name or checkpoint folder)")
    parser.add_argument("--cases", type=int, default=4, help="simulated sequences (seeds from 10000)")
    parser.add_argument("--frames", type=int, default=12, help="frames per simulated sequence")
    parser.add_argument("--size", type=int, default=256, help="simulated frame size in pixels (square)")
    parser.add_argument("--camus", type=int, default=10, help="CAMUS valid patients (0: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_enhancer(args.model)
    sims = []
    for k in range(args.cases):
        sims.append(simulated_case(k, args.frames, args.size, model))
        print(f"  simulated case {k + 1}/{args.cases} done", file=sys.stderr, flush=True)
    camus = []
    patients = sorted({p.name.split("_")[0] for p in CAMUS_VALID.glob("patient*_4CH_ED.nii.gz")})[:args.camus] \
        if CAMUS_VALID.is_dir() else []
    for k, name in enumerate(patients):
        camus.append(camus_case(CAMUS_VALID / name, 50_000 + k, model))
        print(f"  CAMUS {name} done", file=sys.stderr, flush=True)

    print(f"{args.cases} simulated cases ({args.frames} frames, {args.size}x{args.size}, seeds "
          f"{FIRST_SEED}..{FIRST_SEED + args.cases - 1}), {len(camus)} CAMUS valid patients "
          f"({patients[0] if patients else '-'}..{patients[-1] if patients else '-'}); model {args.model}; "
          f"torch {torch.__version__} on {torch.get_num_threads()} CPU threads")
    print()
    print("| frames | SSIM | PSNR (dB) | boundary (mm) | DLIR EPE ES (mm) | DLIR GLS error (pts) | DLIR CAMUS Dice "
          "| deformable EPE ES (mm) | deformable GLS error (pts) | deformable CAMUS Dice | s/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for condition in CONDITIONS:
        cells = [f"{_mean(sims, condition, key):.3f}" if key == "ssim" else f"{_mean(sims, condition, key):.2f}"
                 for key in ("ssim", "psnr", "boundary", "dlir epe", "dlir gls")]
        cells.append(f"{_mean(camus, condition, 'dlir dice'):.3f}")
        cells += [f"{_mean(sims, condition, key):.2f}" for key in ("deformable epe", "deformable gls")]
        cells.append(f"{_mean(camus, condition, 'deformable dice'):.3f}")
        timing = {"degraded": f"DLIR {_mean(sims, condition, 'dlir s'):.3f}, deformable "
                              f"{_mean(sims, condition, 'deformable s'):.3f}, OpenCV DIS "
                              f"{_mean(sims, condition, 'dis s'):.3f} (per pair)",
                  "degraded + enhanced": f"enhancement {_mean(sims, condition, 'enhance s'):.3f}"}
        print(f"| {condition} | {' | '.join(cells)} | {timing.get(condition, '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
