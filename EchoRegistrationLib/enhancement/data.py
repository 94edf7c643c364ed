"""Data of the enhancement CycleGAN: unpaired frames of a low- and a high-quality domain.

Sources are specs as for DLIR training (:func:`..dlir.data.open_source`: ``"sim:START-STOP"``, a
folder of sequences or a CAMUS root, a list of specs), plus ``"degraded:START-STOP"``: simulated
sequences (seeds START..STOP-1) degraded by :func:`..simulation.degradation.degrade_sequence` with
a random degradation of the same seed, the project's own low-quality domain with paired clean truth.
Simulated specs here make :data:`FRAMES_PER_SEQUENCE`-frame sequences (any frame serves).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dlir.data import Concatenated, SequenceItem, SimulatedSequences, open_source, simulate_item
from ..sequence import EchoDataError
from ..spatial.pyramid import resample_image
from ..simulation.degradation import degrade_sequence
from .networks import to_unit

FRAMES_PER_SEQUENCE = 8
DEGRADED_SPEC = re.compile(r"^degraded:(\d+)-(\d+)$")
SIM_SPEC = re.compile(r"^sim(?:ulated)?:(\d+)-(\d+)$")
MIN_INSIDE = 0.3  # a training crop holds at least this share of field-of-view pixels (when it can)
CROP_TRIES = 20


class DegradedSequences(Sequence):
    """Simulated sequences degraded by a random degradation of their own seed.

    Args:
        seeds: simulator seeds (even A4C, odd A2C, :func:`..dlir.data.simulate_item`); the
            degradation uses the same seed.
        n_frames, image_size: of the simulated sequences.
        severity: of :func:`..simulation.degradation.random_degradation` (0..1).
    """

    def __init__(self, seeds: Sequence[int], *, n_frames: int = FRAMES_PER_SEQUENCE,
                 image_size: Sequence[int] = (256, 256), severity: float = 1.0):
        self.seeds = [int(s) for s in seeds]
        self.options = {"n_frames": int(n_frames), "image_size": [int(v) for v in image_size]}
        self.severity = float(severity)

    def __len__(self) -> int:
        return len(self.seeds)

    def pair(self, index: int) -> tuple[SequenceItem, SequenceItem]:
        """(degraded, clean) items of one seed."""
        clean = simulate_item(self.seeds[index], **self.options)
        degraded = degrade_sequence(clean.sequence, seed=self.seeds[index], severity=self.severity)
        return SequenceItem(degraded, clean.displacement), clean

    def __getitem__(self, index: int) -> SequenceItem:  # type: ignore[override]
        return self.pair(index)[0]

    def describe(self) -> dict[str, Any]:
        return {"source": "simulator (degraded)", "seeds": f"{min(self.seeds)}..{max(self.seeds)} "
                f"({len(self.seeds)})", "severity": self.severity, **self.options}


def open_domain(spec: Any) -> Sequence[SequenceItem]:
    """A source of one domain from a spec (module docstring), a list of specs, or items as they are.

    Raises:
        EchoDataError: a text that is neither a domain spec nor a folder (or a folder without
            readable sequences).
    """
    if isinstance(spec, (str, os.PathLike)):
        for pattern, make in ((DEGRADED_SPEC, DegradedSequences),
                              (SIM_SPEC, lambda seeds: SimulatedSequences(seeds, n_frames=FRAMES_PER_SEQUENCE))):
            match = pattern.match(str(spec))
            if match:
                return make(range(int(match.group(1)), int(match.group(2))))
        if not Path(spec).is_dir():
            raise EchoDataError(str(spec), "is neither a domain spec (degraded:START-STOP, sim:START-STOP) "
                                           "nor a folder")
        return open_source(spec)
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (str, os.PathLike)):
        return Concatenated([open_domain(s) for s in spec])
    return spec


def frames_at_pixel_size(frames: np.ndarray, spacing: Sequence[float], pixel_mm: float) -> torch.Tensor:
    """(T, H, W) grey frames -> (T, 1, h, w) float32 on a grid of ``pixel_mm`` square pixels over
    the same extent (antialiased), in -1..1."""
    frames_t = torch.as_tensor(np.asarray(frames, dtype=np.float32))[:, None]
    h, w = frames_t.shape[-2:]
    shape = (max(2, round((h - 1) * spacing[1] / pixel_mm) + 1), max(2, round((w - 1) * spacing[0] / pixel_mm) + 1))
    return to_unit(resample_image(frames_t, shape))


class FrameSampler:
    """Random square crops of single frames of a source, on the model's pixel grid.

    Every sequence is loaded on first use and kept (at the model's pixel size, about 128 x 128 per
    frame). Crops hold at least 30 % field-of-view pixels when such a crop exists; frames smaller
    than the crop are padded with -1 (black).

    Args:
        items: the source (:func:`open_domain`).
        pixel_mm: pixel size of the model's grid.
        crop: crop side in pixels.
    """

    def __init__(self, items: Sequence[SequenceItem], pixel_mm: float, crop: int):
        if len(items) == 0:
            raise ValueError("a training domain holds no sequences")
        self.items, self.pixel_mm, self.crop = items, float(pixel_mm), int(crop)
        self._frames: dict[int, torch.Tensor] = {}

    def frames(self, index: int) -> torch.Tensor:
        """(T, 1, h, w) frames of item ``index``, -1..1, padded to at least the crop."""
        if index not in self._frames:
            seq = self.items[index].sequence
            frames = frames_at_pixel_size(seq.frames, seq.spacing, self.pixel_mm)
            pad_h, pad_w = (max(0, self.crop - n) for n in frames.shape[-2:])
            self._frames[index] = torch.nn.functional.pad(frames, (0, pad_w, 0, pad_h), value=-1.0)
        return self._frames[index]

    def sample(self, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
        """(1, 1, crop, crop) a random crop of a random frame of a random sequence."""
        frames = self.frames(int(rng.integers(len(self.items))))
        frame = frames[int(rng.integers(len(frames)))]
        h, w = frame.shape[-2:]
        for _ in range(CROP_TRIES):
            top, left = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
            patch = frame[:, top:top + self.crop, left:left + self.crop]
            if (patch > -1.0).float().mean() >= MIN_INSIDE:
                break
        return patch[None].to(device)
