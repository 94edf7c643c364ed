"""Enhancement CycleGAN: networks, losses, a tiny resumable training, enhance_sequence and the
register_sequence / CLI option."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir.data import SequenceItem
from EchoRegistrationLib.enhancement.inference import enhance_sequence, load_enhancer
from EchoRegistrationLib.enhancement.networks import PatchGAN70, ResnetGenerator, initialise, translate
from EchoRegistrationLib.enhancement.objectives import (discriminator_adversarial, illumination, ssim)
from EchoRegistrationLib.enhancement.training import PIXEL_MM, train_enhancer
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.sequence import EchoSequence
from EchoRegistrationLib.simulation import ring_phantom

TINY = {"width": 4, "blocks": 1, "discriminator_channels": (4, 8, 8, 8), "crop": 32}


def test_patchgan_scores_see_70_by_70_pixels():
    torch.manual_seed(0)
    d = initialise(PatchGAN70((4, 8, 8, 8)))
    # instance norm mixes in whole-image statistics: the patch is the convolutions' support
    d.net = torch.nn.Sequential(*[torch.nn.Identity() if isinstance(m, torch.nn.InstanceNorm2d) else m
                                  for m in d.net])
    image = torch.randn(1, 1, 160, 160, requires_grad=True)
    scores = d(image)
    assert scores.shape == (1, 1, 160 // 8 - 2, 160 // 8 - 2)
    scores[0, 0, 9, 9].backward()
    rows, cols = np.nonzero(image.grad[0, 0].abs().numpy() > 0)
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_residual_generator_starts_as_the_identity_and_takes_any_size():
    g = initialise(ResnetGenerator(width=4, blocks=1))
    image = torch.rand(2, 1, 37, 50) * 1.8 - 0.9
    out = translate(g, image)
    assert out.shape == image.shape
    assert torch.equal(out, image)
    plain = initialise(ResnetGenerator(width=4, blocks=1, residual=False))
    assert plain(torch.zeros(1, 1, 16, 16)).abs().max() < 0.1  # tanh of small activations


def test_ssim_and_illumination_known_values():
    torch.manual_seed(0)
    a = torch.rand(1, 1, 64, 64) - 0.5
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(ssim(a, torch.rand(1, 1, 64, 64) - 0.5))) < 0.05  # independent noise
    assert float(illumination(a, a + 0.25)) == pytest.approx(0.25, abs=1e-6)


def test_discriminator_loss_is_half_the_least_squares_sum():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2, 3), keepdim=True)

    real, fake = torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.2)
    # 0.5 [(0.5 - 1)^2 + 0.2^2] = 0.145
    assert float(discriminator_adversarial(Constant(), real, fake)) == pytest.approx(0.145)


def _items(seed, noisy):
    """Two tiny sequences of a bright disc, clean or with strong noise, at the model's pixel size."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:48, 0:48]
    disc = np.where((rows - 24) ** 2 + (cols - 24) ** 2 < 100, 200.0, 40.0)
    items = []
    for _ in range(2):
        frames = disc[None].repeat(3, axis=0) + (rng.normal(0, 40, (3, 48, 48)) if noisy else 0)
        items.append(SequenceItem(EchoSequence(frames=np.clip(frames, 0, 255), spacing=(PIXEL_MM,) * 2)))
    return items


def test_training_resumes_exactly_and_the_checkpoint_round_trips(tmp_path):
    torch.set_num_threads(1)
    low, high = _items(0, noisy=True), _items(1, noisy=False)
    straight = train_enhancer(low, high, tmp_path / "a", iterations=4, iterations_per_epoch=2,
                              device="cpu", progress=False, **TINY)
    train_enhancer(low, high, tmp_path / "b", iterations=2, iterations_per_epoch=2, device="cpu",
                   progress=False, **TINY)
    with pytest.raises(ValueError, match="settings differ"):
        train_enhancer(low, high, tmp_path / "b", iterations=4, iterations_per_epoch=2, device="cpu",
                       progress=False, **{**TINY, "crop": 16})
    losses = ("loss", "adversarial", "cycle", "identity", "ssim", "illumination", "discriminator")
    assert all(np.isfinite(row[key]) for row in straight for key in losses)
    assert straight[0]["cycle"] > 0 and straight[0]["illumination"] > 0
    generator = load_enhancer(tmp_path / "a")
    assert generator.pixel_mm == PIXEL_MM and generator.architecture() == {"width": 4, "blocks": 1,
                                                                           "residual": True}
    import json
    config = json.loads((tmp_path / "a" / "model.json").read_text())
    assert config["licence"] == "unknown (see the model card)"  # items, not the simulator
    assert config["history"] == straight
    with pytest.raises(FileExistsError):
        train_enhancer(low, high, tmp_path / "a", iterations=4, iterations_per_epoch=2, device="cpu",
                       progress=False, resume=False, **TINY)


def test_training_lowers_the_generator_loss(tmp_path):
    torch.set_num_threads(1)
    history = train_enhancer(_items(0, True), _items(1, False), tmp_path, iterations=30,
                             iterations_per_epoch=10, learning_rate=2e-3, device="cpu",
                             progress=False, **TINY)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]


@pytest.fixture(scope="module")
def ring():
    return ring_phantom(size=64, n_frames=4, spacing=(PIXEL_MM, PIXEL_MM), seed=2).sequence


def test_identity_enhancer_keeps_frames_and_registration(ring):
    identity = initialise(ResnetGenerator(width=4, blocks=1))
    identity.pixel_mm = PIXEL_MM
    frames = ring.frames.copy()
    frames[2] = 0.0  # a frame without signal stays as it is
    seq = EchoSequence(frames=frames, spacing=ring.spacing, ed_index=0)
    enhanced = enhance_sequence(seq, identity, device="cpu")
    assert np.allclose(enhanced.frames, np.clip(frames, 0, 255), atol=1e-3)
    assert enhanced.metadata["enhancement"] == "ResnetGenerator"
    plain = register_sequence(ring, "deformable", device="cpu", iterations=(5, 5, 5))
    with_identity = register_sequence(ring, "deformable", device="cpu", iterations=(5, 5, 5), enhance=identity)
    # the frames agree to 1e-5 grey; each pair's own optimisation (own step sizes and stop) carries that
    # to at most about 1e-3 mm, far below any motion an enhancer that changes the frames would cause
    assert np.allclose(with_identity.displacement, plain.displacement, atol=5e-3)
    assert np.abs(with_identity.displacement - plain.displacement).mean() < 1e-4
    assert with_identity.parameters["enhance"] == "ResnetGenerator"


def test_enhancement_is_masked_to_the_field_of_view(ring):
    brighten = initialise(ResnetGenerator(width=4, blocks=1))
    torch.nn.init.constant_(brighten.head.bias, 0.2)  # +2 tanh(0.2) in -1..1 units: +50.4 grey
    brighten.pixel_mm = PIXEL_MM
    mask = np.zeros(ring.frame_shape, dtype=bool)
    mask[8:56, 8:56] = True
    ramp = 80.0 + 0.5 * np.arange(64)[None, None, :] + np.zeros(ring.frames.shape)
    seq = EchoSequence(frames=ramp, spacing=ring.spacing, mask=mask)
    out = enhance_sequence(seq, brighten, device="cpu").frames
    assert np.all(out[:, ~mask] == 0)
    assert np.allclose(out[:, mask], ramp[:, mask] + 2 * np.tanh(0.2) * 127.5, atol=0.05)


def test_unknown_enhancer_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="echoreg train enhancer"):
        load_enhancer("no-such-enhancer")


def test_cli_parses_enhancement_options():
    from EchoRegistrationLib.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["register", "in.nii.gz", "-o", "out", "--enhance", "m"])
    assert args.enhance == "m"
    assert parser.parse_args(["strain", "in.nii.gz", "-o", "out"]).enhance is None
    args = parser.parse_args(["train", "enhancer", "--low", "degraded:0-4", "--high", "sim:4-8", "-o", "x",
                              "--weight", "ssim=2"])
    assert args.low == ["degraded:0-4"] and args.weight == [("ssim", 2.0)]
    assert parser.parse_args(["enhance", "in.nii.gz", "-o", "out.nii.gz", "--model", "m"]).model == "m"


def test_a_mistyped_domain_spec_names_the_enhancer_specs(tmp_path, capsys):
    from EchoRegistrationLib.cli import main

    assert main(["train", "enhancer", "--low", "degraded:5", "--high", "sim:4-8", "-o", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == ("echoreg: error: degraded:5: is neither a domain spec "
                                               "(degraded:START-STOP, sim:START-STOP) nor a folder")
