"""The shipped DLIR weights: they load without pickle and register a held-out simulated sequence
better than identity, through register_sequence."""

import json

import numpy as np
import pytest

from EchoRegistrationLib.dlir.checkpoints import read_config
from EchoRegistrationLib.dlir.shipped import SEQUENTIAL_MODEL, SHIPPED_MODEL, shipped_model_path
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.simulation import simulate_sequence


@pytest.mark.parametrize(("name", "size", "mode"), [(SHIPPED_MODEL, 128, "to_reference"),
                                                    (SEQUENTIAL_MODEL, 256, "sequential")])
def test_shipped_models_are_safetensors_with_their_config(name, size, mode):
    folder = shipped_model_path(name)
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20  # a few MB at most
    config = read_config(folder)
    assert config["kind"] == "dlir" and config["architecture"]["working_size"] == size
    assert config["architecture"].get("mode", "to_reference") == mode
    json.dumps(config)  # plain JSON: nothing pickled


@pytest.mark.parametrize("name", [SHIPPED_MODEL, SEQUENTIAL_MODEL])
def test_shipped_models_register_a_held_out_sequence_better_than_identity(name):
    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(128, 128))  # never a training seed
    result = register_sequence(sim.sequence, "dlir", model=shipped_model_path(name))
    error = np.linalg.norm(result.displacement - sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    identity = np.linalg.norm(sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    assert error[-1] < 0.5 * identity[-1], f"ES: {error[-1]:.2f} mm vs identity {identity[-1]:.2f} mm"
    assert result.folding_fraction.max() < 0.001
    assert (result.similarity_after[1:] > result.similarity_before[1:]).all()


def test_the_default_model_beats_the_optimisation_tracker_on_a_held_out_sequence():
    """The issue's bar, on one small held-out case (the benchmark scripts measure it on more):
    0.47 mm at ES against 0.94 mm for the sequential deformable method when this was written (the
    model before the long training stage: 0.62 mm, which this bound refuses)."""
    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(128, 128))

    def es_error(result) -> float:
        return float(np.linalg.norm(result.displacement[-1] - sim.displacement[-1], axis=-1)[sim.myocardium_ed].mean())

    network = es_error(register_sequence(sim.sequence, "dlir"))
    tracker = es_error(register_sequence(sim.sequence, "deformable"))
    assert network < 0.6 * tracker, f"DLIR {network:.2f} mm, deformable {tracker:.2f} mm at ES"
