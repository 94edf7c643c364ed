"""Tracking through frames without signal, warnings when registration lowers the similarity, and
progress that advances within a batch of pairs (issue 13, items 5 and 8)."""

import numpy as np
import pytest

from input_files import moving_texture

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.registration.tracking import interpolate_in_time
from EchoRegistrationLib.sequence import no_signal_frames
from EchoRegistrationLib.sequence import EchoDataError

TEXTURE_COLUMNS = np.r_[4:22, 42:60]  # texture away from the black band and the wrapped border


def texture_mean_ux(result):
    return result.displacement[:, 4:-4, TEXTURE_COLUMNS, 0].mean(axis=(1, 2))


def test_blank_frame_is_bridged_and_named():
    """The issue's example: frame 2 entirely 0 gave u_x [0, -0.49, -0.49, -14.03, -14.02] mm."""
    frames = moving_texture()
    frames[2] = 0
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(5) / 50,
                       metadata={"source": "gap.nii"})
    result = register_sequence(seq, "deformable", device="cpu")
    np.testing.assert_allclose(texture_mean_ux(result), [0, -0.5, -1.0, -1.5, -2.0], atol=0.05)
    assert result.no_signal.tolist() == [False, False, True, False, False]
    assert result.folding_fraction.max() == 0
    measured = [1, 3, 4]  # (the reference: 1 before and after, up to rounding)
    assert (result.similarity_after[measured] > result.similarity_before[measured] + 0.3).all()
    assert len(result.warnings) == 1 and result.warnings[0].startswith("frame 2: no signal")
    assert "interpolated in time from frame(s) 1 and 3" in result.warnings[0]
    frame_report = result.report()["frames"][2]
    assert frame_report["no_signal"] is True


def test_constant_frames_at_the_ends_and_before_the_reference():
    """Own input: reference 3 of 6; frame 1 a constant grey (interpolated between 0 and 2) and the
    last frame constant (held from frame 4), tracked to the reference and sequentially."""
    frames = moving_texture(6)
    frames[1], frames[5] = 80.0, 120.0
    times = np.array([0.0, 0.02, 0.03, 0.04, 0.06, 0.08])  # uneven: interpolation is in time
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=times, metadata={"source": "grey"})
    for mode in ("sequential", "to_reference"):
        result = register_sequence(seq, "deformable", reference=3, mode=mode, device="cpu")
        ux = texture_mean_ux(result)
        np.testing.assert_allclose(ux[[0, 2, 3, 4]], [1.5, 0.5, 0, -0.5], atol=0.06)
        assert ux[1] == pytest.approx(ux[0] + (ux[2] - ux[0]) * 2 / 3, abs=1e-5)
        np.testing.assert_array_equal(result.displacement[5], result.displacement[4])
        assert [w.split(":")[0] for w in result.warnings] == ["frame 1", "frame 5"]


def test_no_signal_detection_and_interpolation_helpers():
    frames = np.random.default_rng(1).uniform(0, 1, (4, 8, 8)).astype(np.float32)
    frames[1], frames[3] = 0, 7.5
    frames[2, :4] = 3.0  # half constant: still information
    assert no_signal_frames(frames).tolist() == [False, True, False, True]
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    assert no_signal_frames(frames, mask).tolist() == [False, True, True, True]
    import torch
    fields = torch.arange(4.0)[:, None, None, None].expand(4, 2, 3, 3).clone()
    filled = interpolate_in_time(fields, np.array([False, True, False, True]), np.array([0, 1, 4, 5.0]))
    assert filled[:, 0, 0, 0].tolist() == [0.0, 0.5, 2.0, 2.0]


def test_blank_reference_is_a_clear_error():
    frames = moving_texture(3)
    frames[0] = 0
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(3) / 50,
                       metadata={"source": "blank_ref.nii"})
    with pytest.raises(EchoDataError, match="blank_ref.nii: reference frame 0 has no signal"):
        register_sequence(seq, "rigid", device="cpu")


def test_lowered_similarity_is_named():
    """A network that always predicts a shift (tiny DLIR model, constant output) on a sequence of
    identical frames: NCC 1.000 before, lower after, so every moved frame is named."""
    from test_dlir import constant_output, tiny_model

    frames = np.repeat(moving_texture(1), 3, axis=0)
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(3) / 50)
    result = register_sequence(seq, "dlir", model=constant_output(tiny_model(), 2.0, 1.0), device="cpu")
    assert result.similarity_before[1:].tolist() == pytest.approx([1.0, 1.0])
    assert (result.similarity_after[1:] < 0.9).all()
    assert [w.split(":")[0] for w in result.warnings] == ["frame 1", "frame 2"]
    assert "lowered the similarity to the reference (NCC 1.000 -> " in result.warnings[0]
    assert result.report()["warnings"] == result.warnings


def test_frames_unlike_the_reference_are_named_together():
    """Independent noise frames: no registration makes them resemble the reference (NCC about 0)."""
    frames = np.random.default_rng(1).uniform(0, 255, (4, 40, 36)).astype(np.float32)
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(4) / 50)
    result = register_sequence(seq, "rigid", device="cpu", mode="to_reference", iterations=(3, 3, 3))
    assert (np.abs(result.similarity_after[1:]) < 0.1).all(), result.warnings
    unlike = [w for w in result.warnings if "hardly resemble" in w]
    assert len(unlike) == 1 and unlike[0].startswith("3 of 3 frames (frames 1, 2, 3) keep an NCC with the "
                                                     "reference under 0.3 after registration (lowest ")
    moving = register_sequence(EchoSequence(frames=moving_texture(3), spacing=(0.5, 0.5),
                                            frame_times=np.arange(3) / 50), "rigid", device="cpu")
    assert not any("hardly resemble" in w for w in moving.warnings)  # a real (if small) motion: none


def test_a_noise_frame_the_optimiser_fits_is_still_not_a_measurement():
    """A simulated cine with frame 3 replaced by noise: the deformable optimiser fits the noise up to NCC 0.49 with the
    reference (from -0.006), over the 0.3 after registration that flagged frames alone, and the frame counted as a
    measurement of motion. Uncorrelated before registration (under 0.1) and resembling it only weakly after (under
    0.6), it is flagged; the echo frames (NCC 0.76-0.90 before, 0.94-0.96 after) are not, nor a texture that moved
    (uncorrelated with itself before, matching again after)."""
    import dataclasses

    from EchoRegistrationLib.simulation import simulate_sequence

    sim = simulate_sequence(view="A4C", cycle="half", n_frames=6, image_size=(96, 96), seed=3).sequence
    frames = sim.frames.copy()
    frames[3] = np.random.default_rng(99).uniform(frames.min(), frames.max(), frames[3].shape)
    result = register_sequence(dataclasses.replace(sim, frames=frames), "deformable", device="cpu",
                               mode="to_reference")
    assert abs(result.similarity_before[3]) < 0.02 and 0.4 < result.similarity_after[3] < 0.6
    assert (result.similarity_before[[1, 2, 4, 5]] > 0.7).all() and (result.similarity_after[[1, 2, 4, 5]] > 0.9).all()
    assert result.unmeasured.tolist() == [False, False, False, True, False, False]
    (fitted,) = [w for w in result.warnings if "fitted to noise" in w]
    assert fitted.startswith("1 of 5 frames (frame 3) were uncorrelated with the reference before registration (NCC "
                             "under 0.1) and resemble it only weakly after (under 0.6; highest 0.")
    speckle = np.random.default_rng(5).uniform(0, 255, (64, 64)).astype(np.float32)
    texture = register_sequence(EchoSequence(frames=np.stack([np.roll(speckle, -2 * t, axis=1) for t in range(3)]),
                                             spacing=(0.5, 0.5), frame_times=np.arange(3) / 50), "rigid", device="cpu")
    assert (np.abs(texture.similarity_before[1:]) < 0.1).all() and (texture.similarity_after[1:] > 0.9).all()
    assert not texture.unmeasured.any()


def test_progress_rises_pair_by_pair_within_one_batch():
    """The bar sat at 0/19 then jumped to 100 % (one update per 32-pair batch): now one batch of
    4 pairs reports 1, 2, 3, 4 as its optimiser steps advance."""
    frames = moving_texture(5)
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(5) / 50)
    calls = []
    register_sequence(seq, "deformable", device="cpu", iterations=(8, 8, 8),
                      progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_placeholder_pixel_size_and_coloured_pixels_are_named_in_the_warnings():
    """``register`` was quiet about a placeholder pixel size and a colour Doppler clip, though its mm
    and its similarity depend on them (found by a new user's trial)."""
    from test_dlir import constant_output, tiny_model

    frames = np.repeat(moving_texture(1), 2, axis=0)
    model = constant_output(tiny_model(), 0.0, 0.0)  # the identity map: no frame-quality warning
    plain = EchoSequence(frames=frames, spacing=(0.5, 0.5), metadata={"source": "plain.mha"})
    assert register_sequence(plain, "dlir", model=model, device="cpu").warnings == []
    doubtful = EchoSequence(frames=frames, spacing=(1.0, 1.0),
                            metadata={"source": "clip.dcm", "spacing_known": False, "colour_pixel_fraction": 0.123})
    warnings = register_sequence(doubtful, "dlir", model=model, device="cpu").warnings
    assert warnings == ["pixel size unknown in clip.dcm: displacements are pixels times the placeholder "
                        "spacing 1 x 1, not measured mm",
                        "12.3 % of the pixels of clip.dcm are coloured (Doppler or annotations): their "
                        "luma is not an echo intensity, and the registration matches it"]


def test_frame_quality_in_chunks_keeps_each_frame_with_its_own_numbers():
    # Frame t is (-1)^t (t + 1) x the reference + t: NCC +-1 by construction; its field mirrors x in
    # columns 0..t (u_x = -j mm per column j < t + 2 at 0.5 mm pixels: det J = -1 there), so t + 1
    # of the 20 columns fold, and of the 10 columns the mask keeps.
    import torch

    from EchoRegistrationLib.registration.tracking import QUALITY_CHUNK, frame_quality

    n, height, width = 2 * QUALITY_CHUNK + 1, 6, 20
    reference = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    signs = torch.tensor([(-1.0) ** t for t in range(n)], dtype=torch.float64)
    frames = (signs * torch.arange(1.0, n + 1, dtype=torch.float64))[:, None, None, None] * reference \
        + torch.arange(float(n), dtype=torch.float64)[:, None, None, None]
    field = torch.zeros(n, 2, height, width, dtype=torch.float64)
    mask = torch.zeros(1, 1, height, width, dtype=torch.bool)
    mask[..., :10] = True
    for t in range(n):
        field[t, 0, :, :t + 2] = -torch.arange(t + 2, dtype=torch.float64)
    before, after, folding = frame_quality(reference, frames, frames.flip(0), field, (0.5, 0.5))
    np.testing.assert_allclose(before, signs.numpy(), atol=1e-5)  # ncc's eps
    np.testing.assert_allclose(after, signs.flip(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(folding, [(t + 1) / width for t in range(n)])
    _, _, within = frame_quality(reference, frames, frames, field, (0.5, 0.5), mask)
    np.testing.assert_allclose(within, [(t + 1) / 10 for t in range(n)])


def test_the_mean_similarity_leaves_out_the_reference_and_frames_without_signal():
    from EchoRegistrationLib.registration.tracking import RegistrationResult

    before, after = np.array([0.5, 0.7, 1.0, 0.1, 0.6]), np.array([0.8, 0.9, 1.0, 0.2, 0.9])
    result = RegistrationResult(displacement=np.zeros((5, 4, 4, 2)), warped=np.zeros((5, 4, 4)), reference=2,
                                method="deformable", mode="sequential", similarity_before=before,
                                similarity_after=after, folding_fraction=np.zeros(5), seconds=1.0, device="cpu",
                                no_signal=np.array([False, False, False, True, False]))
    assert result.mean_similarity() == pytest.approx((0.6, 0.8666667))  # frames 0, 1 and 4
    alone = RegistrationResult(displacement=np.zeros((1, 4, 4, 2)), warped=np.zeros((1, 4, 4)), reference=0,
                               method="deformable", mode="sequential", similarity_before=np.ones(1),
                               similarity_after=np.ones(1), folding_fraction=np.zeros(1), seconds=0.0, device="cpu")
    assert all(np.isnan(alone.mean_similarity()))
