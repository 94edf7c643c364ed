"""Generalisation benchmark: every method on echo its models never saw, one table (a script).

Five domains, none of them used to train or tune any shipped model:

* **CAMUS valid** (``../shared/data/camus_ed_es/valid``, 50 patients, apical four-chamber; the
  models train on ``train`` only): each patient's ED / ES pair registered in both directions
  (ED->ES: ES is fixed, ED moving; ES->ED: ED fixed). The moving expert mask is warped onto the
  fixed frame with nearest-neighbour interpolation and scored against the fixed mask: Dice of LV
  cavity and myocardium, HD95 (mm, the 95th percentile of the symmetric boundary distances, mean of
  LV and myocardium), folding (% of all pixels with det J <= 0) and milliseconds per pair.
* **Real-template family** (:mod:`benchmarks.real_template_family`): CAMUS valid ED frames moved by
  known analytic cardiac motion and re-imaged with speckle decorrelation, noise, haze and gain
  changes (K frames ED -> ES): myocardial end-point error at ES (mm, over the ED myocardium) and
  the GLS error (percentage points, endocardial peak GLS of the project's strain module on the
  method's fields against the same on the true fields), and the segmental error (the mean over the six
  A4C segments of the same for each segment's peak longitudinal strain: motion along the wall, which
  neither Dice nor GLS sees).
* **SIMUS family** (:mod:`benchmarks.simus_family`, needs ``pymust``, the benchmark extra): a
  synthetic beating LV imaged by acoustics, not by a texture model (SIMUS RF of a phased array,
  delay-and-sum beamforming, log compression), K frames ED -> ES with known motion: myocardial
  end-point error at ES, GLS and segmental errors, as for the real-template family. Left out, with a note, where
  ``pymust`` is not installed; the simulated frames are kept in ``--simus-cache`` (a case takes about
  2 min to simulate).
* **Low resolution**: the same CAMUS valid pairs area-averaged to 112 x 112 pixels (labels
  nearest-neighbour) with the pixel size unknown (the placeholder (1, 1) mm of a video), as another
  scanner's clips come (EchoNet-Dynamic-like: small, blurred, square, the aspect not kept): Dice of
  LV / myocardium in both directions, folding, ms per pair (:func:`low_resolution_pair`).
* **Real cines** of ``../shared/data`` (:mod:`benchmarks.benchmark_real_cines`): mean NCC of
  the frames with the reference after registration (before it in brackets), the largest folding
  of a frame, seconds per cine.

Below the table, paired differences with 95 % bootstrap intervals over the same patients or cases
(:func:`paired_difference`): each network, alone and refined, against OpenCV DIS and the optimiser,
and the refinement against the network alone, so that a lead can be told from the spread between
patients.

Methods: each DLIR model (catalog names or checkpoint folders) alone and with the fast refinement
(:func:`EchoRegistrationLib.registration.register_sequence` ``refine``), each also tracking every frame
against its neighbour (", sequential") or every frame directly, without the systole anchor that tracking to
the reference takes by default (", no anchor", ``register_sequence(anchor=0)``; both on a pair the same
registration), the optimiser
(deformable; sequential and to the reference: on a pair both are one registration), OpenCV DIS
and Farneback. Times are also given as ratios to OpenCV DIS measured in the same run.

Usage (repository root, ``../shared`` beside it)::

    python benchmarks/benchmark_generalisation.py --output bench.md            # the full table
    python benchmarks/benchmark_generalisation.py --cases 5 --template-cases 3  # a quick run

The data is read in place, never copied (CC BY-NC-SA 4.0, ``../shared/data/README.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchmark_real_cines import CINES, DATA, cine_scores  # noqa: E402
from benchmarks.peer_methods import opencv_dis, opencv_farneback, peer_sequence_fields  # noqa: E402
from benchmarks.real_template_family import TemplateCase, make_case  # noqa: E402
from benchmarks.simus_family import VERSION as SIMUS_VERSION, make_simus_case  # noqa: E402
from EchoRegistrationLib import load_sequence  # noqa: E402
from EchoRegistrationLib.dlir.checkpoints import load_model  # noqa: E402
from EchoRegistrationLib.dlir.shipped import list_models, resolve_model  # noqa: E402
from EchoRegistrationLib.io import CamusPairFolder  # noqa: E402
from EchoRegistrationLib.registration import register_sequence  # noqa: E402
from EchoRegistrationLib.spatial.metrics import dice, myocardial_end_point_error  # noqa: E402
from EchoRegistrationLib.sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoSequence  # noqa: E402
from EchoRegistrationLib.spatial import field_to_torch, folding_fraction, warp  # noqa: E402
from EchoRegistrationLib.strain import compute_strain  # noqa: E402
from EchoRegistrationLib.strain.compute import result_from_displacement  # noqa: E402
from EchoRegistrationLib.workflow import DEFAULT_REFINE  # noqa: E402
from EchoRegistrationLib.strain.myocardium import myocardium_from_labels  # noqa: E402

# On a pair (two frames) sequential tracking and tracking to the reference are one registration:
# the CAMUS columns of the second row are those of the first, not computed twice.
SAME_ON_PAIRS = {"optimiser (deformable, to reference)": "optimiser (deformable, sequential)"}
TEMPLATE_SEED = 20_000  # seeds of the real-template family (case k: TEMPLATE_SEED + k)
SIMUS_SEED = 30_000  # seeds of the SIMUS family (case k: SIMUS_SEED + k)
SIMUS_CACHE = Path(__file__).resolve().parents[1] / "runs" / "simus_cache"
PER_ITEM = "_per_item"  # row key suffix: a score's values per patient or case, in order, for paired differences
ITEMS = "items"  # row key: which patients and cases its per-item values are of (paired only when equal)
PAIRED_METRICS = ("dice_lv", "dice_myo")  # the CAMUS pair scores kept per patient
# percentile bootstrap of paired differences: resamples of the items, the generator's seed (reproducible)
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 10_000, 0
MIN_ITEMS = 10  # fewer paired items: the mean difference alone, no interval (the bootstrap under-covers)
# A method's row: mean scores (float), per-item values (list, keys ending PER_ITEM), ITEMS (dict), ratios
Row = dict[str, Any]
STRUCTURES = (LABEL_LV, LABEL_MYOCARDIUM)
# A method: (sequence, reference frame) -> (T, H, W, 2) mm fields on the reference grid.
Method = Callable[[EchoSequence, int], np.ndarray]


def same_on_pairs(name: str) -> str | None:
    """The row whose CAMUS columns are those of row ``name`` (:data:`SAME_ON_PAIRS`, and a DLIR row
    tracked sequentially, without the systole anchor or from the direct start: its default row), or None."""
    if name in SAME_ON_PAIRS:
        return SAME_ON_PAIRS[name]
    for suffix in (", sequential", ", no anchor", ", direct start"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return None


def ours(method: str, **options) -> Method:
    """A project method through :func:`register_sequence`."""
    def run(seq: EchoSequence, reference: int) -> np.ndarray:
        return register_sequence(seq, method, reference=reference, **options).displacement
    return run


def peer(function) -> Method:
    """A peer method, every frame directly to the reference."""
    def run(seq: EchoSequence, reference: int) -> np.ndarray:
        return peer_sequence_fields(function, seq, reference)
    return run


def methods(models: list[str], refine: int) -> dict[str, Method]:
    """Row name -> method, for the DLIR ``models`` (names or folders, loaded here once) and
    ``refine`` steps."""
    table: dict[str, Method] = {"identity": lambda seq, ref: np.zeros((*seq.frames.shape, 2), np.float32)}
    for model in models:
        name = Path(model).name
        network = load_model(resolve_model(model))  # once: reading the checkpoint is not timed
        table[f"DLIR {name}"] = ours("dlir", model=network)
        table[f"DLIR {name} + refine {refine}"] = ours("dlir", model=network, refine=refine)
        # the refinement comparing the images alone, not the model's anatomy maps too (as before 2026-12-01)
        table[f"DLIR {name} + refine {refine}, images only"] = ours("dlir", model=network, refine=refine,
                                                                     feature_weight=0.0)
        # the refinement from the network's field of each frame alone (the default until 2026-12-02; the default
        # keeps the better of it and the chained start, registration.tracking.REFINE_STARTS; on a pair the same)
        table[f"DLIR {name} + refine {refine}, direct start"] = ours("dlir", model=network, refine=refine,
                                                                      refine_start="direct")
        # the same, every frame tracked against its neighbour (on a pair the same registration)
        table[f"DLIR {name}, sequential"] = ours("dlir", model=network, mode="sequential")
        table[f"DLIR {name} + refine {refine}, sequential"] = ours("dlir", model=network, refine=refine,
                                                                    mode="sequential")
        # every frame to the reference directly, without the default systole anchor (on a pair the same)
        table[f"DLIR {name}, no anchor"] = ours("dlir", model=network, anchor=0)
        table[f"DLIR {name} + refine {refine}, no anchor"] = ours("dlir", model=network, refine=refine, anchor=0)
    table["optimiser (deformable, sequential)"] = ours("deformable", mode="sequential")
    table["optimiser (deformable, to reference)"] = ours("deformable", mode="to_reference")
    table["OpenCV DIS"] = peer(opencv_dis)
    table["OpenCV Farneback"] = peer(opencv_farneback)
    return table


# ---------------------------------------------------------------------------- CAMUS valid pairs
def hd95(a: np.ndarray, b: np.ndarray, pixel_mm: float) -> float:
    """95th percentile of the symmetric distances (mm) between the boundaries of two (H, W) masks
    (isotropic pixels of ``pixel_mm``); nan when either is empty."""
    if not a.any() or not b.any():
        return float("nan")
    kernel = np.ones((3, 3), np.uint8)

    def boundary(mask: np.ndarray) -> np.ndarray:
        m = mask.astype(np.uint8)
        return (m - cv2.erode(m, kernel)) > 0

    edge_a, edge_b = boundary(a), boundary(b)
    to_b = cv2.distanceTransform((~edge_b).astype(np.uint8), cv2.DIST_L2, 5)
    to_a = cv2.distanceTransform((~edge_a).astype(np.uint8), cv2.DIST_L2, 5)
    return float(np.percentile(np.concatenate([to_b[edge_a], to_a[edge_b]]), 95) * pixel_mm)


def pair_scores(fixed_labels: np.ndarray, moving_labels: np.ndarray, field: np.ndarray,
                spacing: tuple[float, float]) -> dict[str, float]:
    """Dice LV / myocardium, HD95 (mm) and folding (%) of one (H, W, 2) mm field."""
    u = field_to_torch(field[None])
    moving = torch.from_numpy(moving_labels[None, None].astype(np.int64))
    warped = warp(moving, u, spacing, mode="nearest", padding="zeros")[0, 0].numpy()
    pixel = float(np.mean(spacing))
    return {"dice_lv": dice(warped == LABEL_LV, fixed_labels == LABEL_LV),
            "dice_myo": dice(warped == LABEL_MYOCARDIUM, fixed_labels == LABEL_MYOCARDIUM),
            "hd95": float(np.nanmean([hd95(warped == k, fixed_labels == k, pixel) for k in STRUCTURES])),
            "folding": 100 * float(folding_fraction(u, spacing)[0])}


def low_resolution_pair(seq: EchoSequence, size: int = 112) -> EchoSequence:
    """A 2-frame labelled pair resampled to ``size`` x ``size`` pixels as a low-resolution scanner's
    clip: frames area-averaged (cv2.INTER_AREA), label maps nearest-neighbour (cv2.INTER_NEAREST, which
    samples about half an output pixel off the area average's centres: both masks of a pair shift
    alike), the aspect ratio not kept, and the pixel size unknown (placeholder (1, 1) mm,
    ``spacing_known`` False). Every frame must be labelled (:meth:`EchoSequence.label_map`)."""
    frames = np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in seq.frames])
    labels = np.stack([cv2.resize(seq.label_map(k), (size, size), interpolation=cv2.INTER_NEAREST)
                       for k in range(seq.n_frames)])
    return dataclasses.replace(seq, frames=frames, labels=labels, label_frames=tuple(range(seq.n_frames)),
                               spacing=(1.0, 1.0), mask=None, metadata={**seq.metadata, "spacing_known": False})


def camus_scores(run: Method, pairs: list[EchoSequence]) -> Row:
    """Mean scores over the pairs in both directions: ED->ES (ES fixed) and ES->ED (ED fixed), and the
    :data:`PAIRED_METRICS` per pair (keys ending :data:`PER_ITEM`, in the order of ``pairs``)."""
    rows: dict[str, list[dict[str, float]]] = {"ed_es": [], "es_ed": []}
    seconds = []
    for seq in pairs:
        for key, fixed, moving in (("ed_es", 1, 0), ("es_ed", 0, 1)):
            start = time.perf_counter()
            fields = run(seq, fixed)
            seconds.append(time.perf_counter() - start)
            rows[key].append(pair_scores(seq.label_map(fixed), seq.label_map(moving), fields[moving],
                                         seq.spacing))
    result = {f"{key}_{metric}": float(np.mean([r[metric] for r in values]))
              for key, values in rows.items() for metric in values[0]}
    result.update({f"{key}_{metric}{PER_ITEM}": [r[metric] for r in values]  # for paired differences
                   for key, values in rows.items() for metric in PAIRED_METRICS})
    result["folding_max"] = max(r["folding"] for values in rows.values() for r in values)
    result["ms_pair"] = 1000 * float(np.mean(seconds))
    return result


# ---------------------------------------------------------------------------- real-template family
GLS = "GLS endocardial"  # the GLS of the GLS error columns


def peak_strains(case: TemplateCase, fields: np.ndarray) -> dict[str, float]:
    """Peak systolic strain (%) of every curve of the project's strain module (GLS endocardial and
    mid-wall, the six A4C segments) on ``fields`` of a case."""
    myocardium = myocardium_from_labels(case.sequence.labels, case.sequence.spacing)
    result = compute_strain(case.sequence, result_from_displacement(case.sequence, fields, 0), myocardium)
    return {name: float(entry["peak_pct"]) for name, entry in result.peaks().items()}


def segmental_error(peaks: dict[str, float], truth: dict[str, float]) -> float:
    """Mean |peak segmental strain error| (points) over the segments (the curves not named GLS)."""
    return float(np.mean([abs(peaks[name] - value) for name, value in truth.items() if not name.startswith("GLS")]))


def template_scores(run: Method, cases: list[TemplateCase], truths: list[dict[str, float]]) -> Row:
    """Mean myocardial EPE at ES (mm), mean |GLS error| and mean |segmental peak strain error|
    (points, :func:`segmental_error`), largest folding (%), seconds; the EPE and both strain errors
    also per case (keys ending :data:`PER_ITEM`, in the order of ``cases``). ``truths``: each case's
    :func:`peak_strains` on its true fields."""
    epe, gls, segmental, folding, seconds = [], [], [], [], []
    for case, truth in zip(cases, truths):
        start = time.perf_counter()
        fields = run(case.sequence, 0)
        seconds.append(time.perf_counter() - start)
        epe.append(myocardial_end_point_error(fields, case.displacement, case.myocardium)[-1])
        peaks = peak_strains(case, fields)
        gls.append(abs(peaks[GLS] - truth[GLS]))
        segmental.append(segmental_error(peaks, truth))
        folding.append(100 * float(folding_fraction(field_to_torch(fields), case.sequence.spacing).max()))
    return {"epe_es": float(np.mean(epe)), "gls": float(np.mean(gls)), "segmental": float(np.mean(segmental)),
            "folding": max(folding), "s_case": float(np.mean(seconds)), f"epe_es{PER_ITEM}": [float(e) for e in epe],
            f"gls{PER_ITEM}": [float(g) for g in gls], f"segmental{PER_ITEM}": [float(g) for g in segmental]}


def simus_family(count: int, n_frames: int, cache: Path) -> list[TemplateCase]:
    """The first ``count`` SIMUS cases (seeds :data:`SIMUS_SEED`+), simulated once into ``cache`` (pymust
    is imported only to simulate a case not there yet); none, with a note, when ``count`` is 0 or a case
    must be simulated and ``pymust`` is not installed."""
    cases = []
    for k in range(max(count, 0)):
        print(f"  SIMUS case {k + 1}/{count} (simulated once, then read from {cache})", file=sys.stderr, flush=True)
        try:
            cases.append(make_simus_case(SIMUS_SEED + k, n_frames, cache))
        except ImportError:
            print("SIMUS family left out: pymust is not installed (pip install -e \".[benchmark]\") and the "
                  f"frames are not all in {cache}", file=sys.stderr)
            return []
    return cases


# ---------------------------------------------------------------------------- paired differences
def paired_difference(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of a - b over paired items (the same patients or cases, in order) and its 95 % percentile
    bootstrap interval (:data:`BOOTSTRAP_RESAMPLES` resamples of the items, seeded; Efron and
    Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13).

    Returns:
        (mean, low, high), in the units of ``a`` and ``b``.

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long, non-empty lists of paired values, got {len(a)} and {len(b)}")
    differences = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = differences[rng.integers(0, len(differences), (BOOTSTRAP_RESAMPLES, len(differences)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(differences.mean()), float(low), float(high)


# The parts of ITEMS a column's values depend on: the CAMUS patients; also the 112 px pairs' size; the
# family's seeds and frames; the SIMUS family's seeds, frames and generator version.
CAMUS, LOW, FAMILY, SIMUS = ("camus",), ("camus", "low_resolution"), ("family",), ("simus",)
# (row key, column title, the ITEMS parts it depends on): the scores compared item by item (the Dice ones
# are PAIRED_METRICS)
PAIRED_SCORES = (("ed_es_dice_lv", "ED->ES Dice LV", CAMUS), ("ed_es_dice_myo", "myo", CAMUS),
                 ("es_ed_dice_lv", "ES->ED Dice LV", CAMUS), ("es_ed_dice_myo", "myo", CAMUS),
                 ("low_ed_es_dice_lv", "112 px ED->ES LV", LOW), ("low_ed_es_dice_myo", "myo", LOW),
                 ("low_es_ed_dice_lv", "112 px ES->ED LV", LOW), ("low_es_ed_dice_myo", "myo", LOW),
                 ("epe_es", "family EPE ES mm", FAMILY), ("gls", "GLS err pts", FAMILY),
                 ("segmental", "segmental err pts", FAMILY), ("simus_epe_es", "SIMUS EPE ES mm", SIMUS),
                 ("simus_gls", "SIMUS GLS err pts", SIMUS), ("simus_segmental", "SIMUS segmental err pts", SIMUS))
NOT_PAIRED = "n/a (other items)"


def default_comparisons(models: list[str], refine: int) -> list[tuple[str, str]]:
    """(row, baseline) pairs for each DLIR model: the network and the network + refinement each against
    OpenCV DIS and the optimiser (to the reference, and sequential: on the families and the cines another
    registration, on a pair the same), the network + refinement against the network and
    against the refinement on the images alone, and each (through the default systole anchor) against
    itself without it."""
    comparisons = []
    for model in models:
        network = f"DLIR {Path(model).name}"
        refined = f"{network} + refine {refine}"
        for row in (network, refined):
            comparisons += [(row, "OpenCV DIS"), (row, "optimiser (deformable, to reference)"),
                            (row, "optimiser (deformable, sequential)")]
        comparisons += [(refined, network), (refined, f"{refined}, images only")]
        comparisons += [(row, f"{row}, no anchor") for row in (network, refined)]
    return comparisons


def difference_cell(a_items: list[float], b_items: list[float]) -> str:
    """"mean [low, high]" of :func:`paired_difference`, the mean alone (marked) below :data:`MIN_ITEMS`."""
    mean, low, high = paired_difference(a_items, b_items)
    if len(a_items) < MIN_ITEMS:
        return f"{mean:+.3f} (n {len(a_items)}: no interval)"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def same_items(a: Row, b: Row, parts: tuple[str, ...]) -> bool:
    """Whether two rows' :data:`ITEMS` agree on ``parts`` (a column's, :data:`PAIRED_SCORES`); a row
    that does not say what it holds agrees with none."""
    a_items, b_items = a.get(ITEMS) or {}, b.get(ITEMS) or {}
    return all(part in a_items and a_items.get(part) == b_items.get(part) for part in parts)


def included_rows(path: Path) -> dict[str, Row]:
    """Method -> row of a ``--rows`` file (JSON lines); a line that is not a whole row (a run killed while
    writing it) is left out with a warning."""
    rows = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
            rows[record["method"]] = record["scores"]
        except (ValueError, KeyError, TypeError):
            if line.strip():
                print(f"{path}:{number}: not a whole row, left out", file=sys.stderr)
    return rows


def differences_table(rows: dict[str, Row], comparisons: list[tuple[str, str]]) -> str:
    """Markdown table of paired differences (row - baseline, mean [95 % bootstrap interval]) of
    :data:`PAIRED_SCORES`, for the comparisons whose two rows both hold the per-item values; "" when
    none do. Rows whose :data:`ITEMS` differ (another run's patients, cases, frames or pixel size) are
    not paired (:data:`NOT_PAIRED`). The header gives each column's number of items. Dice: higher is
    better; EPE, GLS and segmental errors: lower is better."""
    lines, counts = [], {}
    for name, baseline in comparisons:
        a, b = rows.get(name, {}), rows.get(baseline, {})
        cells = []
        for key, _, parts in PAIRED_SCORES:
            a_items, b_items = a.get(key + PER_ITEM), b.get(key + PER_ITEM)
            if a_items is None or b_items is None:
                cells.append("-")
            elif not same_items(a, b, parts) or len(a_items) != len(b_items):
                cells.append(NOT_PAIRED)
            else:
                counts.setdefault(key, len(a_items))
                cells.append(difference_cell(a_items, b_items))
        if any(cell != "-" for cell in cells):
            lines.append(f"| {name} - {baseline} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    header = "| row - baseline | " + " | ".join(
        f"{title} (n {counts[key]})" if key in counts else title for key, title, _ in PAIRED_SCORES) + " |"
    return "\n".join([header, "|" + "---|" * (len(PAIRED_SCORES) + 1), *lines])


# ---------------------------------------------------------------------------- real cines
def cine_row(run: Method, cines: dict[str, EchoSequence]) -> dict[str, float]:
    """Per cine: NCC after / before, largest folding (%), seconds (every frame to frame 0)."""
    out: dict[str, float] = {}
    for name, seq in cines.items():
        start = time.perf_counter()
        fields = run(seq, 0)
        seconds = time.perf_counter() - start
        scores = cine_scores(result_from_displacement(seq, fields, 0), seconds)
        out.update({f"{name}_{key}": value for key, value in scores.items()})
    return out


TIMES = ("ms_pair", "low_ms_pair", "s_case", "simus_s_case")  # plus "<cine>_seconds": each also kept as a ratio to DIS


def with_ratios(row: Row, dis: Row) -> Row:
    """``row`` plus ``<time>_x_dis``: each time divided by OpenCV DIS's in the same run."""
    keys = [k for k in row if k in TIMES or k.endswith("_seconds")]
    return {**row, **{f"{k}_x_dis": row[k] / dis[k] for k in keys if dis.get(k)}}


EARLIER_RUN = " *"  # marks a row of an earlier run (--include) in the table, with a note below it


def table(rows: dict[str, Row], cine_names: list[str], earlier: frozenset[str] = frozenset()) -> str:
    """The markdown table of rows made by :func:`with_ratios` (times with their DIS ratios); the rows
    named in ``earlier`` (read with ``--include``) are marked :data:`EARLIER_RUN` and a note under the
    table says that their ratios are to the DIS of their own run."""
    header = ["method", "CAMUS ED->ES Dice LV / myo", "HD95 mm", "ES->ED Dice LV / myo", "HD95 mm",
              "folding % mean (max)", "ms/pair (x DIS)", "family EPE ES mm", "GLS err pts", "segmental err pts",
              "folding % (max)", "s/case (x DIS)", "SIMUS EPE ES mm", "SIMUS GLS err pts", "SIMUS segmental err pts",
              "SIMUS folding % (max)", "SIMUS s/case (x DIS)", "112 px ED->ES Dice LV / myo", "ES->ED Dice LV / myo",
              "folding % max", "ms/pair (x DIS)"]
    for name in cine_names:
        header += [f"{name} NCC (before)", "folding % (max)", "s (x DIS)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def timed(row: dict[str, float], key: str) -> str:
        ratio = row.get(f"{key}_x_dis")
        return f"{row[key]:.3g}" + ("" if ratio is None else f" ({ratio:.2g}x)")

    for name, r in rows.items():
        cells = [name + (EARLIER_RUN if name in earlier else "")]
        if "ed_es_dice_lv" in r:
            cells += [f"{r['ed_es_dice_lv']:.3f} / {r['ed_es_dice_myo']:.3f}", f"{r['ed_es_hd95']:.2f}",
                      f"{r['es_ed_dice_lv']:.3f} / {r['es_ed_dice_myo']:.3f}", f"{r['es_ed_hd95']:.2f}",
                      f"{(r['ed_es_folding'] + r['es_ed_folding']) / 2:.3f} ({r['folding_max']:.2f})",
                      timed(r, "ms_pair")]
        else:
            cells += ["-"] * 6
        for prefix in ("", "simus_"):  # the real-template family, then the SIMUS family
            if f"{prefix}epe_es" in r:
                cells += [f"{r[f'{prefix}epe_es']:.2f}", f"{r[f'{prefix}gls']:.2f}",
                          f"{r[f'{prefix}segmental']:.2f}" if f"{prefix}segmental" in r else "-",
                          f"{r[f'{prefix}folding']:.3f}", timed(r, f"{prefix}s_case")]
            else:
                cells += ["-"] * 5
        if "low_ed_es_dice_lv" in r:
            cells += [f"{r['low_ed_es_dice_lv']:.3f} / {r['low_ed_es_dice_myo']:.3f}",
                      f"{r['low_es_ed_dice_lv']:.3f} / {r['low_es_ed_dice_myo']:.3f}",
                      f"{r['low_folding_max']:.2f}", timed(r, "low_ms_pair")]
        else:
            cells += ["-"] * 4
        for cine in cine_names:
            if f"{cine}_ncc_after" in r:
                cells += [f"{r[f'{cine}_ncc_after']:.3f} ({r[f'{cine}_ncc_before']:.3f})",
                          f"{r[f'{cine}_folding']:.3f}", timed(r, f"{cine}_seconds")]
            else:
                cells += ["-"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    if earlier & set(rows):
        lines.append(f"\n{EARLIER_RUN.strip()} from an earlier run (--include): its times and their ratios are "
                     "those of that run, against the DIS of that run, not this one's.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default {DATA})")
    parser.add_argument("--models", nargs="*", help="DLIR model names or checkpoint folders (default: "
                        "every model of the catalog)")
    parser.add_argument("--methods", nargs="*", help="only these rows (names as in the table)")
    parser.add_argument("--cases", type=int, default=50, help="CAMUS valid patients (default all 50; 0: none)")
    parser.add_argument("--template-cases", type=int, default=10,
                        help="real-template sequences (from the first CAMUS valid patients)")
    parser.add_argument("--template-frames", type=int, default=6, help="frames ED -> ES per template case")
    parser.add_argument("--simus-cases", type=int, default=8,
                        help="SIMUS sequences (0: leave the SIMUS family out; needs pymust)")
    parser.add_argument("--simus-frames", type=int, default=6, help="frames ED -> ES per SIMUS case")
    parser.add_argument("--simus-cache", type=Path, default=SIMUS_CACHE,
                        help=f"where the simulated SIMUS frames are kept (default {SIMUS_CACHE})")
    parser.add_argument("--refine", type=int, default=DEFAULT_REFINE,
                        help=f"refinement steps of the DLIR + refine rows (default {DEFAULT_REFINE}, as by default)")
    parser.add_argument("--low-resolution", type=int, default=112,
                        help="pixels of the low-resolution CAMUS valid pairs (0: leave them out)")
    parser.add_argument("--no-cines", action="store_true", help="leave out the real cines")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--output", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--rows", type=Path, help="append each finished row here (JSON lines), so that "
                        "a long run keeps what it measured")
    parser.add_argument("--include", type=Path, nargs="*", default=[],
                        help="rows of earlier runs (--rows files) to show before this run's; their "
                             "time ratios are to the DIS of their own run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    valid = args.data / "camus_ed_es" / "valid"
    if not valid.is_dir():
        print(f"skipped: {valid} is not there", file=sys.stderr)
        return 1
    folder = CamusPairFolder(valid, views=("4CH",))
    pairs = [folder[k] for k in range(min(args.cases, len(folder)))]
    low_pairs = [low_resolution_pair(seq, args.low_resolution) for seq in pairs] if args.low_resolution else []
    cases = [make_case(folder[k].frames[0], folder[k].label_map(0), folder[k].spacing,
                       args.template_frames, TEMPLATE_SEED + k)
             for k in range(min(args.template_cases, len(folder)))]
    truths = [peak_strains(case, case.displacement) for case in cases]
    simus_cases = simus_family(args.simus_cases, args.simus_frames, args.simus_cache)
    simus_truths = [peak_strains(case, case.displacement) for case in simus_cases]
    cines = {} if args.no_cines else {name: load_sequence(args.data / path) for name, path in CINES.items()}
    models = args.models if args.models is not None else [m.name for m in list_models()]
    rows_to_run = methods(models, args.refine)
    if args.methods:
        unknown = sorted(set(args.methods) - set(rows_to_run))
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; the methods are {sorted(rows_to_run)}")
        rows_to_run = {k: v for k, v in rows_to_run.items() if k in args.methods or k == "OpenCV DIS"}
    # DIS first: every row's times become ratios to it as soon as the row is done
    rows_to_run = {"OpenCV DIS": rows_to_run.pop("OpenCV DIS"), **rows_to_run}
    # warm-up: first calls (lazy imports, allocator, model loading) are not timed
    warm_up = next(iter([*pairs, *(case.sequence for case in cases + simus_cases)]), None)
    if warm_up is None:
        raise SystemExit("nothing to register: no CAMUS pairs, template or SIMUS cases")
    for run in rows_to_run.values():
        run(warm_up, 1)
    # what the per-item values are of: rows of other runs pair with this run's only when equal
    items = {"camus": [seq.metadata.get("patient", seq.source) for seq in pairs],
             "low_resolution": args.low_resolution if low_pairs else None,
             "family": {"seeds": [TEMPLATE_SEED + k for k in range(len(cases))], "frames": args.template_frames},
             "simus": {"seeds": [SIMUS_SEED + k for k in range(len(simus_cases))], "frames": args.simus_frames,
                       "version": SIMUS_VERSION}}
    rows: dict[str, Row] = {}
    for path in args.include:
        rows.update(included_rows(path))
    earlier = frozenset(rows) - set(rows_to_run)  # a row run again here is this run's
    for name, run in rows_to_run.items():
        same = same_on_pairs(name)
        if same in rows and rows[same].get(ITEMS) == items:
            row = dict(rows[same])
        else:
            row = camus_scores(run, pairs) if pairs else {}
            if low_pairs:
                row.update({f"low_{key}": value for key, value in camus_scores(run, low_pairs).items()})
        if cases:
            row.update(template_scores(run, cases, truths))
        if simus_cases:
            row.update({f"simus_{key}": value
                        for key, value in template_scores(run, simus_cases, simus_truths).items()})
        row.update(cine_row(run, cines))
        row[ITEMS] = items
        rows[name] = with_ratios(row, row if name == "OpenCV DIS" else rows["OpenCV DIS"])
        if args.rows is not None:
            with args.rows.open("a") as handle:
                handle.write(json.dumps({"method": name, "scores": rows[name]}) + "\n")
        print(f"  done: {name}", file=sys.stderr, flush=True)
    low = f" (also at {args.low_resolution} x {args.low_resolution} px, pixel size unknown)" if low_pairs else ""
    text = (f"{len(pairs)} CAMUS valid patients x 2 directions{low}; {len(cases)} real-template cases"
            + (f" ({args.template_frames} frames ED->ES, true peak GLS {np.mean([t[GLS] for t in truths]):.1f} %); "
               if cases else "; ")
            + (f"{len(simus_cases)} SIMUS cases ({args.simus_frames} frames ED->ES, true peak GLS "
               f"{np.mean([t[GLS] for t in simus_truths]):.1f} %); " if simus_cases else "SIMUS family left out; ")
            + f"real cines "
            f"{list(cines)}; torch {torch.__version__} on {torch.get_num_threads()} CPU threads; "
            f"labels warped nearest-neighbour; refine = {args.refine} steps\n\n"
            + table(rows, list(cines), earlier))
    differences = differences_table(rows, default_comparisons(models, args.refine))
    if differences:
        text += ("\n\nPaired differences, row - baseline, over the same patients (CAMUS valid, 112 px) or "
                 "cases (families): mean [95 % bootstrap interval]. Dice: higher is better; EPE, GLS and "
                 "segmental errors: lower is better. An interval that contains 0 is no difference this data "
                 f"can show. With up to {len(PAIRED_SCORES)} intervals per comparison, each at 95 %, about one "
                 "in twenty would exclude 0 by chance alone: read a difference of a few thousandths that "
                 "just excludes 0 as small, not as shown.\n\n" + differences)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
