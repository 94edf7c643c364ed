"""Training data for DLIR: sequence sources and a pair sampler on the working grid.

Sources are sequences of :class:`SequenceItem` (an :class:`EchoSequence` and, for simulated data,
its true displacement from frame 0):

* :class:`SimulatedSequences`: the simulator on the fly, or from a cache folder of ``.npz`` files
  (:func:`write_simulated_cache` fills one in parallel);
* :class:`SequenceFolder`: a CAMUS root (``patientXXXX`` folders, every view), any folder of files
  that :func:`~EchoRegistrationLib.io.load_sequence` reads, and cached ``.npz`` items;
* :func:`open_source` builds either from a text spec (what the CLI takes).

:class:`PairSampler` brings every sequence once to a storage grid (the largest stage's working grid,
intensities normalised) and draws batches of pairs for any stage size: ED -> ES and ES -> ED, and
random frame pairs in both directions, with the fixed frame's neighbour for the texture term, and
for simulated sequences the true field between the two frames.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_output, check_output_folder
from ..io.camus import CamusDataset, CamusPairFolder
from ..io.dispatch import detect_format, load_sequence
from ..losses import one_hot
from ..spatial.pyramid import level_spacing, resample_field, resample_image
from ..sequence import EchoDataError, EchoSequence
from ..simulation import simulate_sequence
from ..simulation.appearance import NOMINAL_APPEARANCE, TissueAppearance, random_appearance
from .shipped import PROJECT_LICENCE
from ..spatial import compose, field_to_torch, invert_field, mirror_field, warp
from .augment import randomise_appearance
from .grid import prepare_frames, working_shape
from .items import DATA_SPECS, SequenceItem
from .templates import WARPED_SPEC, WarpedTemplates

NUM_LABELS = 4  # background, LV cavity, myocardium, left atrium (CAMUS codes)
VIEWS = ("A4C", "A2C")
REPLACEMENT_STRIDE, MAX_REPLACEMENTS = 1_000_000, 10  # for seeds the simulator rejects
# Fixed-point iterations inverting the simulated fields (displacement gradients below about 0.35:
# the error shrinks below 1e-5 of the field).
MOTION_INVERSE_ITERATIONS = 12
CAMUS_LICENCE = "CC BY-NC-SA 4.0"  # Leclerc et al., IEEE TMI 2019: non-commercial, share-alike
APPEARANCES = ("nominal", "randomised")  # of simulated training sequences (simulate_item)
APPEARANCE_STREAM = 0xA77  # random stream of the randomised appearance, apart from the simulator's
GAMMA_RANGE = (0.7, 1.4)  # intensity augmentation: the same random gamma for both frames of a pair


# ---------------------------------------------------------------------------- simulated sequences
def simulate_item(seed: int, n_frames: int = 20, image_size: Sequence[int] = (256, 256),
                  cycle: str = "half", appearance: str | TissueAppearance = "nominal") -> SequenceItem:
    """One simulated sequence with its truth; even seeds are A4C, odd seeds A2C.

    ``appearance`` "nominal" images the tissue as :data:`~..simulation.appearance.NOMINAL_APPEARANCE`;
    "randomised" draws echogenicity, texture and PSF per seed (:func:`~..simulation.appearance.
    random_appearance`, from its own random stream); a :class:`~..simulation.appearance.TissueAppearance`
    is used as given. Anatomy and motion are those of the nominal seed.

    The simulator rejects some seeds (about 8 %: the random heart does not fit the random sector
    depth); such a seed is replaced by seed + 1e6, seed + 2e6, ... (the seed used is in the
    sequence's metadata), so that every seed of a range yields a sequence, reproducibly.

    Raises:
        ValueError: an unknown ``appearance``, or no replacement seed fits."""
    if isinstance(appearance, TissueAppearance):
        look = appearance
    elif appearance in APPEARANCES:
        look = NOMINAL_APPEARANCE if appearance == "nominal" else \
            random_appearance(np.random.default_rng((APPEARANCE_STREAM, int(seed))))
    else:
        raise ValueError(f"appearance must be one of {APPEARANCES} or a TissueAppearance, got {appearance!r}")
    error = None
    for k in range(MAX_REPLACEMENTS + 1):
        try:
            sim = simulate_sequence(view=VIEWS[seed % 2], cycle=cycle, n_frames=n_frames,
                                    image_size=tuple(image_size), appearance=look,
                                    seed=int(seed) + k * REPLACEMENT_STRIDE)
        except ValueError as err:
            error = error or err
            continue
        return SequenceItem(sim.sequence, sim.displacement)
    raise error


def save_item(item: SequenceItem, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an item as a compressed ``.npz`` (frames float16, labels uint8, the true field and its
    inverse float16: 0.01 mm steps at 16 mm), with whether its pixel size and frame times are known
    (:attr:`~..sequence.EchoSequence.spacing_known`, ``frame_times_known``). Atomic."""
    seq = item.sequence
    arrays: dict[str, Any] = {
        "frames": seq.frames.astype(np.float16), "spacing": np.asarray(seq.spacing),
        "frame_times": seq.frame_times, "spacing_known": np.bool_(seq.spacing_known),
        "frame_times_known": np.bool_(seq.frame_times_known),
        "ed_index": np.int64(-1 if seq.ed_index is None else seq.ed_index),
        "es_index": np.int64(-1 if seq.es_index is None else seq.es_index),
        "source": np.array(seq.source)}
    if seq.labels is not None:
        arrays["labels"] = seq.labels
        arrays["label_frames"] = np.asarray(seq.label_frames)
    if item.displacement is not None:
        arrays["displacement"] = item.displacement.astype(np.float16)
    if item.inverse is not None:
        arrays["inverse"] = item.inverse.astype(np.float16)
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(path)


def load_item(path: str | os.PathLike) -> SequenceItem:
    """Read an item written by :func:`save_item` (an item written before it recorded them has a known pixel
    size and known frame times)."""
    with np.load(path) as data:
        labels = data["labels"] if "labels" in data else None
        known = {key: bool(data[key]) if key in data else True for key in ("spacing_known", "frame_times_known")}
        sequence = EchoSequence(
            frames=data["frames"].astype(np.float32), spacing=tuple(data["spacing"]),
            frame_times=data["frame_times"] if known["frame_times_known"] else None, labels=labels,
            label_frames=tuple(int(i) for i in data["label_frames"]) if labels is not None else None,
            ed_index=None if data["ed_index"] < 0 else int(data["ed_index"]),
            es_index=None if data["es_index"] < 0 else int(data["es_index"]),
            metadata={"source": str(path), "original_source": str(data["source"]),
                      **({} if known["spacing_known"] else {"spacing_known": False})})
        displacement, inverse = (data[key].astype(np.float32) if key in data else None
                                 for key in ("displacement", "inverse"))
    return SequenceItem(sequence, displacement, inverse)


def _check_cached_appearance(appearance: Any) -> None:
    """Raise ValueError unless ``appearance`` is one a cache names its items by (:data:`APPEARANCES`; a
    :class:`~..simulation.appearance.TissueAppearance` has no name)."""
    if appearance not in APPEARANCES:
        raise ValueError(f"cached appearance must be one of {APPEARANCES}, got {appearance!r}")


def _cache_name(seed: int, appearance: str = "nominal") -> str:
    _check_cached_appearance(appearance)
    kind = "" if appearance == "nominal" else f"{appearance}_"
    return f"simulated_{kind}{int(seed):07d}.npz"


class SimulatedSequences(Sequence):
    """Simulated apical sequences (A4C for even seeds, A2C for odd ones) with their true motion.

    Args:
        seeds: simulator seeds (training: from 0; benchmarks and validation use seeds >= 10000).
        n_frames, image_size, cycle, appearance: passed to :func:`simulate_item`.
        cache: optional folder: items are read from ``simulated_{seed}.npz`` there (randomised
            appearance: ``simulated_randomised_{seed}.npz``) when present, and written there when
            simulated.
    """

    def __init__(self, seeds: Iterable[int], *, n_frames: int = 20,
                 image_size: Sequence[int] = (256, 256), cycle: str = "half",
                 appearance: str = "nominal", cache: str | os.PathLike | None = None):
        _check_cached_appearance(appearance)
        self.seeds = [int(s) for s in seeds]
        self.options = {"n_frames": int(n_frames), "image_size": [int(v) for v in image_size],
                        "cycle": cycle, "appearance": appearance}
        self.cache = None if cache is None else Path(cache)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> SequenceItem:  # type: ignore[override]
        seed = self.seeds[index]
        path = None if self.cache is None else self.cache / _cache_name(seed, self.options["appearance"])
        if path is not None and path.exists():
            return load_item(path)
        item = simulate_item(seed, **self.options)
        if path is not None:
            save_item(item, path, overwrite=True)
        return item

    def describe(self) -> dict[str, Any]:
        seeds = self.seeds
        return {"source": "simulator", "seeds": f"{min(seeds)}..{max(seeds)} ({len(seeds)})",
                **self.options, "cache": None if self.cache is None else str(self.cache)}


def _simulate_to(task: tuple[int, dict[str, Any], str]) -> str:
    seed, options, folder = task
    path = Path(folder) / _cache_name(seed, options["appearance"])
    if not path.exists():
        save_item(simulate_item(seed, **options), path)
    return str(path)


def write_simulated_cache(folder: str | os.PathLike, seeds: Iterable[int], *, workers: int = 1,
                          n_frames: int = 20, image_size: Sequence[int] = (256, 256),
                          cycle: str = "half", appearance: str = "nominal",
                          progress: bool = True) -> list[Path]:
    """Simulate ``seeds`` into ``folder`` (skipping those already there) with ``workers`` processes
    (about 0.8 s per 20-frame 256 x 256 sequence each; ``appearance`` "nominal" or "randomised", as for
    :func:`simulate_item`). Returns the item paths in seed order.

    Raises:
        ValueError: another ``appearance`` (a cache names its items by these two kinds only)."""
    from tqdm import tqdm

    _check_cached_appearance(appearance)  # before any work

    check_output_folder(folder, ())  # before simulating anything
    Path(folder).mkdir(parents=True, exist_ok=True)
    options = {"n_frames": int(n_frames), "image_size": tuple(image_size), "cycle": cycle,
               "appearance": appearance}
    tasks = [(int(s), options, str(folder)) for s in seeds]
    paths = []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(tasks), unit="sequence", desc="simulating",
                                       disable=not progress))
        mapped = map(_simulate_to, tasks) if workers <= 1 else \
            stack.enter_context(ProcessPoolExecutor(workers)).map(_simulate_to, tasks, chunksize=4)
        for path in mapped:
            paths.append(Path(path))
            bar.update()
    return paths


# ---------------------------------------------------------------------------- folders of sequences
class SequenceFolder(Sequence):
    """Every sequence in a folder, loaded lazily: CAMUS patients (``patientXXXX`` sub-folders, each
    view an item), CAMUS ED / ES frames in one flat folder (:class:`~..io.camus.CamusPairFolder`,
    each patient view a 2-frame item with both frames annotated), cached ``.npz`` items, and every file
    :func:`~..io.load_sequence` reads (NIfTI, MetaImage, NRRD, .seq.nrrd, DICOM, video). Sequences without
    labels train on image terms only.

    Args:
        root: the folder.
        views: CAMUS views to include.
    """

    def __init__(self, root: str | os.PathLike, views: Sequence[str] = ("2CH", "4CH")):
        self.root = Path(root)
        if not self.root.is_dir():
            raise EchoDataError(str(self.root), "is not a folder")
        self.camus: CamusDataset | CamusPairFolder | None = None
        self.files: list[Path] = []
        if CamusPairFolder.holds_pairs(self.root):  # flat ED / ES frames: nothing else is read there
            self.camus = CamusPairFolder(self.root, views=views)
        else:
            if any(p.is_dir() and p.name.startswith("patient") for p in self.root.iterdir()):
                self.camus = CamusDataset(self.root, views=views)
            self.files = [p for p in sorted(self.root.iterdir()) if p.is_file() and self._readable(p)]
        if not len(self):
            raise EchoDataError(str(self.root), "holds no readable sequences")

    @staticmethod
    def _readable(path: Path) -> bool:
        if path.suffix == ".npz":
            return True
        try:
            detect_format(path)
        except EchoDataError:
            return False
        return True

    def __len__(self) -> int:
        return (0 if self.camus is None else len(self.camus)) + len(self.files)

    def __getitem__(self, index: int) -> SequenceItem:  # type: ignore[override]
        n_camus = 0 if self.camus is None else len(self.camus)
        if index < n_camus:
            return SequenceItem(self.camus[index])
        path = self.files[index - n_camus]
        return load_item(path) if path.suffix == ".npz" else SequenceItem(load_sequence(path))

    def describe(self) -> dict[str, Any]:
        kind = "camus" if self.camus is not None and not self.files else "folder"
        return {"source": kind, "root": str(self.root), "sequences": len(self)}


class Concatenated(Sequence):
    """Several sources read as one."""

    def __init__(self, sources: Sequence[Sequence[SequenceItem]]):
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> SequenceItem:  # type: ignore[override]
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.sources[k][index - int(self.offsets[k])]

    def describe(self) -> list[Any]:
        return [describe_source(s) for s in self.sources]


SIM_SPEC = re.compile(r"^sim(?:ulated)?(-randomised)?:(\d+)-(\d+)(?::(.+))?$")


def open_source(spec: Any) -> Sequence[SequenceItem]:
    """A source from a spec: ``"sim:START-STOP"`` (seeds START..STOP-1, simulated on the fly) or
    ``"sim:START-STOP:CACHE_FOLDER"``, ``"sim-randomised:..."`` for the same seeds with a randomised
    appearance (:func:`simulate_item`); ``"warped:FOLDER"`` or ``"warped:FOLDER:COPIES"`` (the annotated
    frames of a folder's sequences moved by known random motion, :class:`.templates.WarpedTemplates`); a folder
    path (:class:`SequenceFolder`); a list of specs (concatenated); or a source / sequence of items, returned
    as is.

    Raises:
        ValueError: a simulator spec whose seed range is empty (START >= STOP).
        EchoDataError: a text that is neither a spec nor a folder, or a folder without readable sequences.
    """
    if isinstance(spec, (str, os.PathLike)):
        match = SIM_SPEC.match(str(spec))
        if match:
            randomised, start, stop, cache = match.groups()
            if int(stop) <= int(start):
                raise ValueError(f"{spec}: the simulator seeds START-STOP need START < STOP")
            return SimulatedSequences(range(int(start), int(stop)), cache=cache,
                                      appearance="randomised" if randomised else "nominal")
        match = WARPED_SPEC.match(str(spec))
        if match:
            return WarpedTemplates(SequenceFolder(match.group(1)), copies=int(match.group(2) or 1))
        if not Path(spec).is_dir():
            raise EchoDataError(str(spec), f"is neither a data spec ({DATA_SPECS}) nor a folder")
        return SequenceFolder(spec)
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (str, os.PathLike)):
        return Concatenated([open_source(s) for s in spec])
    return spec


def source_kinds(description: Any) -> set[str]:
    """The ``source`` kinds ("simulator", "camus", "folder", "items") of a :func:`describe_source`
    description (a dict, or a list of them for concatenated sources)."""
    if isinstance(description, list):
        return set().union(*(source_kinds(d) for d in description)) if description else set()
    return {str(description.get("source", "unknown"))} if isinstance(description, dict) else {"unknown"}


def data_licence(description: Any) -> str:
    """The terms a model trained on the described sources carries: CC BY-NC-SA 4.0 whenever CAMUS
    data is among them (a derived work of the dataset), the project's BSD-3-Clause when the
    project's simulator is the only source, else "unknown (see the model card)"."""
    kinds = source_kinds(description)
    if "camus" in kinds:
        return CAMUS_LICENCE
    return PROJECT_LICENCE if kinds == {"simulator"} else "unknown (see the model card)"


def combined_licence(base_licence: str | None, data_licence: str) -> str:
    """The terms of a model made of a trained model under ``base_licence`` (None: not known, e.g. a
    model given as an object) and a part trained on data under ``data_licence``: CAMUS's when either
    has them, the project's when both do, else "unknown (see the model card)"."""
    terms = {base_licence, data_licence}
    if CAMUS_LICENCE in terms:
        return CAMUS_LICENCE
    return PROJECT_LICENCE if terms == {PROJECT_LICENCE} else "unknown (see the model card)"


def describe_source(source: Sequence[SequenceItem]) -> Any:
    """JSON-ready description of a source (for checkpoint configs)."""
    describe = getattr(source, "describe", None)
    return describe() if describe is not None else {"source": "items", "sequences": len(source)}


# ---------------------------------------------------------------------------- pairs
@dataclass
class PairBatch:
    """A batch of B registration pairs on a stage's working grid (one shape for all items).

    Attributes:
        fixed, moving: (B, 1, h, w) in [0, 1].
        neighbour: (B, 1, h, w) a frame next to the fixed one, shifted by a random sub-pixel
            translation: the "real" pair partner for the texture discriminator.
        fixed_labels, moving_labels: (B, NUM_LABELS, h, w) soft one-hot maps, or None when no
            item of the batch is annotated on both frames.
        labelled: (B,) 1.0 where both frames are annotated.
        motion: (B, 2, h, w) mm true field from the fixed to the moving frame (project convention),
            or None when no item of the batch has a known motion (simulated sequences and warped
            templates have one).
        supervised: (B,) 1.0 where ``motion`` is the truth (0 and a zero field elsewhere).
        spacing: (B, 2) mm of each item's grid.
        pairs: (sequence index, fixed frame, moving frame) of each item.
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    neighbour: torch.Tensor
    fixed_labels: torch.Tensor | None
    moving_labels: torch.Tensor | None
    labelled: torch.Tensor
    spacing: torch.Tensor
    pairs: list[tuple[int, int, int]]
    motion: torch.Tensor | None = None
    supervised: torch.Tensor | None = None


@dataclass
class _Stored:
    """One sequence on the storage canvas: frames (T, S, Wc) float16 in [0, 1], label codes
    (T, S, Wc) uint8 or None, which frames are annotated, spacing (sx, sy) mm, ED / ES, and the
    true field from frame 0 to each frame (T, 2, S, Wc) float16 mm or None, and from each frame back
    to frame 0 where it is known exactly (same layout) or None."""

    frames: torch.Tensor
    labels: torch.Tensor | None
    annotated: np.ndarray
    spacing: tuple[float, float]
    ed: int | None
    es: int | None
    motion: torch.Tensor | None = None
    inverse: torch.Tensor | None = None


class PairSampler:
    """Draws batches of frame pairs from sequences held on a common storage canvas.

    Each sequence is brought once to the working grid of ``storage_size`` rows (:mod:`.grid`),
    normalised, and zero-padded on the right to a common canvas width (the echo sector's
    surroundings are black already). :meth:`sample` resamples a batch to any stage size.

    Pairs: with probability ``ed_es_fraction`` the ED and ES frames (when the sequence knows them)
    in a random direction, otherwise two distinct random frames in a random order, at most
    ``max_frame_gap`` frames apart when that is given (a model for sequential tracking learns the
    motion between near neighbours). Augmentation
    (``augment``): a random horizontal flip of the pair and one random gamma for both frames; with
    ``randomise`` > 0, that share of the pairs also gets a random appearance
    (:func:`.augment.randomise_appearance`: blur, time-gain, dynamic range, haze, dropout, noise).

    Args:
        items: the sequences (each needs at least 2 frames).
        storage_size: rows of the storage grid (the largest stage size).
        ed_es_fraction: share of ED <-> ES pairs.
        max_frame_gap: the largest frame distance of the random pairs (None: any two frames); the
            gap is uniform in 1..max_frame_gap, then the first frame uniform where both fit.
        rank, world_size: distributed training: this process keeps the sequences
            ``rank::world_size``.
        augment: flips and gamma.
        randomise: share of the pairs whose appearance is redrawn (domain randomisation; 0: none).
        first_frame_pairs: instead, pairs of frame 0 and a random other frame, in that order where
            the true motion is known only from frame 0 (simulated sequences: no inverted truth), in a
            random order elsewhere (an exact inverse, as warped templates have, or no truth);
            ``ed_es_fraction`` and ``max_frame_gap`` are then not used.
    """

    def __init__(self, items: Sequence[SequenceItem], *, storage_size: int = 128,
                 ed_es_fraction: float = 0.3, max_frame_gap: int | None = None, rank: int = 0,
                 world_size: int = 1, augment: bool = True, randomise: float = 0.0,
                 first_frame_pairs: bool = False):
        if max_frame_gap is not None and max_frame_gap < 1:
            raise ValueError(f"max_frame_gap must be >= 1, got {max_frame_gap}")
        self.storage_size = int(storage_size)
        self.ed_es_fraction = float(ed_es_fraction)
        self.max_frame_gap = max_frame_gap
        self.augment = augment
        self.randomise = float(randomise)
        self.first_frame_pairs = bool(first_frame_pairs)
        stored = [self._store(items[k]) for k in range(rank, len(items), world_size)]
        if not stored:
            raise ValueError(f"no sequences for rank {rank} of {world_size} ({len(items)} in all)")
        self.width = max(s.frames.shape[-1] for s in stored)
        self.sequences = [self._pad(s) for s in stored]

    @property
    def has_labels(self) -> bool:
        return any(s.labels is not None for s in self.sequences)

    def _store(self, item: SequenceItem) -> _Stored:
        seq = item.sequence
        seq.require_frames(2)
        frames, spacing = prepare_frames(torch.from_numpy(seq.frames)[:, None], seq.spacing,
                                         self.storage_size)
        labels = None
        annotated = np.zeros(seq.n_frames, bool)
        if seq.labels is not None:
            annotated[list(seq.label_frames)] = True
            codes = seq.labels if seq.labels.ndim == 3 else np.broadcast_to(seq.labels, seq.frames.shape)
            codes = np.where(codes < NUM_LABELS, codes, 0)  # other structures count as background
            soft = one_hot(torch.from_numpy(codes)[:, None], NUM_LABELS)
            labels = resample_image(soft, frames.shape[-2:]).argmax(1).to(torch.uint8)
        motion, inverse = (None if field is None else
                           resample_field(field_to_torch(field), frames.shape[-2:]).to(torch.float16)
                           for field in (item.displacement, item.inverse))
        return _Stored(frames[:, 0].to(torch.float16), labels, annotated, spacing,
                       seq.ed_index, seq.es_index, motion, inverse)

    def _pad(self, stored: _Stored) -> _Stored:
        pad = self.width - stored.frames.shape[-1]
        if pad:
            stored.frames = torch.nn.functional.pad(stored.frames, (0, pad))
            if stored.labels is not None:
                stored.labels = torch.nn.functional.pad(stored.labels, (0, pad))
            # the edge motion continues (warped templates move everywhere)
            stored.motion, stored.inverse = (
                None if field is None else
                torch.nn.functional.pad(field.float(), (0, pad, 0, 0), mode="replicate").to(field.dtype)
                for field in (stored.motion, stored.inverse))
        return stored

    def stage_shape(self, size: int) -> tuple[int, int]:
        """(h, w) of the canvas at a stage of ``size`` rows."""
        return working_shape((self.storage_size, self.width), (1.0, 1.0), size)

    def _pair(self, stored: _Stored, rng: np.random.Generator) -> tuple[int, int]:
        n = stored.frames.shape[0]
        if self.first_frame_pairs:
            pair = (0, int(rng.integers(1, n)))
            exact_back = stored.motion is None or stored.inverse is not None
            return pair if not exact_back or rng.random() < 0.5 else pair[::-1]
        if stored.ed is not None and stored.es is not None and stored.ed != stored.es \
                and rng.random() < self.ed_es_fraction:
            pair = (stored.ed, stored.es)
        elif self.max_frame_gap is not None:
            gap = int(rng.integers(1, min(self.max_frame_gap, n - 1) + 1))
            first = int(rng.integers(n - gap))
            pair = (first, first + gap)
        else:
            first, second = rng.choice(n, size=2, replace=False)
            pair = (int(first), int(second))
        return pair if rng.random() < 0.5 else pair[::-1]

    def sample(self, batch_size: int, size: int, rng: np.random.Generator,
               device: torch.device | str = "cpu") -> PairBatch:
        """A batch of ``batch_size`` pairs on the stage grid of ``size`` rows."""
        pairs, images, codes, labelled, spacings, from_zero, to_zero = [], [], [], [], [], [], []
        for _ in range(batch_size):
            index = int(rng.integers(len(self.sequences)))
            stored = self.sequences[index]
            fixed, moving = self._pair(stored, rng)
            n = stored.frames.shape[0]
            neighbour = fixed + (1 if fixed == 0 or (fixed < n - 1 and rng.random() < 0.5) else -1)
            pairs.append((index, fixed, moving))
            images.append(stored.frames[[fixed, moving, neighbour]])
            both = stored.labels is not None and stored.annotated[fixed] and stored.annotated[moving]
            labelled.append(float(both))
            codes.append(stored.labels[[fixed, moving]] if both else None)
            spacings.append(stored.spacing)
            from_zero.append(None if stored.motion is None else stored.motion[[fixed, moving]])
            to_zero.append(None if stored.inverse is None else stored.inverse[fixed])
        stack = torch.stack(images).to(device=device, dtype=torch.float32)  # (B, 3, S, Wc)
        shape = self.stage_shape(size)
        stack = resample_image(stack, shape)
        scale = level_spacing((self.storage_size, self.width), shape, (1.0, 1.0))
        spacing = torch.tensor(spacings, dtype=torch.float32, device=device) * torch.tensor(scale, device=device)
        label_maps = None
        if any(labelled):
            zero = torch.zeros(2, self.storage_size, self.width, dtype=torch.uint8)
            hard = torch.stack([zero if c is None else c for c in codes]).to(device)  # (B, 2, S, Wc)
            soft = one_hot(hard.flatten(0, 1)[:, None], NUM_LABELS)
            label_maps = resample_image(soft, shape).unflatten(0, (batch_size, 2))  # (B, 2, L, h, w)
        supervised = torch.tensor([float(m is not None) for m in from_zero], device=device)
        motion = None
        if supervised.any():
            motion = self._true_motion(from_zero, to_zero, shape, spacing)
        if self.augment:
            flip = torch.from_numpy(rng.random(batch_size) < 0.5).to(device)
            stack = torch.where(flip[:, None, None, None], stack.flip(-1), stack)
            if label_maps is not None:
                label_maps = torch.where(flip[:, None, None, None, None], label_maps.flip(-1), label_maps)
            if motion is not None:
                motion = torch.where(flip[:, None, None, None], mirror_field(motion), motion)
            gamma = torch.from_numpy(rng.uniform(*GAMMA_RANGE, batch_size)).to(stack)
            stack = stack.clamp(min=0) ** gamma[:, None, None, None]
        if self.randomise > 0:
            stack = randomise_appearance(stack, rng, self.randomise)
        shift = torch.from_numpy(rng.uniform(-0.5, 0.5, (batch_size, 2, 1, 1))).to(stack) * spacing[..., None, None]
        neighbour = warp(stack[:, 2:3], shift.expand(-1, -1, *shape), spacing)
        return PairBatch(
            fixed=stack[:, 0:1], moving=stack[:, 1:2], neighbour=neighbour,
            fixed_labels=None if label_maps is None else label_maps[:, 0],
            moving_labels=None if label_maps is None else label_maps[:, 1],
            labelled=torch.tensor(labelled, device=device), spacing=spacing, pairs=pairs,
            motion=motion, supervised=supervised)

    def _true_motion(self, from_zero: list[torch.Tensor | None], to_zero: list[torch.Tensor | None],
                     shape: tuple[int, int], spacing: torch.Tensor) -> torch.Tensor:
        """(B, 2, h, w) mm true fields from the fixed to the moving frame of each pair on the stage
        grid (zero for pairs without one): the inverse of frame 0 -> fixed, then frame 0 ->
        moving. ``from_zero`` holds each pair's (2, 2, S, Wc) fields frame 0 -> fixed, moving;
        ``to_zero`` its exact (2, S, Wc) field fixed -> frame 0 where the item knows it (warped
        templates), else None: that inverse comes from :func:`..spatial.invert_field`."""
        zero = torch.zeros(2, 2, self.storage_size, self.width, dtype=torch.float16)
        fields = torch.stack([zero if f is None else f for f in from_zero]).to(spacing)
        fields = resample_field(fields.flatten(0, 1), shape).unflatten(0, (len(from_zero), 2))
        to_fixed, to_moving = fields.unbind(1)
        back = torch.empty_like(to_fixed)
        exact = [k for k, f in enumerate(to_zero) if f is not None]
        iterated = [k for k, f in enumerate(to_zero) if f is None]
        if exact:
            back[exact] = resample_field(torch.stack([to_zero[k] for k in exact]).to(spacing), shape)
        if iterated:
            back[iterated] = invert_field(to_fixed[iterated], spacing[iterated], MOTION_INVERSE_ITERATIONS)
        return compose(back, to_moving, spacing)

    def sample_masks(self, batch_size: int, label: int, rng: np.random.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, 1, S, Wc) binary masks of ``label`` on annotated frames (for the VAEs)."""
        annotated = [(s, t) for s in self.sequences if s.labels is not None
                     for t in np.flatnonzero(s.annotated)]
        if not annotated:
            raise ValueError("the sequences hold no annotated frames: a VAE needs label maps")
        picks = rng.integers(len(annotated), size=batch_size)
        masks = torch.stack([annotated[k][0].labels[annotated[k][1]] == label for k in picks])
        return masks[:, None].to(device=device, dtype=torch.float32)
