"""DLIR models, working grid, objective, data and checkpoints: shapes, units, gradients, round trips."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.dlir import (AffineNet, CostVolumeNet, DLIRModel, DLIRObjective, LossWeights, MaskVAE,
                                      PairSampler, PatchDiscriminator, RegistrationUNet, SequenceFolder,
                                      SequenceItem, ShapePrior, SimulatedSequences, load_model,
                                      open_source, predict_sequence_fields, read_config, save_model,
                                      write_simulated_cache)
from EchoRegistrationLib.dlir.augment import random_affine
from EchoRegistrationLib.dlir.data import NUM_LABELS, load_item, save_item
from EchoRegistrationLib.dlir.evaluation import evaluate, score_ed_es
from EchoRegistrationLib.dlir.model import upsample_field
from EchoRegistrationLib.dlir.networks import correlation, registration_network, upsample_concat_conv, upsample_flow
from EchoRegistrationLib.dlir.grid import (MAX_PERCENTILE_SAMPLES, intensity_window, normalise_intensities,
                                          to_input_grid, to_working_grid, working_shape)
from EchoRegistrationLib.dlir.objectives import (HEART_WEIGHT, discriminator_loss, generator_texture_loss,
                                                 lncc_window)
from EchoRegistrationLib.losses import one_hot
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.spatial.pyramid import resample_field
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.spatial import affine_to_displacement, field_to_torch, warp

TINY_UNET = {"stem": 4, "encoder": [8, 8, 8], "decoder": [8, 8, 4]}


def tiny_model(output_stride: int = 1, **kwargs) -> DLIRModel:
    torch.manual_seed(0)
    unet = TINY_UNET if output_stride == 1 else {**TINY_UNET, "decoder": TINY_UNET["decoder"][:-1]}
    return DLIRModel(RegistrationUNet(**unet, output_stride=output_stride),
                     **{"working_size": 32, **kwargs})


def constant_output(model: DLIRModel, x_percent: float, y_percent: float) -> DLIRModel:
    """Make the U-Net output exactly (x_percent, y_percent) everywhere."""
    with torch.no_grad():
        model.net.head.weight.zero_()
        model.net.head.bias.copy_(torch.tensor([x_percent, y_percent]))
    return model


def blob_sequence(n_frames=4, shape=(60, 47), spacing=(0.5, 0.4), labels=True, seed=0) -> EchoSequence:
    """Frames of smooth random texture drifting 1 px per frame, with a disc label (code 1) and a
    ring (code 2)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    texture = sum(rng.random() * np.exp(-((x - rng.random() * w) ** 2 + (y - rng.random() * h) ** 2) / 30.0)
                  for _ in range(40))
    frames = np.stack([np.roll(texture, t, axis=1) * 200 for t in range(n_frames)]).astype(np.float32)
    lab = None
    if labels:
        r = np.hypot(x - w / 2, y - h / 2)
        lab = np.where(r < 8, 1, np.where(r < 12, 2, 0)).astype(np.uint8)
        lab = np.stack([np.roll(lab, t, axis=1) for t in range(n_frames)])
    return EchoSequence(frames, spacing, labels=lab, ed_index=0, es_index=n_frames - 1)


# ---------------------------------------------------------------------------- networks and grid
@pytest.mark.parametrize("shape", [(37, 51), (32, 32), (9, 70)])
def test_unet_takes_any_size_and_starts_near_identity(shape):
    net = RegistrationUNet(**TINY_UNET)
    out = net(torch.rand(2, 2, *shape))
    assert out.shape == (2, 2, *shape)
    assert out.abs().max() < 1e-3
    # the fields leave in the standard layout although the convolutions run channels-last: resampling a
    # channels-last (B, 2, H, W) field to full resolution took 3x as long on the CPU
    assert out.is_contiguous()
    coarse = RegistrationUNet(**{**TINY_UNET, "decoder": [8, 8]}, output_stride=2)
    assert coarse(torch.rand(2, 2, *shape)).shape == (2, 2, -(-shape[0] // 2), -(-shape[1] // 2))


TINY_COST_VOLUME = {"kind": "cost_volume", "widths": [4, 8, 8, 8], "radii": [2, 2, 1], "estimator": [8, 8]}


def test_correlation_peaks_at_the_displacement_to_the_match():
    """moving(p + d) = fixed(p) for d = (dx, dy) = (2, -1): the cosine is 1 there and lower at every other d."""
    torch.manual_seed(0)
    fixed = torch.randn(1, 8, 12, 14)
    moving = torch.roll(fixed, shifts=(-1, 2), dims=(-2, -1))  # moving[y, x] = fixed[y + 1, x - 2]
    volume = correlation(fixed, moving, radius=3)
    assert volume.shape == (1, 49, 12, 14)
    inner = volume[0, :, 4:-4, 4:-4]  # away from the border and the roll's wrap
    match = (-1 + 3) * 7 + (2 + 3)
    assert torch.all(inner.argmax(0) == match) and torch.allclose(inner[match], torch.ones(()), atol=1e-5)
    assert correlation(3 * fixed, moving, 3).allclose(volume, atol=1e-5)  # cosines: the features' scale is moot


def test_upsampled_flow_reads_pixel_j_at_half_j_and_doubles_the_values():
    """A stride-2 level's pixel i sits on the finer level's pixel 2i: a ramp along x keeps its places and its
    slope in fine pixels, and a translation doubles exactly (the fine grid is 2h x 2w, as in the pyramid)."""
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 2, 3, 4)  # flow = column index, in coarse pixels
    fine = upsample_flow(ramp)
    assert fine.shape == (1, 2, 6, 8)
    assert torch.allclose(fine[0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.0]))  # 2 x (j / 2)
    shift = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1).expand(1, 2, 5, 4)
    assert torch.allclose(upsample_flow(shift), torch.tensor([3.0, -1.0]).view(1, 2, 1, 1))


@pytest.mark.parametrize("shape", [(32, 27), (37, 51), (128, 106)])
@pytest.mark.parametrize("level, pixels", [(0, 8.0), (2, 2.0)])
def test_a_cost_volume_heads_pixel_is_the_same_motion_at_every_size(shape, level, pixels):
    """One pixel of the stride-8 (or stride-2) head is 8 (or 2) input pixels, in mm through the model, whatever
    the frame's size (a first version scaled it by (2h - 1) / (h - 1) per level: 8.5-10.3 px for 8)."""
    net = registration_network(TINY_COST_VOLUME)
    with torch.no_grad():
        for k, head in enumerate(net.heads):
            head.weight.zero_()
            head.bias.fill_(1.0 if k == level else 0.0)
    field = DLIRModel(net, working_size=shape[0])(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape), (0.3, 0.3))
    assert torch.allclose(field, torch.full_like(field, pixels * 0.3), atol=1e-4)


def test_a_velocity_cost_volume_warps_its_features_by_the_map_the_model_applies(monkeypatch):
    """In a velocity model (``diffeomorphic=True``) the coarse flows are velocities: the features are warped by
    their exponential, with the model's squarings at the time of the call (read from the model, not kept in the
    network), not by the velocity read as a displacement."""
    import EchoRegistrationLib.dlir.networks as networks
    from EchoRegistrationLib.spatial import integrate_velocity
    warped_by = []
    monkeypatch.setattr(networks, "_warp_pixels", lambda image, flow: warped_by.append(flow.clone()) or image)
    torch.manual_seed(0)
    net = registration_network(TINY_COST_VOLUME)
    with torch.no_grad():
        net.heads[0].weight.normal_(0.0, 0.5)  # a varying stride-8 flow, so that exp(v) differs from v
    model = DLIRModel(net, working_size=40, diffeomorphic=False, integration_steps=3)
    images = torch.rand(1, 1, 40, 48), torch.rand(1, 1, 40, 48)
    with torch.no_grad():
        model(*images, (0.3, 0.3))
        model.diffeomorphic, model.integration_steps = True, 5  # switched after construction, as
        model(*images, (0.3, 0.3))                              # benchmarks/validate_passes.py does
    displacement_warp, velocity_warp = warped_by[0], warped_by[2]  # the first warp, at stride 4, of each call
    assert displacement_warp.abs().max() > 0.5
    assert torch.allclose(velocity_warp, integrate_velocity(displacement_warp, (1.0, 1.0), 5), atol=1e-5)
    assert not torch.allclose(velocity_warp, displacement_warp, atol=1e-2)


@pytest.mark.parametrize("shape", [(37, 51), (9, 70)])
def test_cost_volume_net_takes_any_size_starts_near_identity_and_rebuilds_from_its_checkpoint(shape, tmp_path):
    net = registration_network(TINY_COST_VOLUME)
    assert isinstance(net, CostVolumeNet) and net.architecture() == TINY_COST_VOLUME
    out = net(torch.rand(2, 2, *shape))
    assert out.shape == (2, 2, *shape) and out.abs().max() < 0.01 and out.is_contiguous()  # % of the depth
    model = DLIRModel(net, working_size=40).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    images = torch.rand(2, 1, *shape)
    loaded = load_model(save_model(model, tmp_path / "cv"))
    assert isinstance(loaded.net, CostVolumeNet)
    assert torch.equal(loaded(images[:1], images, (0.3, 0.3)), model(images[:1], images, (0.3, 0.3)))
    with pytest.raises(ValueError, match="unknown registration network kind 'transformer'"):
        registration_network({"kind": "transformer"})


@pytest.mark.parametrize("size", [(4, 6), (1, 1)])
def test_decoder_step_equals_upsample_concatenate_convolve_with_its_gradient(size):
    torch.manual_seed(0)
    coarse = torch.randn(2, 5, *size, requires_grad=True)
    skip = torch.randn(2, 3, 2 * size[0], 2 * size[1], requires_grad=True)
    conv = torch.nn.Conv2d(8, 4, 3, padding=1)
    upsampled = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="nearest")
    expected = conv(torch.cat((upsampled, skip), dim=1))
    got = upsample_concat_conv(coarse, skip, conv)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)  # borders included
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * weights).sum(), (coarse, skip, conv.weight, conv.bias))
    for a, b in zip(torch.autograd.grad((got * weights).sum(), (coarse, skip, conv.weight, conv.bias)), grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="twice the coarse"):
        upsample_concat_conv(coarse, skip[..., 1:], conv)
    with pytest.raises(ValueError, match="3 x 3 convolution with stride 1, zero padding 1"):
        upsample_concat_conv(coarse, skip, torch.nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect"))


def test_output_stride_needs_matching_decoder_levels_and_upsamples_exactly():
    with pytest.raises(ValueError, match="decoder levels"):
        RegistrationUNet(**TINY_UNET, output_stride=2)
    with pytest.raises(ValueError, match="power of 2"):
        RegistrationUNet(**TINY_UNET, output_stride=3)
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(4.0), indexing="ij")
    coarse = torch.stack((0.3 * cols - 1, 0.2 * rows))[None]  # linear in the coarse pixel index
    fine = upsample_field(coarse, 2, (9, 7))  # coarse pixel i sits on fine pixel 2 i
    rows, cols = torch.meshgrid(torch.arange(9.0), torch.arange(7.0), indexing="ij")
    torch.testing.assert_close(fine, torch.stack((0.15 * cols - 1, 0.1 * rows))[None])


def test_working_grid_has_square_pixels_over_the_same_extent():
    assert working_shape((512, 422), (0.308, 0.308), 128) == (128, 106)
    assert working_shape((256, 256), (0.6, 0.6), 64) == (64, 64)
    assert working_shape((100, 300), (0.2, 0.1), 50) == (50, 297)  # anisotropic input, wide view
    frames = torch.rand(3, 1, 512, 422)
    small, spacing = to_working_grid(frames, (0.308, 0.308), 128)
    assert small.shape == (3, 1, 128, 106)
    assert spacing[1] * 127 == pytest.approx(0.308 * 511)  # same depth
    assert spacing[0] * 105 == pytest.approx(0.308 * 421)  # same width
    field = torch.ones(1, 2, 128, 106) * torch.tensor([1.5, -2.0]).view(1, 2, 1, 1)
    assert torch.allclose(to_input_grid(field, (512, 422)),
                          field.new_tensor([1.5, -2.0]).view(1, 2, 1, 1).expand(1, 2, 512, 422))


@pytest.mark.parametrize("count", [1, 2, 101, 5000, MAX_PERCENTILE_SAMPLES + 7, 3 * MAX_PERCENTILE_SAMPLES])
def test_the_intensity_window_is_torch_quantiles_exactly(count):
    """The CPU's partial sort gives torch.quantile's percentiles bit for bit (the same order statistics,
    the same float32 interpolation), on the subsample of a large input too."""
    generator = torch.Generator().manual_seed(count)
    frames = (torch.rand(count, generator=generator) ** 3 * 255).round().view(1, 1, 1, count)  # ties, as uint8
    values = frames.flatten()
    if count > MAX_PERCENTILE_SAMPLES:
        values = values[::count // MAX_PERCENTILE_SAMPLES + 1]
    expected = torch.quantile(values, torch.tensor([0.01, 0.99]))
    assert torch.equal(intensity_window(frames), expected)
    assert torch.equal(intensity_window(frames / 7 - 3), torch.quantile(values / 7 - 3, torch.tensor([0.01, 0.99])))


def test_normalisation_maps_robust_percentiles_to_unit_range():
    values = torch.linspace(0, 100, 10000).view(1, 1, 100, 100)
    out = normalise_intensities(values * 3 + 7)
    assert float(out.min()) == 0 and float(out.max()) == 1
    assert float((out == 0).float().mean()) == pytest.approx(0.01, abs=1e-3)  # below the 1st percentile
    assert float(out.flatten()[5000]) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("diffeomorphic", [False, True])
@pytest.mark.parametrize("output_stride", [1, 2])
def test_model_output_unit_is_percent_of_the_depth_at_every_size(diffeomorphic, output_stride):
    model = constant_output(tiny_model(output_stride, diffeomorphic=diffeomorphic), 1.0, -2.0)
    for size, spacing in ((32, (0.5, 0.5)), (64, (0.25, 0.25))):  # about the same depth
        images = torch.rand(2, 1, size, size)
        field = model(images[:1], images, spacing)
        depth = (size - 1) * spacing[1]
        expected = torch.tensor([0.01 * depth, -0.02 * depth]).view(1, 2, 1, 1)
        assert field.shape == (2, 2, size, size) and field.dtype == torch.float32
        assert torch.allclose(field, expected.expand_as(field), atol=1e-5)  # constant v: exp(v) = v
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: the head stays float32
            assert torch.allclose(model(images[:1], images, spacing), field, atol=1e-5)


def test_affine_net_starts_at_identity_and_composes_with_the_unet():
    torch.manual_seed(0)
    affine = AffineNet(channels=[4, 8])
    images = torch.rand(3, 1, 24, 30)
    matrix = affine(images, images, (0.5, 0.4))
    assert torch.allclose(matrix, torch.eye(3).expand(3, 3, 3))
    with torch.no_grad():
        affine.head.bias.copy_(torch.tensor([0, 0, 0, 0, 10.0, 0]))  # 10 % of the depth along x
    alone = DLIRModel(None, affine=affine, working_size=24)
    field = alone(images, images, (0.5, 0.4))
    assert torch.allclose(field[:, 0], torch.full((3, 24, 30), 0.1 * 23 * 0.4), atol=1e-5)
    both = constant_output(DLIRModel(RegistrationUNet(**TINY_UNET), affine=affine, working_size=24), 0, 10.0)
    field = both(images, images, (0.5, 0.4))
    assert torch.allclose(field[:, 0], torch.full((3, 24, 30), 0.92), atol=1e-4)
    assert torch.allclose(field[:, 1], torch.full((3, 24, 30), 0.92), atol=1e-4)
    with pytest.raises(ValueError, match="needs a U-Net"):
        DLIRModel(None)


# ---------------------------------------------------------------------------- inference
def test_predict_sequence_fields_any_size_chunked_reference_zero():
    seq = blob_sequence(n_frames=5)
    model = constant_output(tiny_model(), 2.0, 1.0)
    fields = predict_sequence_fields(model, seq, reference=2, device="cpu", chunk_size=2)
    depth = 59 * 0.4
    assert fields.shape == (5, 2, 60, 47)
    assert torch.count_nonzero(fields[2]) == 0
    others = fields[[0, 1, 3, 4]]
    assert torch.allclose(others[:, 0], torch.full_like(others[:, 0], 0.02 * depth), atol=1e-5)
    assert torch.allclose(others[:, 1], torch.full_like(others[:, 1], 0.01 * depth), atol=1e-5)
    model = tiny_model()  # a real (random) network: chunking must not change anything
    a = predict_sequence_fields(model, seq, device="cpu", chunk_size=1)
    b = predict_sequence_fields(model, seq, device="cpu", chunk_size=32)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        predict_sequence_fields(model, seq, reference=5, device="cpu")


def test_sequential_inference_composes_the_neighbour_fields():
    seq = blob_sequence(n_frames=5)
    model = constant_output(tiny_model(), 2.0, 1.0)  # every pair: a constant shift, u
    fields = predict_sequence_fields(model, seq, reference=2, device="cpu", mode="sequential")
    u = torch.tensor([0.02, 0.01]) * 59 * 0.4
    steps = torch.tensor([2.0, 1.0, 0.0, 1.0, 2.0])  # neighbour steps from the reference
    expected = (steps[:, None] * u)[:, :, None, None].expand(5, 2, 60, 47)
    torch.testing.assert_close(fields, expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="mode"):
        predict_sequence_fields(model, seq, device="cpu", mode="backwards")


def test_the_models_mode_is_its_default_tracking_and_survives_checkpoints(tmp_path):
    seq = blob_sequence(n_frames=5)
    model = constant_output(tiny_model(mode="sequential"), 2.0, 1.0)
    composed = predict_sequence_fields(model, seq, reference=2, device="cpu")
    torch.testing.assert_close(composed[0], 2 * composed[1], atol=1e-4, rtol=0)  # two steps away
    assert torch.equal(composed, predict_sequence_fields(model, seq, reference=2, device="cpu",
                                                         mode="sequential"))
    assert register_sequence(seq, "dlir", model=model, device="cpu").mode == "sequential"
    assert register_sequence(seq, "dlir", model=tiny_model(), device="cpu").mode == "to_reference"
    assert register_sequence(seq, "dlir", model=tiny_model(), device="cpu", refine=1).mode == "to_reference"
    assert register_sequence(seq, "dlir", model=model, device="cpu", refine=1).mode == "sequential"
    save_model(model, tmp_path / "model")
    assert load_model(tmp_path / "model").mode == "sequential"
    older = {k: v for k, v in model.architecture().items() if k != "mode"}  # before modes existed
    assert DLIRModel.from_architecture(older).mode == "to_reference"
    with pytest.raises(ValueError, match="mode"):
        tiny_model(mode="backwards")


def test_a_checkpoint_is_read_once_until_its_file_changes(tmp_path):
    from EchoRegistrationLib.dlir.inference import as_model

    path = save_model(constant_output(tiny_model(), 2.0, 1.0), tmp_path / "model")
    first = as_model(tmp_path / "model", torch.device("cpu"))
    assert as_model(path, torch.device("cpu")) is first  # same file, by folder or weights path
    seq = blob_sequence(n_frames=3)
    before = register_sequence(seq, "dlir", model=tmp_path / "model", device="cpu").displacement
    save_model(constant_output(tiny_model(), -1.0, 0.0), tmp_path / "model")  # retrained in place
    again = as_model(tmp_path / "model", torch.device("cpu"))
    assert again is not first
    after = register_sequence(seq, "dlir", model=tmp_path / "model", device="cpu").displacement
    assert np.sign(before[1, ..., 0].mean()) == -np.sign(after[1, ..., 0].mean()) != 0


def test_passes_compose_the_residual_fields_of_a_recurrent_cascade(tmp_path):
    seq = blob_sequence(n_frames=2)
    one = predict_sequence_fields(constant_output(tiny_model(), 2.0, 1.0), seq, reference=0, device="cpu")
    cascade = constant_output(tiny_model(passes=3), 2.0, 1.0)  # every pass adds the same shift
    three = predict_sequence_fields(cascade, seq, reference=0, device="cpu")
    torch.testing.assert_close(three[1], 3 * one[1], atol=1e-4, rtol=1e-4)
    save_model(cascade, tmp_path / "cascade")
    assert load_model(tmp_path / "cascade").passes == 3
    older = {k: v for k, v in cascade.architecture().items() if k != "passes"}  # before passes existed
    assert DLIRModel.from_architecture(older).passes == 1
    with pytest.raises(ValueError, match="passes"):
        tiny_model(passes=0)


def test_a_second_pass_registers_the_warped_moving_image_and_composes_after_it(monkeypatch):
    """The cascade's order, with a field that varies in space and depends on the images."""
    from EchoRegistrationLib.spatial import compose

    def image_field(fixed, moving, spacing):  # mm, the moving image's own smooth pattern
        return torch.cat([3.0 * moving - fixed, -2.0 * moving], dim=1)

    model = tiny_model(passes=2)
    monkeypatch.setattr(model, "single_pass", image_field)
    rng = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 40, 40, generator=rng), 9, 1, 4)
    fixed, moving, spacing = smooth[:1], smooth[1:], (0.5, 0.5)
    first = image_field(fixed, moving, spacing)
    residual = image_field(fixed, warp(moving, first, spacing), spacing)
    expected = compose(residual, first, spacing)
    torch.testing.assert_close(model(fixed, moving, spacing), expected)
    assert (compose(first, residual, spacing) - expected).abs().amax() > 1e-3  # the order matters here


def test_flip_averaging_mirrors_the_field_of_the_mirrored_pair():
    seq = blob_sequence(n_frames=3)
    model = constant_output(tiny_model(), 2.0, 1.0)  # "move right and down" whatever the images
    depth = 59 * 0.4
    averaged = predict_sequence_fields(model, seq, reference=0, device="cpu", flip_average=True)
    # mirrored, "right" is "left": the lateral parts cancel, the depth parts agree
    torch.testing.assert_close(averaged[1:, 0], torch.zeros_like(averaged[1:, 0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(averaged[1:, 1], torch.full_like(averaged[1:, 1], 0.01 * depth),
                               atol=1e-5, rtol=0)
    real = tiny_model()  # a real network: the option reaches register_sequence
    result = register_sequence(seq, "dlir", model=real, device="cpu", flip_average=True)
    expected = predict_sequence_fields(real, seq, device="cpu", flip_average=True)
    np.testing.assert_allclose(result.displacement, expected.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    assert result.parameters["flip_average"] is True


def test_validation_tracks_in_the_models_mode():
    item = SimulatedSequences([3], n_frames=6, image_size=(48, 48))[0]
    seq = item.sequence
    steps = seq.es_index - seq.ed_index
    assert seq.ed_index == 0 and steps >= 2
    myocardium = seq.label_map(0) == 2
    truth = item.displacement[seq.es_index][myocardium]
    for mode, factor in (("to_reference", 1), ("sequential", steps)):
        model = constant_output(tiny_model(mode=mode), 2.0, 1.0)  # the same shift for every pair
        shift = factor * np.array([0.02 * 47 * seq.spacing[1], 0.01 * 47 * seq.spacing[1]])
        expected = np.linalg.norm(truth - shift, axis=-1).mean()
        assert evaluate(model, [item], "cpu")["epe_es"] == pytest.approx(expected, abs=1e-3), mode


@pytest.mark.parametrize("mode", ["to_reference", "sequential"])
def test_refinement_moves_the_network_fields_towards_the_truth(mode):
    seq = blob_sequence(n_frames=4)  # frame t: the texture moved t px (0.5 mm) along x
    truth = torch.tensor([0.5, 0.0])[None, :, None, None] * torch.arange(4.0)[:, None, None, None]
    model = constant_output(tiny_model(), 0.0, 0.0)  # the identity map: 0.5 to 1.5 mm off
    network = register_sequence(seq, "dlir", model=model, reference=0, mode=mode, device="cpu")
    refined = register_sequence(seq, "dlir", model=model, reference=0, mode=mode, device="cpu",
                                refine=40)
    inner = (slice(None), slice(10, -10), slice(10, -10))

    def error(result):
        return (field_to_torch(result.displacement) - truth).norm(dim=1)[inner].mean(dim=(1, 2))

    assert torch.allclose(error(network)[1:], torch.tensor([0.5, 1.0, 1.5]), atol=1e-4)
    assert (error(refined)[1:] < 0.25 * error(network)[1:]).all(), error(refined)
    assert refined.mode == mode and refined.parameters["refine"] == 40
    assert refined.parameters["folding_weight"] == 100.0  # the report says how it was refined
    assert refined.parameters["regularise"] == "residual"
    assert "folding_weight" not in network.parameters


def test_inference_halves_the_chunk_when_memory_runs_out():
    seq = blob_sequence(n_frames=6)
    model = tiny_model()
    batches = []

    def forward(fixed, moving, spacing):
        if len(moving) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        batches.append(len(moving))
        return DLIRModel.forward(model, fixed, moving, spacing)

    model.forward = forward
    fields = predict_sequence_fields(model, seq, device="cpu", chunk_size=8)
    assert batches == [2, 2, 1] and fields.shape == (6, 2, 60, 47)
    assert torch.allclose(fields, predict_sequence_fields(tiny_model(), seq, device="cpu"), atol=1e-6)


def test_score_ed_es_is_exact_for_the_true_field():
    sim = SimulatedSequences([3], n_frames=4, image_size=(48, 48))[0]
    es = sim.sequence.es_index
    truth = field_to_torch(sim.displacement[es])
    scores = score_ed_es(sim, truth)
    assert scores["epe_es"] == pytest.approx(0, abs=1e-6)
    assert scores["dice_es"] > 0.85 and scores["folding"] == 0
    identity = score_ed_es(sim, torch.zeros_like(truth))
    assert identity["epe_es"] > 1 and identity["dice_es"] < scores["dice_es"]


# ---------------------------------------------------------------------------- objective
def labelled_batch(batch=2, size=32):
    seq = blob_sequence(n_frames=2, shape=(size, size), spacing=(1.0, 1.0))
    frames = torch.from_numpy(seq.frames / 255)[:, None]
    labels = one_hot(torch.from_numpy(seq.labels)[:, None], NUM_LABELS)
    fixed, moving = frames[:1].expand(batch, -1, -1, -1), frames[1:].expand(batch, -1, -1, -1)
    return (fixed, moving, torch.ones(batch, 2), labels[:1].expand(batch, -1, -1, -1),
            labels[1:].expand(batch, -1, -1, -1))


def tiny_vaes():
    torch.manual_seed(1)
    return [MaskVAE(label=k, latent_size=4, channels=[4, 8], input_size=16) for k in (1, 2)]


def test_shape_term_gradient_reaches_the_network_through_soft_warped_masks():
    fixed, moving, spacing, fixed_labels, moving_labels = labelled_batch()
    prior = ShapePrior(tiny_vaes())
    model = tiny_model()
    only_shape = LossWeights(similarity=0, bending=0, dice=0, shape=1, texture=0)
    objective = DLIRObjective(only_shape, shape_prior=prior)
    field = model(fixed, moving, spacing)
    total, terms, _ = objective(field, fixed, moving, spacing, fixed_labels, moving_labels, torch.ones(2))
    assert terms["shape"] > 0
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads[:-2]) > 0
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())  # frozen VAEs
    assert not prior.training and not prior.train().training
    # the term is off with weight 0 or without labelled pairs: then nothing reaches the network
    off = DLIRObjective(LossWeights(similarity=0, bending=0, dice=0, shape=0, texture=0), shape_prior=prior)
    total, terms, _ = off(model(fixed, moving, spacing), fixed, moving, spacing, fixed_labels, moving_labels,
                          torch.ones(2))
    assert "shape" not in terms and not total.requires_grad
    total, terms, _ = objective(model(fixed, moving, spacing), fixed, moving, spacing, fixed_labels,
                                moving_labels, torch.zeros(2))
    assert "shape" not in terms and "dice" not in terms and not total.requires_grad


def test_objective_terms_dice_weighting_and_window():
    fixed, moving, spacing, fixed_labels, moving_labels = labelled_batch()
    field = torch.zeros(2, 2, 32, 32, requires_grad=True)
    objective = DLIRObjective(LossWeights(dice=0.5, texture=0))
    total, terms, warped = objective(field, fixed, moving, spacing, fixed_labels, moving_labels,
                                     torch.tensor([1.0, 0.0]))
    assert set(terms) == {"similarity", "bending", "dice"}
    assert set(objective(field, fixed, moving, spacing)[1]) == {"similarity", "bending"}  # no labels
    assert torch.allclose(warped, moving)
    expected = terms["similarity"] + terms["bending"] + 0.5 * terms["dice"]
    assert float(total.detach()) == pytest.approx(float(expected))
    # the Dice of identical label maps is 1 (term 0), moved labels score worse
    _, same, _ = objective(field, fixed, fixed, spacing, fixed_labels, fixed_labels, torch.ones(2))
    assert float(same["dice"]) == pytest.approx(0, abs=1e-5) and float(terms["dice"]) > 0.05
    mi = DLIRObjective(LossWeights(texture=0), similarity="mi")
    assert float(mi(field, fixed, moving, spacing)[1]["similarity"]) < 0
    assert lncc_window(1.2, 10.0) == 9 and lncc_window(4.8, 10.0) == 3 and lncc_window(0.6, 10.0) == 17
    with pytest.raises(ValueError, match="unknown loss terms"):
        LossWeights.of({"smoothness": 1})


def test_motion_term_is_the_heart_weighted_end_point_error_of_supervised_pairs():
    fixed, moving, spacing, fixed_labels, moving_labels = labelled_batch()
    truth = torch.zeros(2, 2, 32, 32)
    truth[:, 0] = 1.5  # 1.5 mm lateral everywhere
    objective = DLIRObjective(LossWeights(texture=0, motion=2.0))
    field = torch.zeros(2, 2, 32, 32, requires_grad=True)
    supervised = torch.tensor([1.0, 0.0])
    total, terms, _ = objective(field, fixed, moving, spacing, fixed_labels, moving_labels,
                                torch.ones(2), truth, supervised)
    assert float(terms["motion"]) == pytest.approx(1.5)
    only_motion = DLIRObjective(LossWeights(similarity=0, bending=0, dice=0, shape=0, texture=0, motion=2))
    only_motion(field, fixed, moving, spacing, motion=truth, supervised=supervised)[0].backward()
    assert float(field.grad[0].abs().sum()) > 0 and float(field.grad[1].abs().sum()) == 0
    # only the heart is wrong: the error is the heart's share of the weights times 1.5 mm
    heart = 1 - fixed_labels[0, 0]
    partial = truth * heart
    _, terms, _ = objective(torch.zeros(2, 2, 32, 32), fixed, moving, spacing, fixed_labels,
                            moving_labels, torch.ones(2), partial, supervised)
    share = HEART_WEIGHT * heart.sum() / (heart.numel() + (HEART_WEIGHT - 1) * heart.sum())
    assert float(terms["motion"]) == pytest.approx(1.5 * float(share), rel=1e-5)
    _, exact, _ = objective(truth, fixed, moving, spacing, motion=truth, supervised=supervised)
    assert float(exact["motion"]) == pytest.approx(0, abs=1e-6)
    unsupervised = objective(field, fixed, moving, spacing, motion=truth, supervised=torch.zeros(2))[1]
    assert "motion" not in unsupervised and "motion" not in DLIRObjective(LossWeights(texture=0))(
        field, fixed, moving, spacing, motion=truth, supervised=supervised)[1]


def test_texture_terms_train_the_discriminator_and_the_network_separately():
    fixed, moving, spacing, _, _ = labelled_batch()
    torch.manual_seed(0)
    disc = PatchDiscriminator(channels=[4, 8, 8])
    scores = disc(fixed, moving)
    assert scores.shape == (2, 1, 4, 4)
    loss = discriminator_loss(disc, fixed, fixed, moving.requires_grad_())
    loss.backward()
    assert all(p.grad is not None for p in disc.parameters()) and moving.grad is None  # fake detached
    disc.zero_grad()
    disc.requires_grad_(False)
    warped = moving.detach().clone().requires_grad_()
    generator_texture_loss(disc, fixed, warped).backward()
    assert warped.grad is not None and float(warped.grad.abs().sum()) > 0
    assert all(p.grad is None for p in disc.parameters())


# ---------------------------------------------------------------------------- data
def test_pair_sampler_pairs_labels_canvas_and_augmentation():
    wide = blob_sequence(n_frames=6, shape=(40, 60), spacing=(0.5, 0.5), seed=1)
    narrow = blob_sequence(n_frames=3, shape=(40, 30), spacing=(0.5, 0.5), seed=2)
    camus_like = EchoSequence(narrow.frames, narrow.spacing,
                              labels=np.stack([narrow.labels[0], narrow.labels[0] * 0, narrow.labels[2]]),
                              label_frames=(0, 2), ed_index=0, es_index=2)
    unlabelled = blob_sequence(n_frames=4, shape=(40, 40), spacing=(0.5, 0.5), labels=False)
    sampler = PairSampler([SequenceItem(s) for s in (wide, camus_like, unlabelled)], storage_size=32,
                          ed_es_fraction=0.5)
    assert sampler.width == 48 and sampler.has_labels  # the wide view sets the canvas
    batch = sampler.sample(64, 16, np.random.default_rng(0))
    assert batch.fixed.shape == batch.neighbour.shape == (64, 1, 16, 24)
    assert batch.fixed_labels.shape == (64, NUM_LABELS, 16, 24)
    assert float(batch.fixed.min()) >= 0 and float(batch.fixed.max()) <= 1
    assert torch.allclose(batch.fixed_labels.sum(1), torch.ones(64, 16, 24), atol=1e-5)
    assert torch.allclose(batch.spacing[:, 1], torch.full((64,), 0.5 * 39 / 15))  # 16 rows, same depth
    assert torch.allclose(batch.spacing[:, 0], batch.spacing[:, 1], rtol=0.02)  # square pixels
    pairs = batch.pairs
    assert all(f != m for _, f, m in pairs)
    ed_es = [(f, m) for s, f, m in pairs if s == 1]
    assert {(0, 2), (2, 0)} <= set(ed_es)  # both directions
    for (s, f, m), flag in zip(pairs, batch.labelled.tolist()):
        assert flag == float(s == 0 or (s == 1 and {f, m} == {0, 2}))
    masks = sampler.sample_masks(8, 2, np.random.default_rng(0))
    assert masks.shape == (8, 1, 32, 48) and set(masks.unique().tolist()) <= {0.0, 1.0}


def test_pair_sampler_near_neighbour_pairs_for_sequential_models():
    seq = blob_sequence(n_frames=8, shape=(40, 40), spacing=(0.5, 0.5))
    sampler = PairSampler([SequenceItem(seq)], storage_size=16, ed_es_fraction=0.0, max_frame_gap=2)
    pairs = sampler.sample(400, 16, np.random.default_rng(0)).pairs
    gaps = np.array([m - f for _, f, m in pairs])
    assert set(gaps.tolist()) == {-2, -1, 1, 2}  # both directions, every gap up to 2
    assert abs(np.mean(np.abs(gaps) == 1) - 0.5) < 0.08  # the gap is uniform
    assert {min(f, m) for _, f, m in pairs} == set(range(7))  # every frame takes part
    short = blob_sequence(n_frames=3, shape=(40, 40), spacing=(0.5, 0.5))
    capped = PairSampler([SequenceItem(short)], storage_size=16, max_frame_gap=5, ed_es_fraction=0.0)
    assert {abs(m - f) for _, f, m in capped.sample(50, 16, np.random.default_rng(1)).pairs} == {1, 2}
    with pytest.raises(ValueError, match="max_frame_gap"):
        PairSampler([SequenceItem(seq)], storage_size=16, max_frame_gap=0)


def test_pair_sampler_gives_the_simulators_true_motion_between_the_two_frames():
    sim = simulate_sequence(view="A4C", n_frames=6, image_size=(96, 96), seed=21)
    item = SequenceItem(sim.sequence, sim.displacement)
    sampler = PairSampler([item], storage_size=48, ed_es_fraction=0.3, augment=False)
    batch = sampler.sample(12, 32, np.random.default_rng(0))
    assert batch.motion.shape == (12, 2, 32, 32) and batch.supervised.tolist() == [1.0] * 12
    heart = batch.fixed_labels[:, 0] < 0.5
    errors = []
    for k, (_, f, m) in enumerate(batch.pairs):
        truth = resample_field(field_to_torch(sim.displacement_between(f, m)), (32, 32))[0]
        errors.append(float((batch.motion[k] - truth).norm(dim=0)[heart[k]].mean()))
        assert float(truth.norm(dim=0)[heart[k]].mean()) > 0.3  # frames apart: real motion
    assert max(errors) < 0.15  # mm: storage-grid resampling and the numerical inverse
    # flipped pairs get the mirrored field: warping the moving frame with it matches the fixed one
    flipping = PairSampler([item], storage_size=48, augment=True)
    batch = flipping.sample(16, 32, np.random.default_rng(1))
    before = (batch.moving - batch.fixed).pow(2).flatten(1).mean(1)
    after = (warp(batch.moving, batch.motion, batch.spacing) - batch.fixed).pow(2).flatten(1).mean(1)
    assert bool((after < 0.7 * before).all())
    images_only = PairSampler([SequenceItem(blob_sequence())], storage_size=32).sample(
        2, 16, np.random.default_rng(0))
    assert images_only.motion is None and images_only.supervised.tolist() == [0.0, 0.0]


def test_items_cache_folders_and_specs(tmp_path):
    paths = write_simulated_cache(tmp_path / "cache", [4, 5], n_frames=3, image_size=(32, 32), progress=False)
    assert [p.name for p in paths] == ["simulated_0000004.npz", "simulated_0000005.npz"]
    cached = SimulatedSequences([4], n_frames=3, image_size=(32, 32), cache=tmp_path / "cache")[0]
    fresh = SimulatedSequences([4], n_frames=3, image_size=(32, 32))[0]
    assert np.allclose(cached.sequence.frames, fresh.sequence.frames, atol=0.13)
    assert np.allclose(cached.displacement, fresh.displacement, atol=0.01)
    assert np.array_equal(cached.sequence.labels, fresh.sequence.labels)
    assert cached.sequence.es_index == fresh.sequence.es_index
    item = SequenceItem(blob_sequence(labels=False))
    save_item(item, tmp_path / "folder" / "a.npz")
    (tmp_path / "folder" / "notes.txt").write_text("not a sequence")
    back = load_item(tmp_path / "folder" / "a.npz")
    assert back.sequence.labels is None and back.displacement is None
    # unknown times and a placeholder pixel size stay so (they came back as known: 1 s frames, 1 mm pixels)
    assert back.sequence.spacing_known and not back.sequence.frame_times_known  # the blob has no times
    assert cached.sequence.spacing_known and cached.sequence.frame_times_known
    placeholder = dataclasses.replace(item.sequence, metadata={"spacing_known": False})
    back = load_item(save_item(SequenceItem(placeholder), tmp_path / "placeholder.npz"))
    assert not back.sequence.spacing_known
    folder = SequenceFolder(tmp_path / "folder")
    assert len(folder) == 1 and folder[0].sequence.frame_shape == (60, 47)
    assert len(open_source(f"sim:2-5:{tmp_path / 'cache'}")) == 3
    assert len(open_source([str(tmp_path / "cache"), str(tmp_path / "folder")])) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable sequences"):
        SequenceFolder(tmp_path / "empty")


def test_every_data_spec_the_help_lists_is_one_open_source_reads():
    """``DATA_SPECS`` (the torch-free text of the command line's --data help and of open_source's error) and
    the patterns open_source reads are kept apart: each listed form, with and without its optional part,
    must match one of them, and each pattern's prefix must be listed."""
    from EchoRegistrationLib.dlir.data import SIM_SPEC
    from EchoRegistrationLib.dlir.items import DATA_SPECS
    from EchoRegistrationLib.dlir.templates import WARPED_SPEC

    values = {"START": "0", "STOP": "2", "CACHE": "cache", "FOLDER": "folder", "COPIES": "3"}
    forms = [re.sub("|".join(values), lambda m: values[m.group()], form)
             for spec in DATA_SPECS.split(", ")
             for form in (re.sub(r"\[[^]]*\]", "", spec), spec.replace("[", "").replace("]", ""))]
    assert len(forms) == 6 and all(SIM_SPEC.match(f) or WARPED_SPEC.match(f) for f in forms), forms
    assert {f.split(":")[0] for f in forms} == {"sim", "sim-randomised", "warped"}


def test_random_affine_is_a_valid_map():
    m = random_affine(5, np.random.default_rng(0), max_rotation=0, max_scale=0, max_shift=3.0)
    assert torch.allclose(m[:, :2, :2], torch.eye(2).expand(5, 2, 2))
    assert float(m[:, :2, 2].abs().max()) <= 3
    field = affine_to_displacement(m, (8, 8), (1.0, 1.0))
    assert torch.allclose(field, m[:, :2, 2, None, None].expand(5, 2, 8, 8))


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoints_rebuild_every_model_without_pickle(tmp_path):
    torch.manual_seed(0)
    models = {
        "dlir": DLIRModel(RegistrationUNet(**TINY_UNET), working_size=40, diffeomorphic=True,
                          affine=AffineNet(channels=[4, 8])),
        "vae": tiny_vaes()[1],
        "discriminator": PatchDiscriminator(channels=[4, 8]),
    }
    with torch.no_grad():
        for p in models["dlir"].parameters():
            p.add_(0.01 * torch.randn_like(p))
    images = torch.rand(2, 1, 24, 24)
    for name, model in models.items():
        model.eval()
        path = save_model(model, tmp_path / name, history=[{"epoch": 0, "loss": 1.5}])
        config = json.loads((tmp_path / name / "model.json").read_text())
        assert config["kind"] == name and config["history"][0]["loss"] == 1.5
        (tmp_path / name / "model.json").unlink()  # the weights file alone carries the config
        assert read_config(path) == config
        loaded = load_model(path)
        if name == "dlir":
            assert loaded.working_size == 40 and loaded.diffeomorphic
            assert torch.equal(loaded(images[:1], images, (0.3, 0.3)), model(images[:1], images, (0.3, 0.3)))
        elif name == "vae":
            assert torch.equal(loaded.encode(images)[0], model.encode(images)[0])
        else:
            assert torch.equal(loaded(images, images), model(images, images))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing")


def test_rejected_simulator_seeds_are_replaced_reproducibly(monkeypatch):
    from EchoRegistrationLib.dlir import data

    real = data.simulate_sequence
    tried = []

    def picky(**kwargs):
        tried.append(kwargs["seed"])
        if kwargs["seed"] == 7:
            raise ValueError("the heart does not fit")
        return real(**kwargs)

    monkeypatch.setattr(data, "simulate_sequence", picky)
    item = data.simulate_item(7, n_frames=2, image_size=(24, 24))
    assert tried == [7, 1_000_007] and item.sequence.metadata["seed"] == 1_000_007
    def never(**kwargs):
        raise ValueError(f"seed {kwargs['seed']} rejected")

    monkeypatch.setattr(data, "simulate_sequence", never)
    with pytest.raises(ValueError, match="seed 3 rejected"):  # the first error, after 10 replacements
        data.simulate_item(3)


def test_camus_layout_is_a_source_with_labels(tmp_path):
    from EchoRegistrationLib.simulation import write_camus_dataset

    write_camus_dataset(tmp_path, 1, image_size=(32, 32), n_frames=3)
    folder = SequenceFolder(tmp_path)
    assert len(folder) == 2  # both views
    seq = folder[1].sequence
    assert seq.labels is not None and seq.ed_index == 0 and seq.es_index == 2
    batch = PairSampler([folder[k] for k in range(2)], storage_size=16).sample(4, 16, np.random.default_rng(1))
    assert batch.fixed_labels is not None and bool(batch.labelled.all())


def test_refinement_warm_starts_coarse_to_fine_at_under_half_the_optimisers_cost(monkeypatch):
    from EchoRegistrationLib.registration import tracking

    assert tracking.full_resolution_steps((60, 40, 20)) == pytest.approx(60 / 16 + 40 / 4 + 20)
    assert tracking.refine_schedule(40, 512, 128) == (20, 10)  # CAMUS: half (256 rows) and full
    assert tracking.refine_schedule(40, 256, 128) == (20, 10)  # the half level is the working grid
    assert tracking.refine_schedule(40, 112, 128) == (20,)  # 56 rows: coarser than the network's grid
    assert tracking.refine_schedule(1, 512, 128) == (1,) and tracking.refine_schedule(4, 512, 128) == (2, 1)
    with pytest.raises(ValueError, match="at least 1 step"):
        tracking.refine_schedule(0, 512, 128)
    optimiser = tracking.full_resolution_steps(tracking.METHOD_DEFAULTS["deformable"]["iterations"])
    assert tracking.full_resolution_steps(tracking.refine_schedule(40, 512, 128)) < 0.5 * optimiser
    calls = []
    real_register_pair = tracking.register_pair

    def recording(*args, **kwargs):
        calls.append(kwargs)
        result = real_register_pair(*args, **kwargs)
        calls[-1]["taken"] = result.iterations
        return result

    monkeypatch.setattr(tracking, "register_pair", recording)
    seq = blob_sequence(n_frames=3)  # 60 rows: a half level of 31 rows
    for working_size, schedule in ((32, (20,)), (16, (20, 10))):
        model = constant_output(tiny_model(working_size=working_size), 0.0, 0.0)
        # the direct start: the whole schedule in one call (the two starts split it after the first level,
        # test_refine_start.py)
        result = register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=40,
                                   refine_start="direct")
        assert calls[-1]["levels"] == len(schedule) and calls[-1]["iterations"] == schedule
        assert result.parameters["refine_iterations"] == list(schedule)
        # Adam's step: 0.5 pixel at a lone level, which has to reach; 0.5 then 0.25 over two (REFINE_LEARNING_RATES)
        rates = (0.5,) if len(schedule) == 1 else tracking.REFINE_LEARNING_RATES
        assert calls[-1]["learning_rate"] == rates and result.parameters["refine_learning_rates"] == list(rates)
        assert calls[-1]["initial"] is not None  # warm start from the network's fields
        assert calls[-1]["penalty_rows"] == working_size  # smoothness judged on the network's grid
        assert "max_rows" not in calls[-1]  # the images compared at full resolution
        assert calls[-1]["folding_weight"] == tracking.REFINE_FOLDING["folding_weight"] > 0  # penalised
        assert calls[-1]["regularise"] == "residual"  # the network's own field is not smoothed
        assert calls[-1]["regularisation_weight"] == tracking.REFINE_REGULARISATION["regularisation_weight"]
        assert all(n <= cap for n, cap in zip(calls[-1]["taken"], schedule))
    # steps given explicitly are the ones recorded
    result = register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=40, levels=1,
                               iterations=(7,))
    assert calls[-1]["iterations"] == (7,) and result.parameters["refine_iterations"] == [7]
    assert calls[-1]["learning_rate"] == (0.5,)  # the step sizes follow the levels given
    assert result.parameters["refine_penalty_rows"] == 16
    # a step size the user sets is used at every level and recorded (the two starts' split: test_refine_start.py)
    result = register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=40, learning_rate=0.3,
                               refine_start="direct")
    assert calls[-1]["learning_rate"] == 0.3 == result.parameters["refine_learning_rates"]
    # a step size that is not one finite non-negative number, or one per level, is refused before any work
    before = len(calls)
    for bad in (float("nan"), float("inf"), -0.1, (0.5,), "0.5", None, True, (0.5, False)):
        with pytest.raises(ValueError, match=r"learning_rate must be one finite non-negative float, or 2 of them"):
            register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=40, learning_rate=bad)
    with pytest.raises(ValueError, match=r"iterations must be one finite non-negative int, or 2 of them"):
        register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=40, iterations=(1, 2, 3))
    assert len(calls) == before
    # a penalty the user sets is the one used and the one recorded
    result = register_sequence(seq, "dlir", model=model, reference=0, device="cpu", refine=4, folding_weight=7.0)
    assert calls[-1]["folding_weight"] == result.parameters["folding_weight"] == 7.0
    assert result.parameters["regularise"] == calls[-1]["regularise"] == "residual"


def test_float32_on_cuda_keeps_cudnn_convolutions_out_of_tf32():
    """A run recorded as float32 (amp=False) must not let cuDNN round its convolutions to TF32, torch's
    default on Ampere and later GPUs; the setting is restored afterwards and the CPU is left alone."""
    from EchoRegistrationLib.dlir.inference import autocast_context

    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    with autocast_context(torch.device("cuda"), enabled=False):
        assert conv.fp32_precision == "ieee"
    assert conv.fp32_precision == before
    with autocast_context(torch.device("cpu"), enabled=False):
        assert conv.fp32_precision == before
