"""DLIR training end to end on tiny simulated data: multi-scale with shape and texture, checkpoints,
exact resumption, the affine CNN and the ``echoreg train`` commands."""

import argparse
import json

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir import (DLIRModel, MaskVAE, SimulatedSequences, load_model,
                                      predict_sequence_fields, read_config, train_affine, train_dlir,
                                      train_vae)
from EchoRegistrationLib.cli.train import add_train_parser
from EchoRegistrationLib.sequence import EchoDataError

TINY_UNET = {"stem": 4, "encoder": [8, 8, 8], "decoder": [8, 8, 4]}
TINY_VAE = {"latent_size": 4, "channels": [4, 8], "input_size": 16}


@pytest.fixture(scope="module")
def sims():
    """(training, validation) items: 4 + 2 tiny simulated sequences (validation seeds >= 10000)."""
    options = {"n_frames": 4, "image_size": (48, 48)}
    train = SimulatedSequences(range(4), **options)
    val = SimulatedSequences(range(10_000, 10_002), **options)
    return [train[k] for k in range(4)], [val[k] for k in range(2)]


@pytest.fixture(scope="module")
def vaes(sims, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vaes")
    paths = []
    for structure in ("lv", "myocardium"):
        history = train_vae(sims[0], folder / structure, structure=structure, validation=sims[1],
                            iterations=6, batch_size=4, storage_size=32, iterations_per_epoch=3,
                            device="cpu", progress=False, **TINY_VAE)
        assert [row["iterations"] for row in history] == [3, 6]
        assert all(np.isfinite(row["loss"]) and 0 <= row["val_dice"] <= 1 for row in history)
        paths.append(folder / structure)
    return paths


def dlir_options(**overrides):
    options = {"scales": (16, 24), "iterations": 4, "batch_size": 2, "iterations_per_epoch": 2,
               "unet": TINY_UNET, "device": "cpu", "progress": False, "seed": 3}
    return {**options, **overrides}


def test_tiny_multiscale_training_with_shape_and_texture(sims, vaes, tmp_path):
    rows = []
    history = train_dlir(sims[0], tmp_path / "run", validation=sims[1], vaes=vaes, callback=rows.append,
                         weights={"motion": 0.5}, **dlir_options())
    assert rows == history and [r["size"] for r in history] == [16, 16, 24, 24]
    for row in history:
        for term in ("loss", "similarity", "bending", "dice", "shape", "texture", "discriminator",
                     "motion"):
            assert np.isfinite(row[term]), term
        assert row["val_epe_es"] > 0 and 0 < row["val_dice_es"] <= 1 and row["val_folding"] >= 0
    model = load_model(tmp_path / "run")
    assert isinstance(model, DLIRModel) and model.working_size == 24  # the last stage
    config = read_config(tmp_path / "run")
    assert config["training"]["loss"]["shape"] and config["training"]["loss"]["texture"]
    assert config["history"] == json.loads(json.dumps(history))
    assert (tmp_path / "run" / "discriminator.safetensors").is_file()
    fields = predict_sequence_fields(tmp_path / "run", sims[1][0].sequence, device="cpu")
    assert fields.shape == (4, 2, 48, 48) and torch.isfinite(fields).all()
    untrained = DLIRModel(model.net.__class__(**TINY_UNET), working_size=24)
    assert not torch.allclose(model.net.head.weight, untrained.net.head.weight)


class Interrupted(Exception):
    pass


def test_resumed_training_repeats_the_uninterrupted_run(sims, vaes, tmp_path):
    straight = train_dlir(sims[0], tmp_path / "straight", vaes=vaes, **dlir_options())

    def stop_after_first_stage(row):
        if row["iterations"] == 4:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_dlir(sims[0], tmp_path / "resumed", vaes=vaes, callback=stop_after_first_stage,
                   **dlir_options())
    assert read_config(tmp_path / "resumed")["history"][-1]["iterations"] == 4
    resumed = train_dlir(sims[0], tmp_path / "resumed", vaes=vaes, **dlir_options())
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in straight]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed] == strip
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    # a finished run resumes to itself; other settings or a fresh start in its folder are refused
    assert len(train_dlir(sims[0], tmp_path / "resumed", vaes=vaes, **dlir_options())) == 4
    with pytest.raises(ValueError, match=r"settings differ in \['learning_rate'\]"):
        train_dlir(sims[0], tmp_path / "resumed", vaes=vaes, learning_rate=0.1, **dlir_options())
    with pytest.raises(FileExistsError, match="resume=True"):
        train_dlir(sims[0], tmp_path / "resumed", vaes=vaes, resume=False, **dlir_options())


def test_image_only_training_and_diffeomorphic_option(sims, tmp_path):
    unlabelled = [type(item)(item.sequence.__class__(item.sequence.frames, item.sequence.spacing,
                                                     ed_index=0, es_index=3))
                  for item in sims[0]]
    history = train_dlir(unlabelled, tmp_path / "run", diffeomorphic=True, texture=False,
                         **dlir_options(scales=(16,), iterations=2))
    assert set(history[-1]) >= {"similarity", "bending"} and "dice" not in history[-1]
    assert "texture" not in history[-1] and load_model(tmp_path / "run").diffeomorphic


def test_sequential_fine_tuning_starts_from_a_trained_model(sims, tmp_path):
    base = tmp_path / "base"
    train_dlir(sims[0], base, texture=False, **dlir_options(scales=(16,), iterations=2))
    history = train_dlir(sims[0], tmp_path / "fine", validation=sims[1], init=base, mode="sequential",
                         max_frame_gap=1, texture=False, learning_rate=1e-12,
                         **dlir_options(scales=(24,), iterations=2))
    fine, start = load_model(tmp_path / "fine"), load_model(base)
    assert fine.mode == "sequential" and fine.working_size == 24 and start.mode == "to_reference"
    for (name, p), q in zip(fine.state_dict().items(), start.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-8), name  # a step size of 1e-12: the starting weights
    settings = read_config(tmp_path / "fine")["training"]
    assert settings["init"] == str(base) and settings["max_frame_gap"] == 1
    assert settings["ed_es_fraction"] == 0 and history[-1]["val_epe_es"] > 0
    with pytest.raises(ValueError, match="networks"):
        train_dlir(sims[0], tmp_path / "other", init=base, texture=False,
                   **dlir_options(scales=(16,), iterations=2, unet={**TINY_UNET, "decoder": [8, 8, 8]}))


def test_affine_training_gives_an_affine_first_stage(sims, tmp_path):
    history = train_affine(sims[0], tmp_path / "affine", validation=sims[1], size=24, iterations=4,
                           batch_size=2, channels=[4, 8], iterations_per_epoch=2, device="cpu",
                           progress=False)
    assert len(history) == 2 and all(row["val_epe"] > 0 for row in history)
    affine = load_model(tmp_path / "affine")
    assert affine.net is None and affine.affine is not None and affine.working_size == 24
    train_dlir(sims[0], tmp_path / "dlir", affine=tmp_path / "affine", texture=False,
               **dlir_options(scales=(16,), iterations=2))
    model = load_model(tmp_path / "dlir")
    assert torch.equal(model.affine.head.weight, affine.affine.head.weight)  # frozen


def test_echoreg_train_commands(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="echoreg")
    add_train_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        assert args.run(args) == 0

    cache = tmp_path / "cache"
    run("train", "simulate", "--seeds", "0-3", "-o", str(cache), "--frames", "3", "--size", "32")
    assert len(list(cache.glob("*.npz"))) == 3
    data = ["--data", f"sim:0-3:{cache}", "--batch-size", "2", "--device", "cpu"]
    run("train", "vae", *data, "-o", str(tmp_path / "vae"), "--iterations", "1", "--latent-size", "8")
    assert isinstance(load_model(tmp_path / "vae"), MaskVAE)
    run("train", "affine", *data, "-o", str(tmp_path / "affine"), "--size", "32", "--iterations", "1")
    run("train", "dlir", *data, "-o", str(tmp_path / "dlir"), "--scales", "16", "24", "--iterations", "1", "2",
        "--vae", str(tmp_path / "vae"), "--weight", "dice=0.5", "--weight", "texture=0.02",
        "--affine", str(tmp_path / "affine"))
    settings = read_config(tmp_path / "dlir")["training"]
    assert settings["iterations"] == [1, 2] and settings["loss"]["weights"]["dice"] == 0.5
    assert settings["loss"]["weights"]["texture"] == 0.02 and len(settings["vaes"]) == 1
    assert "checkpoint:" in capsys.readouterr().out
    run("train", "dlir", *data, "-o", str(tmp_path / "fine"), "--scales", "32", "--iterations", "1",
        "--affine", str(tmp_path / "affine"), "--init", str(tmp_path / "dlir"), "--mode", "sequential",
        "--max-frame-gap", "2", "--no-texture")
    settings = read_config(tmp_path / "fine")["training"]
    assert settings["init"] == str(tmp_path / "dlir") and settings["max_frame_gap"] == 2
    assert load_model(tmp_path / "fine").mode == "sequential"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "dlir", "--data", "x", "-o", "y", "--weight", "dice"])
    run("train", "dlir", *data, "-o", str(tmp_path / "cv"), "--scales", "32", "--iterations", "1", "--no-texture",
        "--network", "cost_volume")
    assert read_config(tmp_path / "cv")["architecture"]["unet"]["kind"] == "cost_volume"
    args = parser.parse_args(["train", "dlir", *data, "-o", str(tmp_path / "cv2"), "--network", "cost_volume",
                              "--encoder", "8", "8"])
    with pytest.raises(EchoDataError, match="--encoder, --decoder and --output-stride shape the U-Net, not "
                                            "--network cost_volume"):
        args.run(args)
    args = parser.parse_args(["train", "dlir", *data, "-o", str(tmp_path / "cv3"), "--scales", "32", "--iterations",
                              "1", "--no-texture", "--init", str(tmp_path / "cv")])  # a cost volume into a U-Net
    with pytest.raises(EchoDataError, match="it is a cost_volume network, this run trains a unet one "
                                            r"\(--network cost_volume\)"):
        args.run(args)


def test_train_command_help_states_each_trainers_own_defaults_and_refuses_bad_devices():
    import inspect
    import re

    from EchoRegistrationLib.dlir.correction_training import train_correction
    from EchoRegistrationLib.dlir.training import train_affine, train_dlir, train_vae

    parser = argparse.ArgumentParser(prog="echoreg")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    trainers = next(a for a in commands._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, function in (("vae", train_vae), ("affine", train_affine), ("dlir", train_dlir),
                           ("correction", train_correction)):
        options = {a.dest: a for a in trainers[name]._actions}
        for dest in ("batch_size", "learning_rate"):
            shown = re.search(r"\(default ([0-9.e-]+)\)", options[dest].help).group(1)
            assert float(shown) == inspect.signature(function).parameters[dest].default, (name, dest)
            assert options[dest].default is None  # the trainer's own default applies
    device_help = {name: next(a.help for a in trainers[name]._actions if a.dest == "device")
                   for name in ("dlir", "correction")}
    assert "torchrun" in device_help["dlir"] and "torchrun" not in device_help["correction"]
    base = ["train", "dlir", "--data", "sim:0-2", "-o", "x"]
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--device", "gpu"])
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--learning-rate", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--device", "cuda"])
    assert parser.parse_args([*base, "--device", "cpu"]).device == "cpu"
    for bad in (["train", "simulate", "--seeds", "0-2", "-o", "x", "--frames", "1"],
                ["train", "vae", "--data", "sim:0-2", "-o", "x", "--latent-size", "0"],
                ["train", "affine", "--data", "sim:0-2", "-o", "x", "--size", "3"],
                [*base, "--scales", "32", "0"], [*base, "--iterations", "-5"],
                ["train", "enhancer", "--low", "degraded:0-2", "--high", "sim:2-4", "-o", "x", "--crop", "4"],
                [*base, "--weight", "dice=-1"], [*base, "--randomise", "1.5"], [*base, "--encoder", "8", "0"],
                ["train", "vae", "--data", "sim:0-2", "-o", "x", "--beta", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_train_commands_report_bad_settings_in_one_line(tmp_path, capsys, monkeypatch):
    from EchoRegistrationLib.cli import main

    cases = {("--data", "sim:3-1"): "sim:3-1: the simulator seeds START-STOP need START < STOP",
             ("--data", "sim:0-2", "--weight", "bogus=1"): "unknown loss terms ['bogus']",
             ("--data", "sim:0-2", "--encoder", "32", "32", "--decoder", "32"): "needs 2 decoder levels",
             ("--data", "sim:0-2", "--iterations", "0"): "nothing to train: every stage has 0 iterations"}
    for k, (options, problem) in enumerate(cases.items()):
        output = tmp_path / f"run{k}"
        assert main(["train", "dlir", *options, "-o", str(output), "--device", "cpu"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("echoreg: error: train dlir: ") and problem in error and len(error.splitlines()) == 1
    assert main(["train", "dlir", "--data", "bogus:3", "-o", str(tmp_path / "bogus"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        "echoreg: error: bogus:3: is neither a data spec (sim:START-STOP[:CACHE], "
        "sim-randomised:START-STOP[:CACHE], warped:FOLDER[:COPIES]) nor a folder")
    # a ValueError from inside a library is a bug: it keeps its traceback
    from EchoRegistrationLib.dlir import training

    monkeypatch.setattr(training, "train_dlir", lambda *a, **k: np.ones(3) + np.ones(4))
    with pytest.raises(ValueError, match="broadcast"):
        main(["train", "dlir", "--data", "sim:0-2", "-o", str(tmp_path / "bug"), "--device", "cpu"])
    # Ctrl-C: the checkpoints stay, and the message says so (not "no outputs were written")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_dlir", interrupted)
    assert main(["train", "dlir", "--data", "sim:0-2", "-o", str(tmp_path / "cut"), "--device", "cpu"]) == 130
    assert capsys.readouterr().err.strip() == f"echoreg: interrupted; nothing was written into {tmp_path / 'cut'} yet"
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.safetensors").write_bytes(b"a checkpoint")
    assert main(["train", "dlir", "--data", "sim:0-2", "-o", str(tmp_path / "cut"), "--device", "cpu"]) == 130
    assert capsys.readouterr().err.strip() == (f"echoreg: interrupted; the checkpoints in {tmp_path / 'cut'} stay; "
                                               "run the command again (without --no-resume) to go on from the "
                                               "last one")
    from EchoRegistrationLib.dlir import data

    monkeypatch.setattr(data, "write_simulated_cache", interrupted)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "item_0.npz").write_bytes(b"a sequence")
    assert main(["train", "simulate", "--seeds", "0-2", "-o", str(tmp_path / "cache")]) == 130
    assert capsys.readouterr().err.strip() == (f"echoreg: interrupted; the sequences already in {tmp_path / 'cache'} "
                                               "stay; the same command simulates only the others")
