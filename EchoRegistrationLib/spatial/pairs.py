"""Which frame pairs a sequence registration registers, and how their fields chain back to the
reference frame (the tracking modes of :func:`EchoRegistrationLib.registration.register_sequence`,
shared with the DLIR inference, which predicts the same pairs)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .warping import compose

MODES = ("to_reference", "sequential")
# The anchor of systole_anchors as a fraction of reference -> ES, chosen on validation data only over 0.5
# (docs/generalisation.md, "One anchor in systole is the lead":
# benchmarks/validate_tracking_modes.py --rows systole-anchor ...).
SYSTOLE_ANCHOR = 0.6


def frame_pairs(n_frames: int, reference: int, mode: str,
                skip: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(fixed, moving) frame pairs to register, one per frame other than the reference, in frame
    order: every frame against the reference ("to_reference"), or each frame against its neighbour
    on the way to the reference ("sequential"). Frames where the (T,) bool ``skip`` is True (no
    signal) get no pair and are stepped over: a frame's neighbour is then the next frame towards
    the reference that is not skipped."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    skip = np.zeros(n_frames, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    others = [t for t in range(n_frames) if t != reference and not skip[t]]
    if mode == "to_reference":
        return [(reference, t) for t in others]
    return [(_towards(t, reference, skip), t) for t in others]


def _towards(frame: int, reference: int, skip: np.ndarray) -> int:
    """The nearest frame from ``frame`` towards ``reference`` that is not skipped (at worst the
    reference)."""
    step = 1 if frame < reference else -1
    t = frame + step
    while t != reference and skip[t]:
        t += step
    return t


def tracked_frames(frame: int, reference: int, mode: str) -> list[int]:
    """The frames, in order, that registering ``frame`` to ``reference`` in ``mode`` goes through:
    the two alone ("to_reference"), or every frame between them ("sequential"). A subsequence of
    these gives that frame's field as the whole sequence would (up to intensity normalisation)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    first, last = sorted((frame, reference))
    return [first, last] if mode == "to_reference" else list(range(first, last + 1))


def systole_anchors(n_frames: int, reference: int, es: int, fraction: float) -> dict[int, int]:
    """For tracking to the reference through one anchor frame in systole: frame -> the fixed frame it is
    registered to (the reference, or the anchor A = reference + round(``fraction`` x (ES - reference)),
    Python's rounding: halves to even), for every frame but the reference.

    Frames up to A are registered to the reference directly; frames after A through A (their field
    composed with A's), so that no single registration spans much more than half of the systolic motion;
    after ES, frames whose share of the way back to ED (taken as the last frame) leaves them at most
    ``fraction`` of the ES motion are direct again. Frames before the reference, and every frame when
    ``es`` is not after the reference, are direct. Chosen on validation data
    (docs/generalisation.md, "One anchor in systole is the lead": ``benchmarks/validate_tracking_modes.py``,
    fraction 0.6 over 0.5).

    Raises:
        ValueError: ``fraction`` outside (0, 1), or frames outside the sequence."""
    if not 0 < fraction < 1:
        raise ValueError(f"the anchor fraction must lie in (0, 1), got {fraction}")
    if not (0 <= reference < n_frames and 0 <= es < n_frames):
        raise ValueError(f"reference {reference} and ES {es} must be frames of 0..{n_frames - 1}")
    last = n_frames - 1
    anchor = reference + round(fraction * (es - reference))

    def direct(t: int) -> bool:
        return (t < reference or es <= reference or t <= anchor
                or (t > es and (last - t) / (last - es) <= fraction))

    return {t: reference if direct(t) else anchor for t in range(n_frames) if t != reference}


def anchor_frames(anchors: Mapping[int, int]) -> dict[int, int]:
    """``anchors`` (frame -> the frame it is registered to) as Python ints.

    Raises:
        ValueError: a key or value that is not a whole number."""
    if any(int(f) != f for f in (*anchors, *anchors.values())):
        raise ValueError(f"anchors map frame numbers to frame numbers, got {dict(anchors)}")
    return {int(t): int(a) for t, a in anchors.items()}


def check_anchors(anchors: Mapping[int, int], n_frames: int, reference: int) -> dict[int, int]:
    """``anchors`` (frame -> the frame it is registered to, as :func:`systole_anchors` gives) as ints,
    checked: frames of the sequence, at most one anchor frame, itself registered to the reference, and
    nearer the reference than every frame registered through it, on the same side (so that its field is
    known when theirs is composed, :func:`chain_to_reference`).

    Raises:
        ValueError: naming the first problem (:func:`anchor_frames` too)."""
    plan = anchor_frames(anchors)
    outside = sorted(f for f in {*plan, *plan.values()} if not 0 <= f < n_frames)
    if outside:
        raise ValueError(f"anchors name frames outside 0..{n_frames - 1}: {outside}")
    used = set(plan.values()) - {reference}
    if len(used) > 1 or any(plan.get(a, reference) != reference for a in used):
        raise ValueError(f"the anchors must name one anchor frame registered to the reference {reference}, got {plan}")
    for t, a in plan.items():
        if a != reference and not (abs(a - reference) < abs(t - reference) and (a - reference) * (t - reference) > 0):
            raise ValueError(f"frame {t} cannot go through anchor frame {a}: an anchor lies between the reference "
                             f"{reference} and the frames registered through it")
    return plan


def fixed_indices(pairs: list[tuple[int, int]]) -> list[int]:
    """The fixed frame of each (fixed, moving) pair, or just the one fixed frame when all pairs
    share it (its image then goes in once and broadcasts over the batch)."""
    fixed = [f for f, _ in pairs]
    return fixed[:1] if len(set(fixed)) == 1 else fixed


def chain_to_reference(pair_fields: torch.Tensor, pairs: list[tuple[int, int]], n_frames: int,
                       reference: int, mode: str, spacing: tuple[float, float]) -> torch.Tensor:
    """(T, 2, H, W) fields from the reference to every frame, from the (P, 2, H, W) fields of the
    :func:`frame_pairs` ``pairs``: placed as they are ("to_reference"), or composed outwards from
    the reference ("sequential": u_{ref->t} = u_{ref->f} then u_{f->t} for the pair (f, t), f a
    frame nearer the reference: its neighbour, or an anchor frame as in :func:`systole_anchors`; a
    pair whose f is the reference is placed as it is). Zero at the reference and at frames without a
    pair (fill those with :func:`interpolate_in_time`)."""
    shape = (1, 2, *pair_fields.shape[-2:])
    by_moving = {m: (f, pair_fields[k:k + 1]) for k, (f, m) in enumerate(pairs)}
    chained = {t: torch.zeros(shape, dtype=pair_fields.dtype, device=pair_fields.device)
               for t in range(n_frames)}
    for t in sorted(by_moving, key=lambda t: abs(t - reference)):  # outwards: f is done before t
        fixed, pair_field = by_moving[t]
        direct = mode == "to_reference" or fixed == reference
        chained[t] = pair_field if direct else compose(chained[fixed], pair_field, spacing)
    return torch.cat([chained[t] for t in range(n_frames)])
