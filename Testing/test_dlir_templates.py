"""Warped templates: real frames moved by known random motion, the truth in the project convention."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir.data import (PairSampler, data_licence, describe_source, load_item, open_source,
                                         save_item)
from EchoRegistrationLib.dlir.items import SequenceItem
from EchoRegistrationLib.dlir.templates import WarpedTemplates, warped_template
from EchoRegistrationLib.sequence import EchoSequence
from EchoRegistrationLib.spatial import field_to_torch, warp

SPACING = (0.5, 0.5)


def ring_template(shape=(160, 140)) -> tuple[np.ndarray, np.ndarray]:
    """A textured (H, W) frame (0..255, a black border as outside a sector) and its labels: a
    cavity (1) inside a wall (2)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:shape[0], :shape[1]]
    r = np.hypot((x - shape[1] / 2) * SPACING[0], (y - shape[0] / 2) * SPACING[1])
    labels = np.where(r < 15, 1, np.where(r < 22, 2, 0)).astype(np.uint8)
    frame = 40 + 60 * rng.random(shape) + 120 * (labels == 2)
    frame[:4], frame[:, :4] = 0, 0
    return frame.astype(np.float32), labels


def test_the_true_field_carries_the_template_onto_the_moved_frame():
    frame, labels = ring_template()
    item = warped_template(frame, labels, SPACING, seed=7)
    seq, u = item.sequence, item.displacement
    assert seq.frames.shape == (2, *frame.shape) and u.shape == (2, *frame.shape, 2)
    assert np.all(u[0] == 0)
    wall = labels == 2
    moved_by = np.linalg.norm(u[1][wall], axis=-1).mean()
    assert 0.5 < moved_by < 15  # mm: a real motion, of a cardiac size
    # the moved frame's labels, pulled back by u (moved(p + u(p)) = template(p)), are the template's
    back = warp(torch.from_numpy(seq.labels[1].astype(np.int64))[None, None], field_to_torch(u[1]), SPACING,
                mode="nearest", padding="zeros")[0, 0].numpy()
    for label in (1, 2):
        a, b, before = labels == label, back == label, seq.labels[1] == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97
        assert 2 * (a & before).sum() / (a.sum() + before.sum()) < 0.97  # it did move
    # so do the intensities, up to the speckle decorrelation and noise
    image = warp(torch.from_numpy(seq.frames[1])[None, None], field_to_torch(u[1]), SPACING)[0, 0].numpy()
    inside = frame > 0
    corr = lambda a, b: np.corrcoef(a[inside], b[inside])[0, 1]  # noqa: E731
    assert corr(seq.frames[0], image) > corr(seq.frames[0], seq.frames[1]) + 0.1


def test_items_are_reproducible_and_differ_between_seeds():
    frame, labels = ring_template()
    source = WarpedTemplates([SequenceItem(EchoSequence(frame[None], SPACING, labels=labels[None]))], copies=3)
    assert len(source) == 3
    np.testing.assert_array_equal(source[1].displacement, source[1].displacement)
    assert not np.allclose(source[0].displacement, source[1].displacement)
    with pytest.raises(IndexError):
        source[3]


def test_templates_train_with_their_truth_and_keep_the_data_terms(tmp_path):
    frame, labels = ring_template()
    seq = EchoSequence(np.stack([frame, frame]), SPACING, labels=np.stack([labels, labels]))
    described = WarpedTemplates([SequenceItem(seq)], description={"source": "camus", "root": "x"})
    assert len(described) == 2  # both annotated frames are templates
    assert data_licence(describe_source(described)) == "CC BY-NC-SA 4.0"  # CAMUS templates keep CAMUS's terms
    batch = PairSampler(described, storage_size=64).sample(2, 32, np.random.default_rng(0))
    assert batch.supervised.tolist() == [1.0, 1.0] and batch.labelled.tolist() == [1.0, 1.0]
    assert batch.motion.abs().amax() > 0.5  # mm


def test_the_warped_spec_opens_a_folder_of_templates(tmp_path):
    frame, labels = ring_template()

    save_item(SequenceItem(EchoSequence(frame[None], SPACING, labels=labels[None])), tmp_path / "a.npz")
    source = open_source(f"warped:{tmp_path}:2")
    assert isinstance(source, WarpedTemplates) and len(source) == 2
    assert source[0].sequence.frames.shape == (2, *frame.shape)


def test_large_templates_are_resampled_with_their_extent_and_labels_in_register():
    frame, labels = ring_template(shape=(400, 330))
    seq = EchoSequence(frame[None], SPACING, labels=labels[None])
    item = WarpedTemplates([SequenceItem(seq)])[0]
    small = item.sequence
    assert small.frames.shape[1] == 256
    for axis, (n, m) in enumerate(zip(frame.shape[::-1], small.frames.shape[:0:-1])):
        assert small.spacing[axis] * (m - 1) == pytest.approx(SPACING[axis] * (n - 1))  # same extent
    # the wall (label 2) sits on the bright ring of the template frame, at the new size too
    wall, cavity = small.labels[0] == 2, small.labels[0] == 1
    assert small.frames[0][wall].mean() > small.frames[0][cavity].mean() + 60
    centre = np.argwhere(cavity).mean(axis=0) * np.array(small.spacing[::-1])
    assert centre == pytest.approx(np.array([399, 329]) / 2 * np.array(SPACING[::-1]), abs=0.3)  # mm


def test_resuming_ignores_the_inference_settings_of_an_architecture():
    from EchoRegistrationLib.dlir.training import _fixed_part

    saved = {"unet": {"stem": 4}, "working_size": 64, "mode": "to_reference"}  # before passes existed
    assert _fixed_part({**saved, "working_size": 128, "passes": 2}) == _fixed_part(saved)
    assert _fixed_part({**saved, "unet": {"stem": 8}}) != _fixed_part(saved)


def test_a_narrower_template_keeps_its_edge_motion_on_the_padded_canvas():
    narrow, wide = ring_template(shape=(160, 100)), ring_template(shape=(160, 140))
    items = [warped_template(narrow[0], narrow[1], SPACING, seed=1), warped_template(wide[0], wide[1], SPACING, seed=2)]
    sampler = PairSampler(items, storage_size=64)
    motion = sampler.sequences[0].motion[1].float()  # (2, S, Wc): frame 0 -> 1 of the narrow one
    width = sampler.sequences[0].frames.shape[-1]
    inside = round(100 * 64 / 160)  # its own columns on the 64-row storage grid
    assert width > inside + 5
    torch.testing.assert_close(motion[..., -1], motion[..., inside - 1], atol=0.02, rtol=0)  # replicated
    assert motion[..., -1].abs().amax() > 0.1  # mm: not zero


def test_the_template_motion_and_its_inverse_undo_each_other_at_the_largest_amplitude(monkeypatch):
    """Motions of 15-20 mm (the mitral annulus's ED -> ES excursion) stay invertible: inverse after
    motion is the identity within interpolation error over the image interior."""
    import EchoRegistrationLib.dlir.templates as templates
    from EchoRegistrationLib.spatial import compose

    monkeypatch.setattr(templates, "SMOOTH_AMPLITUDE_MM", (6.0, 6.0))
    spacing, largest = (0.55, 0.55), []
    for seed in range(6):
        motion, inverse = templates.random_motion((256, 220), spacing, np.random.default_rng(seed),
                                                  torch.Generator().manual_seed(seed))
        largest.append(float(motion.norm(dim=1).max()))
        residual = compose(inverse, motion, spacing)[..., 20:-20, 20:-20].norm(dim=1)
        assert residual.median() < 0.05 and residual.mean() < 0.1, (seed, residual.median(), residual.mean())
    assert max(largest) > 12.0  # the draws do reach the annulus's range


def test_reversed_template_pairs_take_the_exact_inverse_as_their_truth(tmp_path):
    """A pair drawn moved -> template gets the template's exact inverse motion (not a fixed-point
    inversion), and the item keeps it through save and load."""
    frame, labels = ring_template()
    item = warped_template(frame, labels, SPACING, seed=7)
    assert item.inverse.shape == item.displacement.shape and np.all(item.inverse[0] == 0)
    loaded = load_item(save_item(item, tmp_path / "t.npz"))
    np.testing.assert_allclose(loaded.inverse, item.inverse, atol=0.02)  # float16 storage
    sampler = PairSampler([item], storage_size=64, ed_es_fraction=0.0, augment=False)
    stored = sampler.sequences[0]
    batch = sampler.sample(16, 64, np.random.default_rng(1))
    reversed_pairs = [k for k, (_, fixed, _) in enumerate(batch.pairs) if fixed == 1]
    forward_pairs = [k for k, (_, fixed, _) in enumerate(batch.pairs) if fixed == 0]
    assert reversed_pairs and forward_pairs
    for k in reversed_pairs:
        torch.testing.assert_close(batch.motion[k], stored.inverse[1].float(), atol=1e-3, rtol=0)
    for k in forward_pairs:
        torch.testing.assert_close(batch.motion[k], stored.motion[1].float(), atol=1e-3, rtol=0)
    assert stored.inverse[1].float().abs().amax() > 0.5  # mm: a real motion
