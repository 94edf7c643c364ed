"""The fine-grid correction stage of DLIR models: its units, its place in inference (once per field,
after the systole anchor's composition), its checkpoint, and its training (the error falls)."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir import DLIRModel, SimulatedSequences, load_model, read_config, save_model
from EchoRegistrationLib.dlir.correction import FieldCorrection
from EchoRegistrationLib.dlir.correction_training import train_correction
from EchoRegistrationLib.dlir.data import save_item
from EchoRegistrationLib.dlir.inference import predict_anchored_fields, predict_pair_fields
from EchoRegistrationLib.dlir.networks import RegistrationUNet
from EchoRegistrationLib.dlir.training import _start_from
from EchoRegistrationLib.cli.train import add_train_parser
from EchoRegistrationLib.sequence import EchoSequence

TINY_UNET = {"stem": 4, "encoder": [8, 8, 8], "decoder": [8, 8, 4]}


def head(module: torch.nn.Module) -> torch.nn.Conv2d:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def constant_stage(pixels: tuple[float, float], size: int = 40) -> FieldCorrection:
    """A stage whose velocity is ``pixels`` (x, y) of its grid everywhere."""
    stage = FieldCorrection.new(size, **TINY_UNET)
    torch.nn.init.zeros_(head(stage.net).weight)
    with torch.no_grad():
        head(stage.net).bias.copy_(torch.tensor(pixels))
    return stage.eval()


def still_model(stage: FieldCorrection | None) -> DLIRModel:
    """A model whose network predicts no motion, with ``stage``."""
    net = RegistrationUNet(**TINY_UNET)
    torch.nn.init.zeros_(head(net).weight)
    torch.nn.init.zeros_(head(net).bias)
    return DLIRModel(net, working_size=24, correction=stage).eval()


def test_the_residual_is_in_pixels_of_the_correction_grid():
    stage = constant_stage((1.5, -0.5))
    images = torch.rand(2, 1, 40, 50)
    with torch.inference_mode():
        corrected = stage(images, images, torch.zeros(2, 2, 40, 50), torch.tensor([[0.4, 0.4], [0.25, 0.25]]))
    assert torch.allclose(corrected[0, 0], torch.full((40, 50), 0.6), atol=1e-5)
    assert torch.allclose(corrected[0, 1], torch.full((40, 50), -0.2), atol=1e-5)
    assert torch.allclose(corrected[1, 0], torch.full((40, 50), 0.375), atol=1e-5)


def test_an_untrained_stage_keeps_the_field():
    stage = FieldCorrection.new(40, **TINY_UNET).eval()
    images = torch.rand(1, 1, 40, 40)
    field = torch.randn(1, 2, 40, 40) * 0.3
    with torch.inference_mode():
        corrected = stage(images, images.roll(1, -1), field, (0.5, 0.5))
    assert (corrected - field).abs().max() < 1e-3


def sequence(n_frames: int = 6, es: int | None = 5) -> EchoSequence:
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 255, (n_frames, 60, 80)).astype(np.float32)
    return EchoSequence(frames=frames, spacing=(0.5, 0.5), ed_index=0, es_index=es)


def test_inference_corrects_each_field_once_in_mm_of_the_input():
    # correction grid of 40 rows over the 60 x 80 input at 0.5 mm: 40 x 53 pixels
    model = still_model(constant_stage((1.0, 2.0)))
    sx, sy = 79 * 0.5 / 52, 59 * 0.5 / 39
    seq = sequence()
    pairs = [(0, t) for t in range(1, 6)]
    fields = predict_pair_fields(model, seq, pairs, "cpu")
    assert torch.allclose(fields[:, 0], torch.full_like(fields[:, 0], sx), atol=1e-4)
    assert torch.allclose(fields[:, 1], torch.full_like(fields[:, 1], 2 * sy), atol=1e-4)
    assert predict_pair_fields(model, seq, pairs, "cpu", correct=False).abs().max() == 0
    # through the systole anchor the composed field is corrected once, against the reference
    anchored, anchor = predict_anchored_fields(model, seq, pairs, {4: 3, 5: 3}, "cpu")
    assert anchor == 3
    assert torch.allclose(anchored, fields, atol=1e-4)
    # several chunks give the same fields as one
    assert torch.allclose(predict_pair_fields(model, seq, pairs, "cpu", chunk_size=2), fields)


def test_the_stage_starts_from_the_chunk_the_networks_memory_allowed():
    model = still_model(constant_stage((1.0, 2.0)))
    tries = {"network": [], "stage": []}

    def short_of_memory(name, forward):
        def limited(*inputs):
            tries[name].append(len(inputs[1]))  # the moving frames (one fixed frame is broadcast)
            if len(inputs[1]) > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return forward(*inputs)
        return limited

    model.forward = short_of_memory("network", model.forward)
    model.correction.forward = short_of_memory("stage", model.correction.forward)
    seq = sequence()
    fields = predict_pair_fields(model, seq, [(0, t) for t in range(1, 6)], "cpu", chunk_size=8)
    assert tries == {"network": [5, 4, 2, 2, 1], "stage": [2, 2, 1]}  # no failed try of the stage
    assert torch.allclose(fields, predict_pair_fields(still_model(constant_stage((1.0, 2.0))), seq,
                                                      [(0, t) for t in range(1, 6)], "cpu"), atol=1e-6)


class DepthScaling(torch.nn.Module):
    """A stand-in network whose field is u = (0, k y) mm on any grid (y: mm below the first row),
    in the network's output units (percent of the field of view's depth)."""
    output_stride = 1

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        rows = torch.linspace(0, 1, pair.shape[-2])[:, None].expand(pair.shape[-2:])
        return torch.stack((torch.zeros_like(rows), self.k * rows / 0.01))[None].expand(len(pair), -1, -1, -1)


def test_fields_through_the_anchor_are_composed_in_mm_on_the_stage_grid():
    # u = k y composed with itself through the anchor is (2k + k^2) y, whatever the grids, if the
    # composition uses each grid's own pixel size (0.4 x 0.7 mm here; the stage's grid is coarser)
    k = -0.1
    model = DLIRModel(DepthScaling(k), working_size=24, correction=constant_stage((0.5, 0.0))).eval()
    frames = np.random.default_rng(1).uniform(0, 255, (6, 60, 80)).astype(np.float32)
    seq = EchoSequence(frames=frames, spacing=(0.4, 0.7), ed_index=0, es_index=5)
    stage_sx = 79 * 0.4 / (round(79 * 0.4 / (59 * 0.7 / 39)))  # the stage's 40 rows span the same depth
    y = torch.arange(60, dtype=torch.float32)[:, None] * 0.7
    fields, anchor = predict_anchored_fields(model, seq, [(0, t) for t in range(1, 6)], {4: 3, 5: 3}, "cpu")
    assert anchor == 3
    for index, factor in ((0, k), (2, k), (3, 2 * k + k * k), (4, 2 * k + k * k)):  # frames 1, 3 direct; 4, 5 via 3
        torch.testing.assert_close(fields[index, 1], (factor * y).expand(60, 80), atol=2e-4, rtol=0)
        torch.testing.assert_close(fields[index, 0], torch.full((60, 80), 0.5 * stage_sx), atol=2e-4, rtol=0)


def test_a_model_with_a_stage_saves_and_loads_and_one_without_keeps_its_config(tmp_path):
    model = still_model(constant_stage((0.5, 0.0)))
    save_model(model, tmp_path / "with")
    loaded = load_model(tmp_path / "with")
    assert loaded.correction is not None and loaded.correction.working_size == 40
    assert torch.equal(head(loaded.correction.net).bias, head(model.correction.net).bias)
    save_model(still_model(None), tmp_path / "without")
    assert "correction" not in still_model(None).architecture()
    assert load_model(tmp_path / "without").correction is None


def test_fine_tuning_from_a_corrected_model_leaves_the_stage_behind():
    trained = still_model(constant_stage((0.5, 0.0)))
    fresh = DLIRModel(RegistrationUNet(**TINY_UNET), working_size=24)
    _start_from(fresh, trained)
    assert fresh.correction is None
    assert torch.equal(head(fresh.net).weight, head(trained.net).weight)


@pytest.fixture(scope="module")
def sims():
    options = {"n_frames": 4, "image_size": (64, 64)}
    train, val = SimulatedSequences(range(3), **options), SimulatedSequences(range(10_000, 10_001), **options)
    return [train[k] for k in range(3)], [val[0]]


def test_training_lowers_the_error_of_a_poor_first_field_and_resumes(sims, tmp_path):
    # the first network predicts nothing: the stage must learn the simulated motion itself
    base = still_model(None)
    options = {"base": base, "size": 32, "iterations": 150, "batch_size": 4, "crop": 32,
               "perturbation_mm": 0.3, "iterations_per_epoch": 50, "device": "cpu", "progress": False,
               "unet": TINY_UNET, "learning_rate": 3e-3}
    history = train_correction(sims[0], tmp_path / "run", validation=sims[1], **options)
    assert [row["iterations"] for row in history] == [50, 100, 150]
    last = history[-1]
    assert last["epe"] < 0.75 * last["start_epe"]  # the corrected field is closer to the truth
    assert np.isfinite(last["val_epe_es"]) and last["val_folding"] >= 0
    model = load_model(tmp_path / "run")
    assert model.correction is not None and model.correction.working_size == 32
    assert torch.equal(head(model.net).bias, head(base.net).bias)  # the first network is frozen
    again = train_correction(sims[0], tmp_path / "run", validation=sims[1], **options)
    assert again == history  # nothing left to do
    with pytest.raises(ValueError, match="settings differ"):
        train_correction(sims[0], tmp_path / "run", **{**options, "crop": 24})


def test_training_needs_true_motion(sims, tmp_path):
    still = [type(sims[0][0])(sims[0][0].sequence)]  # the frames without their motion
    with pytest.raises(ValueError, match="true motion"):
        train_correction(still, tmp_path / "run", base=still_model(None), size=48, iterations=2,
                         device="cpu", progress=False)


def test_the_train_correction_command_passes_its_options_on(tmp_path, monkeypatch):
    import argparse

    from EchoRegistrationLib.dlir import correction_training

    calls = []
    monkeypatch.setattr(correction_training, "train_correction", lambda data, **kw: calls.append((data, kw)) or [])
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "correction", "--data", "sim:0-2", "--base", "echoreg-dlir-camus",
                              "-o", str(tmp_path), "--crop", "96", "--perturbation", "0.4", "--passes", "2",
                              "--stem", "8", "--encoder", "16", "32", "--decoder", "32", "16", "--dice", "1"])
    assert args.run(args) == 0
    data, options = calls[0]
    assert data == ["sim:0-2"]
    expected = {"base": "echoreg-dlir-camus", "size": 192, "iterations": 3000, "crop": 96, "perturbation_mm": 0.4,
                "smoothness": 1.0, "dice": 1.0, "randomise": 0.0, "passes": 2,
                "unet": {"stem": 8, "encoder": [16, 32], "decoder": [32, 16]}}
    assert {key: options[key] for key in expected} == expected
    for bad in (["--randomise", "1.5"], ["--dice", "-1"], ["--smoothness", "nan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "correction", "--data", "sim:0-2", "--base", "m", "-o", str(tmp_path), *bad])
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "correction", "--data", "sim:0-2", "-o", str(tmp_path)])  # no --base


def test_a_stage_carries_the_terms_of_its_base_and_of_its_data():
    from EchoRegistrationLib.dlir.data import combined_licence

    camus, project = "CC BY-NC-SA 4.0", "BSD-3-Clause"
    assert combined_licence(camus, project) == camus and combined_licence(project, camus) == camus
    assert combined_licence(project, project) == project
    assert combined_licence(None, project).startswith("unknown")  # a base given as a model: its terms are not known


def test_first_frame_pairs_start_from_frame_0_where_the_truth_is_known_from_there_only(sims):
    from EchoRegistrationLib.dlir import PairSampler
    from EchoRegistrationLib.dlir.items import SequenceItem

    rng = np.random.default_rng(0)
    simulated = PairSampler(sims[0], storage_size=32, first_frame_pairs=True)
    pairs = [simulated._pair(s, rng) for s in simulated.sequences for _ in range(20)]
    assert {f for f, _ in pairs} == {0} and {m for _, m in pairs} == {1, 2, 3}
    item = sims[0][0]
    exact = SequenceItem(item.sequence, item.displacement, -item.displacement)  # an inverse given: both ways
    both = PairSampler([exact], storage_size=32, first_frame_pairs=True)
    pairs = {both._pair(both.sequences[0], rng) for _ in range(40)}
    assert any(f == 0 for f, _ in pairs) and any(m == 0 for _, m in pairs)


def test_the_dice_term_is_reported_on_annotated_pairs(sims, tmp_path):
    history = train_correction(sims[0], tmp_path / "run", base=still_model(None), size=32, iterations=4,
                               batch_size=2, crop=32, dice=1.0, iterations_per_epoch=2, device="cpu",
                               progress=False, unet=TINY_UNET)
    assert all(0 <= row["dice"] <= 1 and row["loss"] >= row["dice"] for row in history)
    assert read_config(tmp_path / "run")["training"]["dice"] == 1.0


def test_a_stage_for_a_project_model_on_simulated_data_keeps_the_project_terms(sims, tmp_path):
    # echoreg-dlir-sim's config names no licence: its terms come from its sources, as the catalog gives them
    simulated = SimulatedSequences(range(3), n_frames=4, image_size=(64, 64))  # described as the simulator
    train_correction(simulated, tmp_path / "run", base="echoreg-dlir-sim", size=32, iterations=2, batch_size=2,
                     crop=32, iterations_per_epoch=2, device="cpu", progress=False, unet=TINY_UNET)
    assert read_config(tmp_path / "run")["licence"] == "BSD-3-Clause"


def test_the_command_says_in_one_line_why_a_run_cannot_resume(sims, tmp_path, capsys):
    from EchoRegistrationLib.cli import main

    folder = tmp_path / "cache"
    for k, item in enumerate(sims[0]):
        save_item(item, folder / f"item_{k}.npz")
    command = ["train", "correction", "--data", str(folder), "--base", "echoreg-dlir-sim", "--size", "32",
               "--crop", "32", "--iterations", "2", "--iterations-per-epoch", "2", "--batch-size", "2",
               "--device", "cpu", "--stem", "4", "--encoder", "8", "8", "8", "--decoder", "8", "8", "4",
               "-o", str(tmp_path / "run")]
    assert main(command) == 0
    capsys.readouterr()
    assert main([*command[:-2], "--crop", "24", "-o", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"echoreg: error: {tmp_path / 'run'}: cannot resume: the settings differ in ['crop']")
    assert len(error.splitlines()) == 1
    assert main([*command[:-2], "--crop", "48", "-o", str(tmp_path / "big")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("echoreg: error: train correction: crop 48 is larger than the correction grid (32 x ")
    assert len(error.splitlines()) == 1
