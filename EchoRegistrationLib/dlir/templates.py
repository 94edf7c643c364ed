"""Warped templates: real echo frames moved by known random smooth motion (training data with truth).

Real pairs (CAMUS ED / ES) teach a network real texture but carry no true motion; the simulator carries
true motion but only its own texture. A warped template has both: a real frame (the template) and the
same frame moved by a random smooth map, so every pixel's true displacement is known, on real speckle,
real anatomy and a real scanner's point-spread function (the idea of training optical flow on
synthetic warps of real images: FlowNet's "Flying Chairs", Dosovitskiy et al. 2015; SynthMorph,
Hoffmann et al. 2022, for medical registration).

Motion of each item, drawn from its own seed, deliberately generic (not a cardiac model): a smooth
random diffeomorphism (a stationary velocity with normal values on a coarse control grid, bicubically
interpolated and integrated by scaling and squaring, as SynthMorph draws its warps), then a random
affine map about the image centre (rotation, anisotropic scaling, translation). The velocity's
standard deviation reaches :data:`SMOOTH_AMPLITUDE_MM`, so that displacements of 15-20 mm occur, the
range of the mitral annulus between end-diastole and end-systole (normal MAPSE 12-17 mm at the septal
and lateral annulus; Matos et al., J Am Soc Echocardiogr 2012): a model trained on smaller motion
does not recover the base's descent. The inverse is the negated velocity integrated, composed with the
affine inverse: diffeomorphic at any amplitude, exact up to interpolation (inverse after map: under
0.1 mm on average over the image interior at the largest amplitude, more near the edges). Both frames are
re-imaged with a multiplicative speckle pattern that moves with the tissue and partly decorrelates,
and receiver noise; the probe does not move, so the moved frame keeps the template's sector.

Items are 2-frame sequences (template, moved) with the true field frame 0 -> frame 1 in the project's
convention, and the template's labels on both frames (the moved ones carried by the motion), at about
:data:`TEMPLATE_ROWS` rows. ``warped:ROOT`` or ``warped:ROOT:COPIES`` is the spec of the training
CLI (:func:`.data.open_source`); a CAMUS root keeps CAMUS's terms (CC BY-NC-SA 4.0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..sequence import EchoSequence
from ..losses import one_hot
from ..spatial import affine_to_displacement, compose, field_to_numpy, integrate_velocity, warp
from ..spatial.pyramid import level_spacing, resample_image
from .augment import gaussian_blur, random_affine
from .items import SequenceItem

WARPED_SPEC = re.compile(r"^warped:(.+?)(?::(\d+))?$")
TEMPLATE_ROWS = 256          # the templates are brought to about this many rows first
MAX_ROTATION_DEG = 5.0       # affine part: rotation within +- this
MAX_SCALE = 0.06             # per-axis scaling within 1 +- this
MAX_SHIFT_MM = 4.0           # translation within +- this along each axis
CONTROL_POINTS = 5           # smooth part: a CONTROL_POINTS^2 grid over the image
SMOOTH_AMPLITUDE_MM = (0.0, 6.0)  # its velocity's standard deviation, drawn per item (module docstring)
SPECKLE_DEPTH = (0.0, 0.35)  # multiplicative speckle modulation, drawn per item
SPECKLE_SIGMA_PX = 1.0       # speckle grain (Gaussian smoothing of white noise, template pixels)
SPECKLE_CORRELATION = (0.5, 1.0)  # correlation of the moved frame's speckle with the template's
NOISE = (0.0, 0.03)          # additive receiver noise standard deviation, of the 255 grey range
INTEGRATION_STEPS = 7       # scaling and squaring of the velocity


def _speckle(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """(1, 1, H, W) unit-variance smooth random pattern (white noise, Gaussian grain)."""
    noise = torch.randn((1, 1, *shape), generator=generator)
    smooth = gaussian_blur(noise, np.full((1, 2), SPECKLE_SIGMA_PX), padding="reflect")
    return smooth / smooth.std().clamp(min=1e-6)


def random_motion(shape: tuple[int, int], spacing: tuple[float, float], rng: np.random.Generator,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random smooth diffeomorphism followed by a random affine map about the image centre (module
    docstring), on an (H, W) grid of ``spacing`` (sx, sy) mm.

    Returns:
        (motion, inverse): (1, 2, H, W) mm fields; ``motion`` maps a template point p to p + u(p)
        (project convention), ``inverse`` its inverse on the moved frame's grid (exact up to interpolation).
    """
    matrix = random_affine(1, rng, MAX_ROTATION_DEG, MAX_SCALE, MAX_SHIFT_MM)
    affine, affine_inverse = (affine_to_displacement(m, shape, spacing) for m in (matrix, torch.linalg.inv(matrix)))
    amplitude = rng.uniform(*SMOOTH_AMPLITUDE_MM)
    coarse = amplitude * torch.randn((1, 2, CONTROL_POINTS, CONTROL_POINTS), generator=generator)
    velocity = F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)
    smooth, smooth_inverse = (integrate_velocity(v, spacing, INTEGRATION_STEPS) for v in (velocity, -velocity))
    return compose(smooth, affine, spacing), compose(affine_inverse, smooth_inverse, spacing)


def warped_template(frame: np.ndarray, labels: np.ndarray | None, spacing: tuple[float, float],
                    seed: int) -> SequenceItem:
    """A 2-frame item: the (H, W) grey 0..255 ``frame`` re-imaged, and moved by :func:`random_motion`;
    the true field frame 0 -> 1 (project convention: a template point p is at p + u(p) in the moved
    frame), its exact inverse (:attr:`.items.SequenceItem.inverse`) and the (H, W) label codes
    ``labels`` on both frames (None: unannotated)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(seed))
    shape = tuple(frame.shape)
    motion, inverse = random_motion(shape, spacing, rng, generator)
    image = torch.from_numpy(np.asarray(frame, np.float32))[None, None]
    sector = image > 0
    speckle = _speckle(shape, generator)
    rho = rng.uniform(*SPECKLE_CORRELATION)
    moved_speckle = np.sqrt(rho) * warp(speckle, inverse, spacing) + np.sqrt(1 - rho) * _speckle(shape, generator)
    depth, noise = rng.uniform(*SPECKLE_DEPTH), 255 * rng.uniform(*NOISE)

    def image_of(tissue: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
        shown = tissue * (1 + depth * pattern).clamp(min=0) + noise * torch.randn(tissue.shape, generator=generator)
        return (shown * sector).clamp(0, 255)

    frames = torch.cat([image_of(image, speckle), image_of(warp(image, inverse, spacing), moved_speckle)])
    codes = None
    if labels is not None:
        codes_t = torch.from_numpy(np.asarray(labels, np.int64))[None, None]
        moved = warp(codes_t, inverse, spacing, mode="nearest", padding="zeros")
        codes = torch.cat([codes_t, moved])[:, 0].numpy().astype(np.uint8)
    zero = np.zeros((*shape, 2), np.float32)
    displacement = np.stack([zero, field_to_numpy(motion)[0]])
    back = np.stack([zero, field_to_numpy(inverse)[0]])
    seq = EchoSequence(frames=frames[:, 0].numpy().astype(np.float32), spacing=spacing, labels=codes,
                       metadata={"source": f"warped template (seed {seed})"})
    return SequenceItem(seq, displacement.astype(np.float32), back.astype(np.float32))


class WarpedTemplates(Sequence):
    """Warped templates (module docstring) of the annotated frames of a source's sequences.

    Item ``i`` takes template ``i % n`` (n = the templates: every annotated frame of every sequence,
    frame 0 of unannotated ones) at about ``rows`` rows, its motion drawn from seed
    ``seed + i``; ``copies`` repeats the templates with new motions.

    Args:
        templates: the sequences that give the templates (e.g. a CAMUS root's :class:`.data.SequenceFolder`).
        copies: motions per template.
        seed: of the first item.
        description: what :meth:`describe` reports of the templates (their source, for the model's
            licence: a CAMUS source keeps CAMUS's terms); default the templates' own ``describe()``.
        rows: the templates are brought to about this many rows (never upsampled); default
            :data:`TEMPLATE_ROWS`, as trained on.
    """

    def __init__(self, templates: Sequence[SequenceItem], copies: int = 1, seed: int = 0,
                 description: Any = None, rows: int = TEMPLATE_ROWS):
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        if rows < 2:
            raise ValueError(f"rows must be >= 2, got {rows}")
        self.templates, self.copies, self.seed, self.rows = templates, int(copies), int(seed), int(rows)
        self.description = description if description is not None else \
            getattr(templates, "describe", lambda: None)()
        self._frames: list[tuple[int, int]] | None = None

    def _index(self) -> list[tuple[int, int]]:
        """(sequence, frame) of every template (reads each sequence once, on first use)."""
        if self._frames is None:
            self._frames = []
            for k in range(len(self.templates)):
                seq = self.templates[k].sequence
                annotated = list(seq.label_frames) if seq.labels is not None else [0]
                self._frames += [(k, int(t)) for t in annotated]
        return self._frames

    def __len__(self) -> int:
        return self.copies * len(self._index())

    def __getitem__(self, index: int) -> SequenceItem:  # type: ignore[override]
        if not 0 <= index < len(self):
            raise IndexError(index)
        k, t = self._index()[index % len(self._index())]
        seq = self.templates[k].sequence
        scale = min(1.0, self.rows / seq.frames.shape[1])
        shape = (max(2, round(seq.frames.shape[1] * scale)), max(2, round(seq.frames.shape[2] * scale)))
        frame = resample_image(torch.from_numpy(np.asarray(seq.frames[t], np.float32))[None, None], shape)
        spacing = level_spacing(seq.frames.shape[1:], shape, seq.spacing)
        labels = None
        if seq.labels is not None:  # resampled as the frame is (corner to corner), one code per pixel
            codes = torch.from_numpy(np.asarray(seq.label_map(t), np.int64))[None, None]
            labels = resample_image(one_hot(codes, int(codes.max()) + 1), shape).argmax(1)[0].numpy().astype(np.uint8)
        return warped_template(frame[0, 0].numpy(), labels, spacing, self.seed + index)

    def describe(self) -> dict[str, Any]:
        templates = self.description or {"source": "items", "sequences": len(self.templates)}
        source = templates.get("source", "items") if isinstance(templates, dict) else "items"
        return {"source": source, "kind": "warped templates", "templates": templates,
                "copies": self.copies, "seed": self.seed, "rows": self.rows,
                "motion": f"smooth random diffeomorphism (stationary velocity, sd up to "
                          f"{SMOOTH_AMPLITUDE_MM[1]} mm, {CONTROL_POINTS}x{CONTROL_POINTS} control points) "
                          f"then random affine (rotation +-{MAX_ROTATION_DEG} deg, scale +-{MAX_SCALE}, "
                          f"shift +-{MAX_SHIFT_MM} mm)"}
