"""The shipped DLIR weights: they load without pickle and register a held-out simulated sequence
better than identity, through register_sequence; the model catalog finds them by name."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from EchoRegistrationLib.dlir import AffineNet, DLIRModel
from EchoRegistrationLib.dlir.checkpoints import read_config
from EchoRegistrationLib.dlir.networks import RegistrationUNet
from EchoRegistrationLib.dlir.shipped import (CAMUS_MODEL, COST_VOLUME_MODEL, MODELS_DIR, SEQUENTIAL_MODEL,
                                              SHIPPED_MODEL, SIM_MODEL, installed_model_name, list_models,
                                              resolve_model, shipped_model_path)
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.simulation import simulate_sequence


@pytest.mark.parametrize(("name", "size", "mode"), [(SIM_MODEL, 128, "to_reference"),
                                                    (SEQUENTIAL_MODEL, 256, "sequential"),
                                                    (CAMUS_MODEL, 128, "to_reference"),
                                                    (COST_VOLUME_MODEL, 128, "to_reference")])
def test_shipped_models_are_safetensors_with_their_config(name, size, mode):
    folder = shipped_model_path(name)
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20  # a few MB at most
    config = read_config(folder)
    assert config["kind"] == "dlir" and config["architecture"]["working_size"] == size
    assert config["architecture"].get("mode", "to_reference") == mode
    json.dumps(config)  # plain JSON: nothing pickled


@pytest.mark.parametrize("name", [SIM_MODEL, SEQUENTIAL_MODEL, CAMUS_MODEL, COST_VOLUME_MODEL])
def test_shipped_models_register_a_held_out_sequence_better_than_identity(name):
    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(128, 128))  # never a training seed
    result = register_sequence(sim.sequence, "dlir", model=shipped_model_path(name))
    error = np.linalg.norm(result.displacement - sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    identity = np.linalg.norm(sim.displacement, axis=-1)[:, sim.myocardium_ed].mean(axis=1)
    assert error[-1] < 0.5 * identity[-1], f"ES: {error[-1]:.2f} mm vs identity {identity[-1]:.2f} mm"
    assert result.folding_fraction.max() < 0.001
    assert (result.similarity_after[1:] > result.similarity_before[1:]).all()


def test_the_simulator_model_beats_the_optimisation_tracker_on_a_held_out_simulated_sequence():
    """The issue's bar for echoreg-dlir-sim on its own domain, one small held-out case (the benchmark
    scripts measure it on more):
    0.47 mm at ES against 0.94 mm for the sequential deformable method when this was written (the
    model before the long training stage: 0.62 mm, which this bound refuses)."""
    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(128, 128))

    def es_error(result) -> float:
        return float(np.linalg.norm(result.displacement[-1] - sim.displacement[-1], axis=-1)[sim.myocardium_ed].mean())

    network = es_error(register_sequence(sim.sequence, "dlir", model=SIM_MODEL))
    tracker = es_error(register_sequence(sim.sequence, "deformable"))
    assert network < 0.6 * tracker, f"DLIR {network:.2f} mm, deformable {tracker:.2f} mm at ES"


def test_the_catalog_lists_the_shipped_models_with_their_terms():
    models = {info.name: info for info in list_models()}
    assert list(models)[0] == SHIPPED_MODEL  # the default first
    assert SHIPPED_MODEL == CAMUS_MODEL and set(models) == {SIM_MODEL, SEQUENTIAL_MODEL, CAMUS_MODEL, COST_VOLUME_MODEL}
    assert models[COST_VOLUME_MODEL].licence == "CC BY-NC-SA 4.0"
    for info, mode in ((models[SIM_MODEL], "to_reference"), (models[SEQUENTIAL_MODEL], "sequential")):
        assert info.path == MODELS_DIR / info.name and info.mode == mode
        assert info.training_data == ("simulator",) and info.licence == "BSD-3-Clause"
    camus = models[CAMUS_MODEL]  # a model trained on CAMUS carries CAMUS's terms
    assert camus.licence == "CC BY-NC-SA 4.0" and set(camus.training_data) == {"camus", "simulator"}
    architecture = read_config(camus.path)["architecture"]
    # two passes and the fine-grid correction stage, chosen on validation data
    assert architecture["passes"] == 2 and architecture["diffeomorphic"]
    assert camus.correction_rows == architecture["correction"]["working_size"] == 192
    assert models[SIM_MODEL].correction_rows is None
    assert camus.anatomy_rows == architecture["anatomy"]["working_size"] == 160  # its maps guide the refinement
    assert models[SIM_MODEL].anatomy_rows is None


def write_checkpoint(folder: Path, kind: str, **config) -> None:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "model.json").write_text(json.dumps({"kind": kind, **config}))


def test_the_catalog_holds_only_registration_checkpoints(tmp_path):
    camus = [{"source": "camus", "root": "x"}, {"source": "simulator"}]
    write_checkpoint(tmp_path / "a4c", "dlir", data={"training": camus},
                     architecture={"mode": "sequential"})
    write_checkpoint(tmp_path / "b-own", "dlir", licence="CC BY-NC-SA 4.0",
                     architecture={"unet": {"kind": "cost_volume"}, "diffeomorphic": True})
    with_affine = DLIRModel(RegistrationUNet(encoder=(8,), decoder=(8,)), affine=AffineNet())
    write_checkpoint(tmp_path / "c-affine", "dlir", architecture=with_affine.architecture())
    write_checkpoint(tmp_path / "critic", "discriminator")
    write_checkpoint(tmp_path / "shape", "vae")
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "model.safetensors").write_bytes(b"")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"")
    (tmp_path / "broken" / "model.json").write_text("{not json")
    models = list_models(tmp_path)
    assert [m.name for m in models] == ["a4c", "b-own", "c-affine"]
    assert (models[0].mode, models[0].training_data) == ("sequential", ("camus", "simulator"))
    assert models[0].licence == "unknown (see the model card)"  # not only the project's own data
    assert (models[1].mode, models[1].licence) == ("to_reference", "CC BY-NC-SA 4.0")
    assert (models[0].network, models[1].network) == ("unknown", "cost volume, velocity")  # no network recorded
    assert models[2].network == "affine + U-Net, displacement"  # the stage that aligns the frames first is named
    assert list_models(tmp_path / "absent") == []


def test_models_resolve_by_name_or_path(tmp_path):
    assert resolve_model(SEQUENTIAL_MODEL) == MODELS_DIR / SEQUENTIAL_MODEL
    weights = shipped_model_path() / "model.safetensors"
    assert resolve_model(weights) == weights and resolve_model(str(weights)) == weights
    installed = f"installed: {CAMUS_MODEL}, {COST_VOLUME_MODEL}, {SIM_MODEL}, {SEQUENTIAL_MODEL}"
    with pytest.raises(FileNotFoundError, match=installed):
        resolve_model("echoreg-dlir-typo")
    with pytest.raises(FileNotFoundError, match=r"none in .*absent"):
        resolve_model(SHIPPED_MODEL, tmp_path / "absent")
    # A scene saved by another Slicer revision names a shipped model by its old absolute path.
    old = f"/opt/Slicer-5.10.0/lib/Slicer-5.10/qt-scripted-modules/Resources/Models/{SEQUENTIAL_MODEL}"
    assert installed_model_name(old + "/model.safetensors") == SEQUENTIAL_MODEL
    assert installed_model_name(old) == SEQUENTIAL_MODEL
    assert installed_model_name(SHIPPED_MODEL) == SHIPPED_MODEL
    assert installed_model_name("/opt/runs/my-model/model.safetensors") is None


def test_register_sequence_takes_a_shipped_model_by_name():
    """``model="echoreg-dlir-sim-sequential"`` failed with FileNotFoundError (issue 12): a name
    gives exactly what its path gives."""
    sim = simulate_sequence(seed=10_051, n_frames=3, image_size=(64, 64))
    by_name = register_sequence(sim.sequence, "dlir", model=SEQUENTIAL_MODEL, device="cpu")
    by_path = register_sequence(sim.sequence, "dlir", model=shipped_model_path(SEQUENTIAL_MODEL), device="cpu")
    assert np.abs(by_name.displacement[-1]).max() > 0.1  # it moved (mm)
    np.testing.assert_array_equal(by_name.displacement, by_path.displacement)


def test_the_catalog_needs_no_torch():
    """The Slicer panel lists the models before PyTorch is installed."""
    script = ("import sys; sys.modules['torch'] = None\n"
              "from EchoRegistrationLib.dlir import list_models\n"
              "print([m.name for m in list_models()])")
    run = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str([CAMUS_MODEL, COST_VOLUME_MODEL, SIM_MODEL, SEQUENTIAL_MODEL])


def camus_valid_dice(shared_data: Path, model: str, n_pairs: int = 3) -> tuple[float, float, float]:
    """Mean LV / myocardium Dice (model, identity) and the largest folding fraction of the model's
    fields over the first CAMUS valid pairs, ES -> ED and ED -> ES (the moving mask warped onto the
    fixed frame, nearest)."""
    from EchoRegistrationLib.dlir.inference import predict_pair_fields
    from EchoRegistrationLib.io import CamusPairFolder
    from EchoRegistrationLib.spatial import folding_fraction
    from EchoRegistrationLib.spatial.metrics import warped_label_dice

    folder = shared_data / "camus_ed_es" / "valid"
    if not folder.is_dir():
        pytest.skip(f"CAMUS ED/ES pairs not available: {folder} is absent")
    pairs = CamusPairFolder(folder)
    scores, identity, folding = [], [], []
    for k in range(n_pairs):
        seq = pairs[k]
        for fixed, moving in ((0, 1), (1, 0)):
            field = predict_pair_fields(model, seq, [(fixed, moving)], "cpu")
            scores.append(warped_label_dice(seq.label_map(fixed), seq.label_map(moving), field, seq.spacing))
            folding.append(float(folding_fraction(field, seq.spacing)))
            identity.append(warped_label_dice(seq.label_map(fixed), seq.label_map(moving),
                                              0 * field, seq.spacing))
    return float(np.mean(scores)), float(np.mean(identity)), max(folding)


@pytest.mark.parametrize(("name", "bound"), [(SIM_MODEL, 0.72), (CAMUS_MODEL, 0.80)])
def test_shipped_models_align_held_out_camus_pairs(shared_data, name, bound):
    """Real patients never trained on (CAMUS valid, the first three, both directions)."""
    dice, identity, folding = camus_valid_dice(shared_data, str(shipped_model_path(name)))
    assert dice > identity + 0.04 and dice > bound, (dice, identity)
    if name == CAMUS_MODEL:  # integrated as a velocity: no folding on real pairs
        assert folding <= 0.0005, folding


def test_the_default_method_keeps_the_networks_overlap_on_low_resolution_clips(shared_data):
    """CAMUS valid pairs (never trained on) at 112 x 112 px with the pixel size unknown, as another
    scanner's small clips come: the refinement skips the half level there (56 rows, coarser than the
    network's grid). With the former three levels from quarter resolution the first ten pairs lost
    0.012 in mean Dice against the network alone and one pair 0.18 (0.817 -> 0.638); now 0.000 and
    0.018 at most."""
    from benchmarks.benchmark_generalisation import low_resolution_pair
    from EchoRegistrationLib.io import CamusPairFolder
    from EchoRegistrationLib.spatial import field_to_torch
    from EchoRegistrationLib.spatial.metrics import warped_label_dice
    from EchoRegistrationLib.workflow import DEFAULT_REFINE

    folder = shared_data / "camus_ed_es" / "valid"
    if not folder.is_dir():
        pytest.skip(f"CAMUS ED/ES pairs not available: {folder} is absent")
    pairs = CamusPairFolder(folder, views=("4CH",))
    dice: dict[int, list[float]] = {0: [], DEFAULT_REFINE: []}
    identity = []
    for k in range(10):
        seq = low_resolution_pair(pairs[k])
        assert seq.frame_shape == (112, 112) and not seq.spacing_known
        for fixed, moving in ((0, 1), (1, 0)):
            for refine in dice:
                result = register_sequence(seq, "dlir", reference=fixed, refine=refine, device="cpu")
                field = field_to_torch(result.displacement[moving][None])
                dice[refine].append(warped_label_dice(seq.label_map(fixed), seq.label_map(moving), field,
                                                      seq.spacing))
                assert result.folding_fraction.max() <= 0.0005
            identity.append(warped_label_dice(seq.label_map(fixed), seq.label_map(moving), 0 * field, seq.spacing))
            assert result.parameters["refine_iterations"] == [DEFAULT_REFINE // 2]  # full resolution alone
    network, refined = np.array(dice[0]), np.array(dice[DEFAULT_REFINE])
    assert network.mean() > np.mean(identity) + 0.05, (network.mean(), np.mean(identity))
    assert refined.mean() >= network.mean() - 0.005, (refined.mean(), network.mean())
    assert (refined - network).min() >= -0.03, refined - network  # no pair pulled off


def test_bfloat16_on_the_cpu_keeps_the_default_models_fields(monkeypatch):
    """The networks run in bfloat16 on CPUs with AMX (:func:`dlir.inference.mixed_precision`: 1.4x faster
    there, docs/generalisation.md, "Speed on the CPU"). Forced here on any CPU: the default model's fields move by
    hundredths of a millimetre in the myocardium (0.011 mm mean, 0.059 at most when this was written) and
    stay as accurate (0.5465 against 0.5462 mm from the truth); ``amp=False`` keeps float32. Each
    registration records the precision it used."""
    from EchoRegistrationLib.dlir import inference

    sim = simulate_sequence(seed=10_050, n_frames=6, image_size=(256, 220))
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: True)
    mixed = register_sequence(sim.sequence, "dlir", model=CAMUS_MODEL, device="cpu")
    exact = register_sequence(sim.sequence, "dlir", model=CAMUS_MODEL, device="cpu", amp=False)
    assert (mixed.parameters["network_precision"], exact.parameters["network_precision"]) == ("bfloat16", "float32")
    wall = sim.myocardium_ed

    def myocardial_error(displacement: np.ndarray) -> float:
        return float(np.linalg.norm(displacement - sim.displacement, axis=-1)[:, wall].mean())

    moved = np.linalg.norm(mixed.displacement - exact.displacement, axis=-1)[:, wall]
    assert 0 < moved.mean() < 0.03 and moved.max() < 0.2  # 0 would mean bfloat16 never ran
    assert abs(myocardial_error(mixed.displacement) - myocardial_error(exact.displacement)) < 0.01
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: False)  # a CPU without AMX: float32
    assert register_sequence(sim.sequence, "dlir", model=CAMUS_MODEL, device="cpu").parameters[
        "network_precision"] == "float32"


def test_another_network_goes_in_front_of_the_shipped_correction_and_anatomy(tmp_path):
    """scripts/attach_network.py: the result takes the network (its weights, passes and velocity reading) and
    keeps the model's correction stage and anatomy network, weight for weight; its licence is CAMUS's; a network
    of another grid is refused."""
    import torch

    from EchoRegistrationLib.dlir.checkpoints import load_model, save_model
    from EchoRegistrationLib.dlir.networks import registration_network
    from scripts.attach_network import attach_network

    network = DLIRModel(registration_network({"kind": "cost_volume", "widths": [4, 8, 8, 8], "radii": [2, 2, 1],
                                              "estimator": [8, 8]}), working_size=128, diffeomorphic=True)
    save_model(network, tmp_path / "net", licence="BSD-3-Clause")
    attach_network(CAMUS_MODEL, str(tmp_path / "net"), tmp_path / "both")
    both, shipped = load_model(tmp_path / "both"), load_model(shipped_model_path(CAMUS_MODEL))
    assert (both.passes, both.diffeomorphic, type(both.net).__name__) == (1, True, "CostVolumeNet")
    for part in ("correction", "anatomy"):
        kept, original = getattr(both, part).state_dict(), getattr(shipped, part).state_dict()
        assert all(torch.equal(kept[k], original[k]) for k in original)
    assert all(torch.equal(a, b) for a, b in zip(both.net.state_dict().values(), network.net.state_dict().values()))
    assert read_config(tmp_path / "both")["licence"] == "CC BY-NC-SA 4.0"
    save_model(DLIRModel(network.net, working_size=64), tmp_path / "small")
    with pytest.raises(ValueError, match="its network works on 64 rows, the model's on 128"):
        attach_network(CAMUS_MODEL, str(tmp_path / "small"), tmp_path / "refused")
    with pytest.raises(ValueError, match="neither a correction stage nor an anatomy network to keep"):
        attach_network(SIM_MODEL, str(tmp_path / "net"), tmp_path / "refused")
    with pytest.raises(FileExistsError, match="holds a checkpoint already"):
        attach_network(CAMUS_MODEL, str(tmp_path / "net"), tmp_path / "both")
    save_model(network, tmp_path / "other", licence="research only")  # other terms: not CAMUS's alone
    attach_network(CAMUS_MODEL, str(tmp_path / "other"), tmp_path / "both", overwrite=True)
    assert read_config(tmp_path / "both")["licence"] == "unknown (see the model card)"
    assert not any(tmp_path.glob("refused*"))
