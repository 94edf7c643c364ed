"""The DLIR training objective: similarity + bending energy + Dice + shape + texture (+ motion).

Everything is computed on the working grid in physical units (fields in mm, bending energy in
1/mm^2), so the weights mean the same at every multi-scale stage. Terms that need labels are
averaged over the labelled items of a batch only (and are 0 in a batch without labels: folders of
unlabelled sequences train on the image terms alone). The optional motion term supervises the field
with the true motion where a pair has one (simulated sequences, warped templates); it is 0 for real
pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from ..losses import bending_energy, dice_scores, local_ncc_loss, mutual_information_loss
from ..spatial import in_view_mask, warp
from .discriminator import PatchDiscriminator
from .vae import MaskVAE

SIMILARITIES = ("lncc", "mi")
REAL_TARGET = 0.9  # one-sided label smoothing of the discriminator's real pairs
# The motion term weighs heart pixels (LV cavity, myocardium, atrium of the fixed labels) this many
# times more than the rest: the heart is a sixth of the image but holds the motion strain needs.
HEART_WEIGHT = 5.0


class TermWeights:
    """Base of the dataclasses that weight the terms of a training objective."""

    @classmethod
    def of(cls, weights: TermWeights | Mapping[str, float] | None) -> Any:
        """Accept an instance, a {term: weight} mapping of some terms (others default), or None
        (the defaults).

        Raises:
            ValueError: a term the class does not have, naming the known ones.
        """
        if weights is None or isinstance(weights, cls):
            return weights or cls()
        unknown = sorted(set(weights) - set(asdict(cls())))
        if unknown:
            raise ValueError(f"unknown loss terms {unknown}: use {sorted(asdict(cls()))}")
        return cls(**{k: float(v) for k, v in weights.items()})


@dataclass
class LossWeights(TermWeights):
    """Weights of the DLIR loss terms; 0 switches a term off.

    The defaults come from ``benchmarks/ablation_dlir.py`` on simulated sequences: with Dice at 1
    (the label terms outweighing local NCC, whose range between no and perfect alignment is about
    0.1) the myocardial ES error grew by 0.2-0.3 mm; at 0.2 / 0.1 the label terms cost nothing
    and multi-scale training with all terms matched the best error.

    Attributes:
        similarity: image similarity (local NCC, or mutual information).
        bending: bending energy of the field (1/mm^2).
        dice: soft Dice of the warped one-hot labels (LV, myocardium, left atrium).
        shape: squared distance of VAE latent means of warped and fixed masks.
        texture: adversarial term (least squares) of the conditional PatchGAN.
        motion: mean end-point error (mm) against the true field, for pairs of simulated
            sequences, heart pixels weighted :data:`HEART_WEIGHT` times (0: unsupervised, the
            paper's setting).
    """

    similarity: float = 1.0
    bending: float = 1.0
    dice: float = 0.2
    shape: float = 0.1
    texture: float = 0.01
    motion: float = 0.0



def lncc_window(pixel_mm: float, window_mm: float) -> int:
    """Odd LNCC window in pixels (at least 3) closest to ``window_mm`` on a grid of ``pixel_mm``."""
    return max(3, 2 * round((window_mm / pixel_mm - 1) / 2) + 1)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scalar mean of (B,) ``values`` with (B,) non-negative ``weights``; 0 when they sum to 0."""
    return (values * weights).sum() / weights.sum().clamp(min=1)


class ShapePrior(nn.Module):
    """Frozen VAE encoders, one per structure: the anatomical shape constraint.

    For each structure, the latent means of the warped soft mask (one-hot labels warped bilinearly,
    never thresholded) and of the fixed mask are compared by their mean squared difference. The
    VAEs' parameters are frozen (``requires_grad`` False, eval mode) but the graph through them is
    kept: the gradient reaches the registration network through the warped masks.
    """

    def __init__(self, vaes: list[MaskVAE]):
        super().__init__()
        if not vaes:
            raise ValueError("a shape prior needs at least one VAE")
        self.vaes = nn.ModuleList(vaes)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ShapePrior":
        """Always in eval mode: the encoders' means are deterministic."""
        return super().train(False)

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Scalar loss for (B, L, h, w) soft one-hot ``warped`` and ``fixed`` label maps and (B,)
        item weights (1 for labelled pairs)."""
        terms = []
        for vae in self.vaes:
            k = vae.label
            latent_warped, _ = vae.encode(warped[:, k:k + 1])
            latent_fixed, _ = vae.encode(fixed[:, k:k + 1])
            terms.append(weighted_mean((latent_warped - latent_fixed).pow(2).mean(1), weights))
        return torch.stack(terms).mean()


def motion_error(field: torch.Tensor, truth: torch.Tensor, fixed_labels: torch.Tensor | None = None,
                 labelled: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) mean end-point error (mm) of (B, 2, h, w) fields against the truth; pixels of the heart
    (not background in the (B, L, h, w) soft ``fixed_labels`` of ``labelled`` items) weigh
    :data:`HEART_WEIGHT` times more."""
    errors = (field - truth).norm(dim=1)
    weights = torch.ones_like(errors)
    if fixed_labels is not None and labelled is not None:
        heart = (1 - fixed_labels[:, 0]) * labelled[:, None, None]
        weights = weights + (HEART_WEIGHT - 1) * heart
    return (errors * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)


def generator_texture_loss(discriminator: PatchDiscriminator, fixed: torch.Tensor,
                           warped: torch.Tensor) -> torch.Tensor:
    """Least-squares adversarial loss of the registration network: its (fixed, warped) pairs
    should score 1 (real)."""
    return (discriminator(fixed, warped) - 1).pow(2).mean()


def discriminator_loss(discriminator: nn.Module, fixed: torch.Tensor, real: torch.Tensor,
                       fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: (fixed, real) pairs to ``REAL_TARGET``, (fixed, fake)
    pairs to 0. One forward pass over both halves (what DistributedDataParallel needs)."""
    fixed = fixed.expand_as(real)
    scores = discriminator(torch.cat((fixed, fixed)), torch.cat((real, fake.detach())))
    real_scores, fake_scores = scores.chunk(2)
    return 0.5 * ((real_scores - REAL_TARGET).pow(2).mean() + fake_scores.pow(2).mean())


class DLIRObjective:
    """The registration network's loss for a batch of pairs on the working grid.

    Args:
        weights: :class:`LossWeights`.
        similarity: "lncc" (local NCC over ``window_mm``) or "mi" (Parzen mutual information).
        window_mm: LNCC window side in mm (odd pixel count, at least 3, at each stage's spacing).
        shape_prior: the frozen VAEs; None switches the shape term off.
        discriminator: the conditional PatchGAN (not wrapped in DistributedDataParallel); None
            switches the texture term off.
    """

    def __init__(self, weights: LossWeights | None = None, similarity: str = "lncc",
                 window_mm: float = 10.0, shape_prior: ShapePrior | None = None,
                 discriminator: PatchDiscriminator | None = None):
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.weights = weights or LossWeights()
        self.similarity = similarity
        self.window_mm = float(window_mm)
        self.shape_prior = shape_prior if self.weights.shape > 0 else None
        self.discriminator = discriminator if self.weights.texture > 0 else None

    def __call__(self, field: torch.Tensor, fixed: torch.Tensor, moving: torch.Tensor,
                 spacing: torch.Tensor, fixed_labels: torch.Tensor | None = None,
                 moving_labels: torch.Tensor | None = None,
                 labelled: torch.Tensor | None = None, motion: torch.Tensor | None = None,
                 supervised: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(weighted total, {term: unweighted value, detached}, warped moving images).

        Args:
            field: (B, 2, h, w) mm, float32.
            fixed, moving: (B, 1, h, w) in [0, 1].
            spacing: (B, 2) mm.
            fixed_labels, moving_labels: (B, L, h, w) soft one-hot label maps, or None.
            labelled: (B,) 1 for the pairs whose labels are real annotations.
            motion: (B, 2, h, w) mm true fields, or None.
            supervised: (B,) 1 for the pairs whose ``motion`` is the truth.
        """
        terms: dict[str, torch.Tensor] = {}
        warped = warp(moving, field, spacing)
        valid = in_view_mask(field.detach(), spacing)
        if self.similarity == "lncc":
            window = lncc_window(float(spacing[:, 1].min()), self.window_mm)
            terms["similarity"] = local_ncc_loss(fixed, warped, window=window, mask=valid)
        else:
            terms["similarity"] = mutual_information_loss(fixed, warped, mask=valid)
        terms["bending"] = bending_energy(field, spacing)
        if fixed_labels is not None and labelled is not None and bool(labelled.any()):
            warped_labels = warp(moving_labels, field, spacing)
            scores = dice_scores(warped_labels[:, 1:], fixed_labels[:, 1:]).mean(1)
            terms["dice"] = weighted_mean(1 - scores, labelled)
            if self.shape_prior is not None:
                terms["shape"] = self.shape_prior(warped_labels, fixed_labels, labelled)
        if self.weights.motion > 0 and motion is not None and supervised is not None \
                and bool(supervised.any()):
            terms["motion"] = weighted_mean(motion_error(field, motion, fixed_labels, labelled), supervised)
        if self.discriminator is not None:
            terms["texture"] = generator_texture_loss(self.discriminator, fixed, warped)
        weights = asdict(self.weights)
        total = sum((weights[name] * value for name, value in terms.items() if weights[name] > 0),
                    field.new_zeros(()))
        return total, {k: v.detach() for k, v in terms.items()}, warped

    def settings(self) -> dict[str, Any]:
        """JSON-ready description (for checkpoints)."""
        return {"weights": asdict(self.weights), "similarity": self.similarity,
                "lncc_window_mm": self.window_mm, "shape": self.shape_prior is not None,
                "texture": self.discriminator is not None}
