"""DLIR on real CAMUS pairs (``../shared/data/camus_ed_es``; skipped without it): the flat ED / ES
reader, a small training run whose loss falls and Dice rises, the licence a CAMUS-trained model
carries, and domain-randomised appearance."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir import evaluate, read_config, train_dlir
from EchoRegistrationLib.dlir.augment import randomise_appearance
from EchoRegistrationLib.dlir.data import SequenceItem, data_licence, describe_source, open_source
from EchoRegistrationLib.dlir.shipped import list_models
from EchoRegistrationLib.io import CamusPairFolder

TINY_UNET = {"stem": 8, "encoder": [16, 16, 16], "decoder": [16, 16, 8]}


@pytest.fixture(scope="module")
def camus_train(shared_data):
    folder = shared_data / "camus_ed_es" / "train"
    if not folder.is_dir():
        pytest.skip(f"CAMUS ED/ES pairs not available: {folder} is absent")
    return folder


def test_flat_camus_folder_gives_annotated_ed_es_pairs(camus_train):
    pairs = CamusPairFolder(camus_train)
    assert len(pairs) >= 249  # 250 patients, one (0039) missing from the copy
    seq = pairs[0]
    assert seq.n_frames == 2 and (seq.ed_index, seq.es_index) == (0, 1)
    assert seq.label_frames == (0, 1) and set(np.unique(seq.labels)) == {0, 1, 2, 3}
    assert seq.metadata["patient"].startswith("patient")
    assert open_source(str(camus_train)).describe()["source"] == "camus"


def test_training_on_a_few_camus_pairs_lowers_the_loss_and_raises_the_dice(camus_train, tmp_path):
    items = [SequenceItem(CamusPairFolder(camus_train)[k]) for k in range(4)]
    torch.manual_seed(0)
    history = train_dlir(items, tmp_path / "run", validation=items, scales=32, iterations=60,
                         batch_size=4, learning_rate=3e-3, weights={"dice": 1.0}, texture=False,
                         unet=TINY_UNET, iterations_per_epoch=30, device="cpu", progress=False, seed=0)
    assert history[-1]["loss"] < history[0]["loss"] - 0.01, [r["loss"] for r in history]
    assert history[-1]["dice"] < 0.95 * history[0]["dice"], [r["dice"] for r in history]
    identity = evaluate(_identity(tmp_path / "run"), items, "cpu")["dice_es"]  # before training
    dice = [identity] + [r["val_dice_es"] for r in history]
    assert dice[2] > dice[1] > dice[0] + 0.01, dice


def _identity(run):
    """The trained model with its last layer zeroed: the identity map, the Dice before training."""
    from EchoRegistrationLib.dlir import load_model

    model = load_model(run)
    with torch.no_grad():
        for parameter in list(model.parameters())[-2:]:
            parameter.zero_()
    return model


def test_a_model_trained_on_camus_carries_the_datasets_licence(camus_train, tmp_path):
    assert data_licence(describe_source(open_source([str(camus_train), "sim:0-1"]))) == "CC BY-NC-SA 4.0"
    assert data_licence(describe_source(open_source("sim:0-1"))) == "BSD-3-Clause"
    assert data_licence(describe_source([SequenceItem(CamusPairFolder(camus_train)[0])])).startswith("unknown")
    one_patient = tmp_path / "camus"  # links to one patient's files (the data stays in place)
    one_patient.mkdir()
    for path in sorted(camus_train.glob(f"{CamusPairFolder(camus_train).entries[0][0]}_*")):
        (one_patient / path.name).symlink_to(path)
    train_dlir([str(one_patient), "sim:0-1"], tmp_path / "run", scales=16, iterations=1, batch_size=1,
               texture=False, unet=TINY_UNET, device="cpu", progress=False)
    assert read_config(tmp_path / "run" / "model.safetensors")["licence"] == "CC BY-NC-SA 4.0"
    for info in list_models():
        assert info.licence in ("BSD-3-Clause", "CC BY-NC-SA 4.0"), info
        assert (info.licence == "CC BY-NC-SA 4.0") == ("camus" in info.training_data), info


def test_randomised_appearance_keeps_range_and_leaves_unchanged_items_alone():
    rng = np.random.default_rng(0)
    stack = torch.rand(6, 3, 32, 40)
    out = randomise_appearance(stack, rng, probability=0.5)
    assert out.shape == stack.shape and out.min() >= 0 and out.max() <= 1
    changed = [not torch.equal(out[k], stack[k]) for k in range(6)]
    assert 0 < sum(changed) < 6
    assert torch.equal(randomise_appearance(stack, rng, probability=0.0), stack)
