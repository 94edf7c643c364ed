"""Optimisation-based registration against analytic answers: rigid / affine recovery, a known smooth
deformation, sequence tracking (to the reference and sequential), cancellation, and the exports."""

import dataclasses
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.io.seqnrrd import read_seq_nrrd
from EchoRegistrationLib.registration import (RegistrationCancelled, register_pair, register_sequence,
                                              save_registration)
from EchoRegistrationLib.spatial.pairs import tracked_frames
from EchoRegistrationLib.spatial import (affine_matrix, affine_to_displacement, rigid_matrix,
                                         rigid_parameters, warp)

SPACING = (0.4, 0.3)


def blob_phantom(h=96, w=88, seed=0):
    """(1, 1, H, W) float64 smooth texture of random Gaussian blobs."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    image = torch.zeros(h, w, dtype=torch.float64)
    for _ in range(40):
        cx, cy = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([w, h])
        s = 2.5 + 5 * torch.rand(1, generator=g, dtype=torch.float64)
        image += torch.rand(1, generator=g, dtype=torch.float64) * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2)
                                                                             / (2 * s ** 2))
    return image[None, None]


def moving_for(fixed, matrix):
    """The moving image whose warp by the field of ``matrix`` is ``fixed`` (inverse map applied)."""
    return warp(fixed, affine_to_displacement(torch.linalg.inv(matrix), fixed.shape[-2:], SPACING), SPACING)


def pixel_error(u, u_true, margin=8):
    err = (u.double() - u_true) / torch.tensor(SPACING, dtype=torch.float64).view(1, 2, 1, 1)
    return err[..., margin:-margin, margin:-margin].norm(dim=1)


@pytest.mark.parametrize("loss", ["mse", "ncc", "mi"])
@pytest.mark.parametrize("kind", ["rigid", "affine"])
def test_rigid_and_affine_recovery_within_a_tenth_of_a_pixel(kind, loss):
    fixed = blob_phantom()
    if kind == "rigid":
        matrix = rigid_matrix(torch.tensor([math.radians(4.0)], dtype=torch.float64),
                              torch.tensor([[1.3, -0.9]], dtype=torch.float64))
    else:
        matrix = affine_matrix(torch.tensor([1.04, 0.03, -0.02, 0.97, 1.1, 0.7], dtype=torch.float64))
    result = register_pair(fixed.float(), moving_for(fixed, matrix).float(), kind, spacing=SPACING, loss=loss)
    u_true = affine_to_displacement(matrix, fixed.shape[-2:], SPACING)
    error = pixel_error(result.displacement, u_true)
    angle_error = math.degrees(float(rigid_parameters(result.matrix.double())[0] - rigid_parameters(matrix)[0]))
    assert error.mean() < 0.1 and error.max() < 0.2, f"{kind}/{loss}: {error.mean():.3f} px"
    assert abs(angle_error) < 0.5


def test_batched_pairs_are_independent():
    fixed = blob_phantom()
    shifts = torch.tensor([[1.0, 0.0], [0.0, -1.5], [0.6, 0.6]], dtype=torch.float64)
    matrices = rigid_matrix(torch.zeros(3, dtype=torch.float64), shifts)
    moving = torch.cat([moving_for(fixed, m[None]) for m in matrices])
    result = register_pair(fixed.float(), moving.float(), "rigid", spacing=SPACING, loss="ncc")
    assert rigid_parameters(result.matrix)[1].numpy() == pytest.approx(shifts.numpy(), abs=0.03)



@pytest.mark.parametrize("kind, optimizer", [("deformable", None), ("rigid", None), ("rigid", "adam"),
                                             ("affine", "adam")])
def test_a_pair_registers_the_same_whatever_its_batch(kind, optimizer):
    """A pair's field does not depend on the pairs that share its batch: each pair has its own loss
    (and gradient), intensity normalisation, step halvings and stop, a stopped pair frozen exactly
    (Adam: deformable, and rigid / affine as sequences use them); L-BFGS runs the pairs one by one
    (rigid's default). The pairs differ in motion and in
    the fixed image's intensity range, and stop at different steps."""
    fixed = speckle_phantom(64, 56, seed=1).float()
    pairs = []
    for k, amplitude in enumerate((0.3, 1.0, 1.6, 0.0)):
        shifted = warp(fixed.double(), smooth_field((64, 56), amplitude) + 0.4 * k, SPACING).float()
        pairs.append((fixed * (1 + k), shifted * (1 + k) + 0.5 * k))  # each pair its own intensities
    fixed_batch = torch.cat([f for f, _ in pairs])
    moving_batch = torch.cat([m for _, m in pairs])
    options = {"spacing": SPACING, "loss": "mse", "iterations": (30, 30, 30) if kind == "deformable" else 6,
               "patience": 4, "tolerance": 1e-4, "folding_weight": 10.0 if kind == "deformable" else 0.0,
               "optimizer": optimizer}
    batch = register_pair(fixed_batch, moving_batch, kind, **options)
    alone = [register_pair(f, m, kind, **options) for f, m in pairs]
    if kind == "deformable":  # some pairs stop early, and not all at once: the freezing is exercised
        assert len({tuple(r.iterations) for r in alone}) > 1
    for k, result in enumerate(alone):
        difference = (batch.displacement[k] - result.displacement[0]).norm(dim=0)
        assert float(difference.max()) < 1e-3, f"pair {k}: {float(difference.max()):.2g} mm"
    assert batch.iterations == [max(r.iterations[level] for r in alone) for level in range(3)]


def speckle_phantom(h=96, w=88, seed=0, sigma_px=1.2):
    """(1, 1, H, W) float64 speckle-like texture: |Gaussian-smoothed white noise|."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, h + 12, w + 12, generator=g, dtype=torch.float64)
    k = torch.arange(-6, 7, dtype=torch.float64)
    k = torch.exp(-k ** 2 / (2 * sigma_px ** 2))
    k = k / k.sum()
    smooth = torch.nn.functional.conv2d(torch.nn.functional.conv2d(noise, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return smooth.abs()


def smooth_field(shape, amplitude_mm=1.2):
    """(1, 2, H, W) smooth analytic displacement in mm."""
    h, w = shape
    y, x = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64),
                          indexing="ij")
    ux = amplitude_mm * torch.sin(math.pi * x) * torch.sin(math.pi * y)
    uy = -0.8 * amplitude_mm * torch.sin(math.pi * x) * torch.cos(0.5 * math.pi * y)
    return torch.stack((ux, uy))[None]


@pytest.mark.parametrize("loss", ["lncc", "mse"])
def test_deformable_recovers_a_known_smooth_warp(loss):
    fixed = speckle_phantom(seed=1)
    u_true = smooth_field(fixed.shape[-2:])
    # moving(p + u(p)) = fixed(p): sample fixed at the inverse map, by fixed-point iteration
    inverse = -u_true
    for _ in range(20):
        inverse = -warp(u_true, inverse, SPACING)
    moving = warp(fixed, inverse, SPACING)
    identity_error = pixel_error(torch.zeros_like(u_true), u_true).mean()
    result = register_pair(fixed.float(), moving.float(), "deformable", spacing=SPACING, loss=loss,
                           control_spacing=5.0)
    error = pixel_error(result.displacement, u_true).mean()
    assert identity_error > 2.0
    assert error < 0.15, f"{error:.3f} px vs identity {identity_error:.3f}"


def test_a_row_cap_compares_coarser_images_and_the_field_stays_full_size(monkeypatch):
    """``max_rows``: every level's images are compared on at most that many rows (the DLIR
    refinement's cost cap), the field comes back on the full grid and still follows the warp."""
    from EchoRegistrationLib.registration import pairwise

    fixed = speckle_phantom(seed=1)  # 96 x 88
    u_true = smooth_field(fixed.shape[-2:])
    inverse = -u_true
    for _ in range(20):
        inverse = -warp(u_true, inverse, SPACING)
    moving = warp(fixed, inverse, SPACING)
    compared = []
    real_warp = pairwise.warp

    def recording(image, *args, **kwargs):
        compared.append(tuple(image.shape[-2:]))
        return real_warp(image, *args, **kwargs)

    monkeypatch.setattr(pairwise, "warp", recording)
    result = register_pair(fixed.float(), moving.float(), "deformable", spacing=SPACING, loss="mse",
                           control_spacing=5.0, max_rows=49)
    assert max(rows for rows, _ in compared) == 49 and result.displacement.shape[-2:] == fixed.shape[-2:]
    assert pixel_error(result.displacement, u_true).mean() < 0.3  # identity: above 2 px
    with pytest.raises(ValueError, match="max_rows"):
        register_pair(fixed.float(), moving.float(), "deformable", spacing=SPACING, max_rows=1)


def test_the_penalties_can_be_evaluated_on_a_coarser_grid_than_the_images(monkeypatch):
    """``penalty_rows``: the regulariser and the folding penalty see the field on at most that many
    rows, the similarity the full images; the fold-free refinement of the compressed ramp still holds."""
    from EchoRegistrationLib.registration import pairwise
    from EchoRegistrationLib.spatial import folding_fraction

    fixed, moving, initial = compressed_ramp_pair()  # 64 x 64, 1 mm pixels
    penalised, compared = [], []
    real_penalty, real_warp = pairwise.folding_penalty, pairwise.warp

    def recording_penalty(field, *args, **kwargs):
        penalised.append(tuple(field.shape[-2:]))
        return real_penalty(field, *args, **kwargs)

    def recording_warp(image, *args, **kwargs):
        compared.append(tuple(image.shape[-2:]))
        return real_warp(image, *args, **kwargs)

    monkeypatch.setattr(pairwise, "folding_penalty", recording_penalty)
    monkeypatch.setattr(pairwise, "warp", recording_warp)
    result = register_pair(fixed, moving, "deformable", spacing=(1.0, 1.0), loss="mse", initial=initial,
                           levels=1, iterations=40, regularisation_weight=0.1, regularise="residual",
                           folding_weight=100.0, penalty_rows=33)
    assert set(penalised) == {(33, 33)} and set(compared) == {(64, 64)}
    assert folding_fraction(result.displacement, (1.0, 1.0)).item() <= 0.0005
    with pytest.raises(ValueError, match="penalty_rows"):
        register_pair(fixed, moving, "deformable", spacing=(1.0, 1.0), penalty_rows=0)


def test_the_control_grid_field_is_bicubic_interpolation_of_its_control_points():
    """Written as two matrix products, the field equals ``F.interpolate(bicubic, align_corners)``,
    values and gradients, to float rounding."""
    from EchoRegistrationLib.registration.transforms import ControlGridModel, bicubic_matrix

    torch.manual_seed(0)
    model = ControlGridModel(2, (9, 7), unit=0.3)
    with torch.no_grad():
        model.control.normal_()
    weights = torch.randn(2, 2, 61, 47)
    field = model.field((61, 47), SPACING)
    expected = torch.nn.functional.interpolate(model.control * 0.3, size=(61, 47), mode="bicubic",
                                               align_corners=True)
    torch.testing.assert_close(field, expected, atol=1e-6, rtol=1e-5)
    gradient, = torch.autograd.grad((field * weights).sum(), model.control)
    expected_gradient, = torch.autograd.grad((expected * weights).sum(), model.control)
    torch.testing.assert_close(gradient, expected_gradient, atol=1e-5, rtol=1e-5)
    # small and shrinking grids, float64, and a matrix first made under inference mode still serving
    # an optimisation (it is cached)
    bicubic_matrix.cache_clear()
    for grid, shape in (((2, 3), (5, 2)), ((9, 7), (4, 3))):
        small = ControlGridModel(1, grid, unit=1.0).double()
        with torch.no_grad():
            small.control.normal_()
        with torch.inference_mode():
            small.field(shape, SPACING)
        field = small.field(shape, SPACING)
        field.sum().backward()  # no "inference tensors cannot be saved for backward"
        torch.testing.assert_close(field, torch.nn.functional.interpolate(
            small.control, size=shape, mode="bicubic", align_corners=True), atol=1e-12, rtol=1e-12)


def translated_sequence(n=5, shift_mm=(0.8, 0.6)):
    """Frames of a blob texture translated by t * shift_mm: frame t = fixed moved, known fields."""
    fixed = blob_phantom(64, 60, seed=2)
    frames, fields = [], []
    for t in range(n):
        shift = torch.tensor([[shift_mm[0] * t, shift_mm[1] * t]], dtype=torch.float64)
        matrix = rigid_matrix(torch.zeros(1, dtype=torch.float64), shift)
        frames.append(moving_for(fixed, matrix)[0, 0].numpy())
        fields.append(affine_to_displacement(matrix, fixed.shape[-2:], SPACING)[0].permute(1, 2, 0).numpy())
    seq = EchoSequence(frames=np.stack(frames) * 200, spacing=SPACING, frame_times=np.arange(n) / 50,
                       metadata={"source": "translated"})
    return seq, np.stack(fields)


def test_exports_mark_a_placeholder_spacing_and_unknown_times(tmp_path):
    """An input without pixel size and frame times (a DICOM without regions or timing): report.json called
    the placeholder spacing mm ("spacing_mm": [1.0, 1.0], convention "in mm") and displacement.npz gave
    the frame indices as frame_times, which read as seconds. Neither is written as measured now, and the
    folder is still read back for the same input."""
    from EchoRegistrationLib.registration.export import CONVENTION, CONVENTION_NO_SPACING
    from EchoRegistrationLib.strain import result_from_displacement
    from EchoRegistrationLib.workflow import load_registration

    seq, fields = translated_sequence(3)
    bare = dataclasses.replace(seq, spacing=(1.0, 1.0), frame_times=None,
                               metadata={"source": "bare.dcm", "spacing_known": False})
    save_registration(result_from_displacement(bare, fields, 0), bare, tmp_path / "bare")
    report = json.loads((tmp_path / "bare" / "report.json").read_text())
    assert (report["spacing_known"], report["spacing_mm"], report["placeholder_spacing"]) == (False, None, [1.0, 1.0])
    assert report["convention"] == CONVENTION_NO_SPACING and "in mm" not in report["convention"]
    assert (report["frame_times_known"], report["frame_times_s"]) == (False, None)
    with np.load(tmp_path / "bare" / "displacement.npz") as npz:
        assert np.isnan(npz["frame_times"]).all() and not npz["frame_times_known"]
        assert str(npz["convention"]) == report["convention"] and not npz["spacing_known"]
    assert np.array_equal(load_registration(tmp_path / "bare", bare).displacement, fields.astype(np.float32))
    save_registration(result_from_displacement(seq, fields, 0), seq, tmp_path / "known")
    known = json.loads((tmp_path / "known" / "report.json").read_text())
    assert (known["spacing_mm"], known["placeholder_spacing"], known["convention"]) == (list(SPACING), None, CONVENTION)
    assert known["frame_times_s"] == pytest.approx([0.0, 0.02, 0.04])
    with np.load(tmp_path / "known" / "displacement.npz") as npz:
        np.testing.assert_array_equal(npz["frame_times"], seq.frame_times)


@pytest.mark.parametrize("mode", ["to_reference", "sequential"])
def test_sequence_tracking_recovers_known_motion(mode):
    seq, true_fields = translated_sequence()
    progress = []
    result = register_sequence(seq, "rigid", reference=2, mode=mode, loss="ncc", chunk_size=2,
                               progress=lambda done, total: progress.append((done, total)))
    true_to_ref = true_fields - true_fields[2]  # translations: the field from frame 2 to frame t
    inner = (slice(None), slice(6, -6), slice(6, -6))
    error_px = np.linalg.norm((result.displacement - true_to_ref)[inner] / SPACING, axis=-1)
    assert error_px.mean() < 0.1
    assert np.abs(result.displacement[2]).max() == 0
    assert result.displacement.shape == (5, 64, 60, 2) and result.warped.shape == (5, 64, 60)
    assert (result.similarity_after[[0, 1, 3, 4]] > result.similarity_before[[0, 1, 3, 4]]).all()
    assert result.similarity_after.min() > 0.99 and result.folding_fraction.max() == 0
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]  # within each chunk of 2, pair by pair


def test_tracked_frames_are_the_pair_or_every_frame_between():
    assert tracked_frames(5, 2, "to_reference") == [2, 5]
    assert tracked_frames(1, 4, "sequential") == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="mode must be one of"):
        tracked_frames(1, 4, "backwards")


def test_cancel_stops_the_work():
    seq, _ = translated_sequence(3)
    with pytest.raises(RegistrationCancelled):
        register_sequence(seq, "deformable", cancel=lambda: True)


def test_reference_defaults_to_ed_and_bad_reference_is_an_error():
    seq, _ = translated_sequence(3)
    with pytest.raises(ValueError, match="reference frame 7"):
        register_sequence(seq, "rigid", reference=7)
    single = EchoSequence(frames=seq.frames[:1], spacing=SPACING, frame_times=[0.0], metadata={"source": "one.nii"})
    with pytest.raises(ValueError, match="one.nii: need at least 2 frames"):
        register_sequence(single, "rigid")


def test_exports_are_read_back_by_numpy_itk_and_our_reader(tmp_path):
    seq, _ = translated_sequence(3)
    result = register_sequence(seq, "rigid", loss="ncc", iterations=5)
    files = save_registration(result, seq, tmp_path / "out", itk_fields=True)
    assert {f.name for f in files} >= {"warped.seq.nrrd", "displacement.npz", "report.json"}
    npz = np.load(tmp_path / "out" / "displacement.npz")
    assert np.array_equal(npz["displacement"], result.displacement)
    assert npz["spacing"].tolist() == list(SPACING) and int(npz["reference"]) == 0
    warped = read_seq_nrrd(tmp_path / "out" / "warped.seq.nrrd")
    assert np.allclose(warped.frames, result.warped) and np.allclose(warped.frame_times, seq.frame_times)
    # ITK moves a reference point where the displacement says
    t, row, col = 2, 30, 25
    transform = sitk.DisplacementFieldTransform(sitk.ReadImage(
        str(tmp_path / "out" / "fields" / "displacement_t002.mha")))
    point = (col * SPACING[0], row * SPACING[1], 0.0)
    moved = transform.TransformPoint(point)
    assert moved[0] - point[0] == pytest.approx(result.displacement[t, row, col, 0], abs=1e-5)
    assert moved[1] - point[1] == pytest.approx(result.displacement[t, row, col, 1], abs=1e-5)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["method"] == "rigid" and len(report["frames"]) == 3
    with pytest.raises(FileExistsError):
        save_registration(result, seq, tmp_path / "out")
    # the header says the unit: mm, or the placeholder's where the input records no pixel size
    assert sitk.ReadImage(str(tmp_path / "out" / "fields" / "displacement_t002.mha")).GetMetaData(
        "EchoRegistrationUnits") == "mm"
    unknown = dataclasses.replace(seq, metadata={**seq.metadata, "spacing_known": False})
    save_registration(result, unknown, tmp_path / "placeholder", itk_fields=True)
    assert sitk.ReadImage(str(tmp_path / "placeholder" / "fields" / "displacement_t002.mha")).GetMetaData(
        "EchoRegistrationUnits") == "units of the placeholder pixel size 0.4 x 0.3, not mm: the input records no " \
                                    "pixel size"


def compressed_ramp_pair(size=64, amplitude=5.3, half_width=12.0, overshoot=1.6):
    """(fixed, moving, initial) of a refinement that folds unless stopped: ``moving`` (1, 1, N, N) is
    a ramp along x, so MSE pins the field pointwise; ``initial`` (1, 2, N, N) mm (1 mm pixels) is a
    fold-free compression u_x = -a sin(pi (x - c) / 2w) over |x - c| < 2w (det J >= 0.31), and
    ``fixed`` is ``moving`` warped by ``overshoot`` times it, a field that folds (det J -0.11)."""
    _, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    centre = size / 2
    ux = -amplitude * torch.sin(math.pi * (x - centre) / (2 * half_width)) * ((x - centre).abs() < 2 * half_width)
    initial = torch.stack((ux, torch.zeros_like(ux)))[None]
    moving = (x / (size - 1))[None, None]
    return warp(moving, overshoot * initial, (1.0, 1.0)), moving, initial


def test_folding_penalty_keeps_a_refinement_from_folding_and_it_still_aligns():
    from EchoRegistrationLib.losses import mse_loss
    from EchoRegistrationLib.registration import tracking
    from EchoRegistrationLib.spatial import folding_fraction

    spacing = (1.0, 1.0)
    fixed, moving, initial = compressed_ramp_pair()
    assert folding_fraction(initial, spacing).item() == 0

    def refined(**folding) -> torch.Tensor:  # a long refinement, a lighter regulariser: it folds unpenalised
        return register_pair(fixed, moving, "deformable", spacing=spacing, loss="mse", initial=initial,
                             levels=3, iterations=(40, 20, 5),
                             patience=tracking.REFINE_PATIENCE, regularisation_weight=0.1,
                             **folding).displacement

    def misfit(u: torch.Tensor) -> float:  # MSE 8 pixels in from the edges
        return mse_loss(fixed[..., 8:-8, 8:-8], warp(moving, u, spacing)[..., 8:-8, 8:-8]).item()

    unpenalised, penalised = refined(), refined(**tracking.REFINE_FOLDING)
    assert folding_fraction(unpenalised, spacing).item() > 0.05  # 7 % of the pixels fold
    assert folding_fraction(penalised, spacing).item() <= 0.0005
    assert misfit(penalised) < 0.5 * misfit(initial)  # 0.00051 against 0.00127


def test_regularising_the_residual_keeps_an_initial_field_the_images_agree_with():
    """``initial`` is a rough (bending energy 0.012) fold-free field that aligns the pair exactly:
    regularising the whole field (the former refinement) smooths it away from the images' answer
    (1.5 mm on average); regularising only the residual keeps it (0.3 mm, Adam's steps)."""
    from EchoRegistrationLib.losses import bending_energy
    from EchoRegistrationLib.registration import tracking
    from EchoRegistrationLib.spatial import folding_fraction

    spacing = (1.0, 1.0)
    moving = blob_phantom(64, 64).float()
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    initial = torch.stack((2.0 * torch.sin(2 * math.pi * y / 24), 1.6 * torch.sin(2 * math.pi * x / 28)))[None]
    fixed = warp(moving, initial, spacing)

    def refined(regularise: str) -> torch.Tensor:  # the DLIR refinement's schedule
        return register_pair(fixed, moving, "deformable", spacing=spacing, loss="mse", initial=initial,
                             levels=2, iterations=tracking.refine_schedule(40, 64, 32),
                             patience=tracking.REFINE_PATIENCE, regularisation_weight=1.0,
                             regularise=regularise, **tracking.REFINE_FOLDING).displacement

    def drift(u: torch.Tensor) -> float:  # mean mm from the initial field, 8 pixels in from the edges
        return (u - initial)[..., 8:-8, 8:-8].norm(dim=1).mean().item()

    total, residual = refined("total"), refined("residual")
    assert drift(residual) < 0.5 and drift(total) > 1.0  # 0.31 against 1.54 mm
    assert bending_energy(total, spacing) < 0.5 * bending_energy(residual, spacing)  # 0.003 against 0.016
    assert folding_fraction(total, spacing).item() == folding_fraction(residual, spacing).item() == 0
    with pytest.raises(ValueError, match=r"regularise must be one of \('total', 'residual'\), got 'network'"):
        register_pair(fixed, moving, spacing=spacing, initial=initial, regularise="network")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_initial_field_that_is_not_finite_is_an_error_not_a_crash(bad):
    image = blob_phantom(16, 16)
    initial = torch.zeros(1, 2, 16, 16)
    initial[0, 1, 5, 7] = bad  # one value: CPU grid sampling of such a field can end the process
    with pytest.raises(ValueError, match="the initial field holds values that are not finite"):
        register_pair(image, image, spacing=SPACING, initial=initial, iterations=2)


def test_an_option_register_pair_does_not_take_is_refused_before_any_work():
    """register_sequence passes its options to register_pair: a misspelt or foreign one (``float32``, the
    workflow's name for ``amp=False``) or one it sets itself (``mask`` is its own argument, ``initial`` is not
    an option) failed only at the first pair, after the network's work. Now it is named at once."""
    seq = EchoSequence(np.stack([blob_phantom(16, 16).numpy()[0, 0]] * 3), SPACING)
    for option in ("float32", "initial", "spacing"):
        with pytest.raises(ValueError, match=f"register_sequence does not take {option}: its options are"):
            register_sequence(seq, "deformable", **{option: 1})
    assert register_sequence(seq, "deformable", iterations=(1, 1, 1)).displacement.shape == (3, 16, 16, 2)


def test_an_initial_field_may_be_numpy_in_the_numpy_layout_and_other_layouts_are_named_errors():
    """A NumPy (H, W, 2) or (1, H, W, 2) start (the layout of ``register_sequence``'s fields) refines
    to the same field as its (1, 2, H, W) tensor, to the bit; a tensor without its two channels first,
    a NumPy field with three components and a start for another number of pairs are refused by name."""
    fixed, moving, initial = compressed_ramp_pair(size=32)
    options = {"spacing": (1.0, 1.0), "loss": "mse", "levels": 1, "iterations": 5}
    expected = register_pair(fixed, moving, initial=initial, **options).displacement
    as_numpy = initial.permute(0, 2, 3, 1).numpy()
    assert float(expected.abs().max()) > 1.0  # the start is kept: not a zero field compared with itself
    for start in (as_numpy, as_numpy[0]):
        assert torch.equal(register_pair(fixed, moving, initial=start, **options).displacement, expected)
    for bad, layout in ((initial[0], r"\(2, 32, 32\)"), (np.zeros((32, 32, 3)), r"\(H, W, 2\)"),
                        (initial.expand(3, -1, -1, -1), r"\(3, 2, 32, 32\)"), ([0.0, 1.0], "list")):
        with pytest.raises(ValueError, match=layout):
            register_pair(fixed, moving, initial=bad, **options)


def test_negative_folding_weight_is_an_error():
    image = blob_phantom(16, 16)
    with pytest.raises(ValueError, match=r"folding_weight must be >= 0, got -1.0"):
        register_pair(image, image, spacing=SPACING, folding_weight=-1.0)
    with pytest.raises(ValueError, match=r"folding_margin must be > 0, got 0.0"):
        register_pair(image, image, spacing=SPACING, folding_margin=0.0)


def test_feature_maps_guide_a_registration_where_the_images_carry_no_motion():
    """Flat images hold no motion; a Gaussian blob (sd 6 px) in the feature maps, 3 px further right
    in the moving frame, does: the field inside the blob is then 3 mm to the right (project
    convention: fixed point p is at p + u(p) in the moving frame), and nothing without the maps."""
    spacing = (1.0, 1.0)
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")

    def blob(cx: float) -> torch.Tensor:
        return torch.exp(-((x - cx) ** 2 + (y - 32) ** 2) / (2 * 6.0 ** 2))[None, None]

    flat = torch.zeros(1, 1, 64, 64)
    inside = blob(32.0)[0, 0] > 0.5

    def field(weight: float, rows: int | None = None) -> torch.Tensor:
        return register_pair(flat, flat, "deformable", spacing=spacing, loss="mse", levels=2, iterations=150,
                             control_spacing=8.0, regularisation_weight=0.01, features=(blob(32.0), blob(35.0)),
                             feature_weight=weight, feature_rows=rows).displacement[0]

    for guided in (field(1.0), field(1.0, rows=24)):  # the maps compared at full resolution, or on 24 rows
        assert abs(guided[0][inside].mean().item() - 3.0) < 0.3 and guided[1][inside].abs().mean().item() < 0.3
    assert field(0.0).abs().max().item() < 1e-6
    with pytest.raises(ValueError, match=r"feature_weight must be >= 0, got -1"):
        register_pair(flat, flat, spacing=spacing, features=(blob(32.0), blob(35.0)), feature_weight=-1)
    with pytest.raises(ValueError, match=r"feature maps \(1, 1, 64, 64\) and \(1, 2, 64, 64\) do not pair up"):
        register_pair(flat, flat, spacing=spacing, features=(blob(32.0), blob(35.0).repeat(1, 2, 1, 1)))
