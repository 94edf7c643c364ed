"""The shipped DLIR weights: they load without pickle and register a held-out simulated sequence
better than identity, through register_sequence."""

import json

import numpy as np

from EchoRegistrationLib.dlir.checkpoints import read_config
from EchoRegistrationLib.dlir.shipped import shipped_model_path
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.simulation import simulate_sequence


def test_shipped_model_is_safetensors_with_its_config():
    folder = shipped_model_path()
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20  # a few MB at most
    config = read_config(folder)
    assert config["kind"] == "dlir"
    json.dumps(config)  # plain JSON: nothing pickled


def test_shipped_model_registers_a_held_out_sequence_better_than_identity():
    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(128, 128))  # never a training seed
    result = register_sequence(sim.sequence, "dlir")
    error = np.linalg.norm(result.displacement - sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    identity = np.linalg.norm(sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    assert error[-1] < 0.5 * identity[-1], f"ES: {error[-1]:.2f} mm vs identity {identity[-1]:.2f} mm"
    assert result.folding_fraction.max() < 0.001
    assert (result.similarity_after[1:] > result.similarity_before[1:]).all()
