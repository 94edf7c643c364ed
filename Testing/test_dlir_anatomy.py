"""The anatomy network that guides the DLIR refinement (EchoRegistrationLib.dlir.anatomy): its
checkpoint round trip, a small training run on CAMUS pairs whose loss falls and Dice rises, and the
shipped model's network and refinement on CAMUS valid pairs never trained on (skipped without
``../shared/data``)."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir import load_model, save_model
from EchoRegistrationLib.dlir.anatomy import ANATOMY_LABELS, AnatomyNet
from EchoRegistrationLib.dlir.model import DLIRModel
from EchoRegistrationLib.dlir.networks import RegistrationUNet
from EchoRegistrationLib.sequence import EchoModelWarning

TINY_UNET = {"stem": 8, "encoder": [16, 16, 16], "decoder": [16, 16, 8]}


def test_a_model_keeps_its_anatomy_network_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = DLIRModel(RegistrationUNet(**TINY_UNET), working_size=32, anatomy=AnatomyNet.new(48, **TINY_UNET))
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.anatomy is not None and loaded.anatomy.working_size == 48
    frames = torch.rand(3, 1, 70, 90) * 200
    with torch.no_grad():
        maps = model.anatomy.probabilities(frames, (0.4, 0.5))
        again = loaded.anatomy.probabilities(frames, (0.4, 0.5))
    assert maps.shape == (3, len(ANATOMY_LABELS), 70, 90)  # background left out, the input's own grid
    assert torch.equal(maps, again)
    assert maps.min() >= 0 and maps.sum(1).max() <= 1 + 1e-5
    assert load_model(tmp_path).architecture() == model.architecture()
    with pytest.raises(ValueError, match=r"shape \(T, 1, H, W\), got \(3, 70, 90\)"):
        model.anatomy.probabilities(frames[:, 0], (0.4, 0.5))
    with pytest.raises(TypeError, match="torch.Tensor .* got ndarray"):
        model.anatomy.probabilities(frames.numpy(), (0.4, 0.5))


def test_an_anatomy_network_needs_one_input_and_a_class_per_output():
    with pytest.raises(ValueError, match=r"takes 1 channel and gives 4 at full resolution, got 2 -> 2 at stride 1"):
        AnatomyNet(RegistrationUNet(2, 2, **TINY_UNET))


@pytest.fixture(scope="module")
def camus(shared_data):
    folder = shared_data / "camus_ed_es"
    if not (folder / "train").is_dir() or not (folder / "valid").is_dir():
        pytest.skip(f"CAMUS ED/ES pairs not available: {folder} is absent or incomplete")
    return folder


def test_training_on_a_few_camus_pairs_lowers_the_loss_and_raises_the_dice(camus, tmp_path):
    from EchoRegistrationLib.dlir import read_config
    from EchoRegistrationLib.dlir.anatomy_training import train_anatomy
    from EchoRegistrationLib.dlir.data import SequenceItem
    from EchoRegistrationLib.io import CamusPairFolder

    items = [SequenceItem(CamusPairFolder(camus / "train")[k]) for k in range(4)]
    base = DLIRModel(RegistrationUNet(**TINY_UNET), working_size=32)
    weak = r"segments the validation frames' LV at Dice 0\.\d+, under 0\.85"
    with pytest.warns(EchoModelWarning, match=weak) as caught:
        history = train_anatomy(items, tmp_path / "run", base=base, validation=items, size=48, iterations=60,
                                batch_size=4, learning_rate=5e-3, randomise=0.0, unet=TINY_UNET,
                                iterations_per_epoch=20, device="cpu", progress=False)
    assert f"{history[-1]['val_dice_lv']:.3f}" in str(caught[0].message)  # 60 steps: barely trained, and told so
    losses = [row["loss"] for row in history]
    lv = [row["val_dice_lv"] for row in history]
    assert losses[-1] < 0.8 * losses[0], losses  # 1.71 -> 1.19
    assert lv[-1] > lv[0] + 0.3 and lv[-1] > 0.5, lv  # 0.00 -> 0.64
    config = read_config(tmp_path / "run")
    assert config["training"]["size"] == 48 and config["base_model"] is None  # a base given as a model
    assert load_model(tmp_path / "run").anatomy.working_size == 48


def test_only_a_weak_validated_anatomy_network_is_warned_about():
    from EchoRegistrationLib.dlir.anatomy_training import USEFUL_ANATOMY_DICE_LV, anatomy_dice_warning

    assert anatomy_dice_warning([]) is None and anatomy_dice_warning([{"loss": 1.0}]) is None  # nothing scored
    assert anatomy_dice_warning([{"val_dice_lv": 0.5}, {"val_dice_lv": USEFUL_ANATOMY_DICE_LV}]) is None
    assert anatomy_dice_warning([{"val_dice_lv": float("nan")}]) is None  # no validation frame shows an LV
    assert anatomy_dice_warning([{"val_dice_lv": 0.5}, {"loss": 1.0}]) is None  # resumed without validation
    message = anatomy_dice_warning([{"val_dice_lv": 0.9}, {"val_dice_lv": 0.8331}])  # the last epoch counts
    assert message is not None and "Dice 0.833, under 0.85" in message and "10000 steps" in message


@pytest.fixture(scope="module")
def shipped():
    from EchoRegistrationLib.dlir.shipped import CAMUS_MODEL, shipped_model_path

    model = load_model(shipped_model_path(CAMUS_MODEL))
    if model.anatomy is None:
        pytest.fail(f"{CAMUS_MODEL} has no anatomy network")
    return model


def test_the_shipped_anatomy_network_segments_held_out_camus_patients(camus, shipped):
    """CAMUS valid (never trained on), the first five patients' ED and ES frames: LV 0.938, myocardium
    0.826, LA 0.903 mean Dice when it was installed (all 50 patients: 0.910, 0.788, 0.888; the anatomy
    network trained 4000 steps instead of 10000 scored 0.916, 0.800, 0.891 on these five)."""
    from EchoRegistrationLib.dlir.anatomy_training import anatomy_dice
    from EchoRegistrationLib.dlir.data import SequenceItem
    from EchoRegistrationLib.io import CamusPairFolder

    pairs = CamusPairFolder(camus / "valid", views=("4CH",))
    scores = anatomy_dice(shipped.anatomy, [SequenceItem(pairs[k]) for k in range(5)], "cpu")
    assert scores["dice_lv"] > 0.92 and scores["dice_myocardium"] > 0.80 and scores["dice_la"] > 0.88, scores


def test_the_anatomy_maps_make_the_refinement_gain_overlap_on_held_out_patients(camus, shipped):
    """CAMUS valid pairs, both directions: the default refinement (24 steps, anatomy maps weighted
    :data:`REFINE_ANATOMY_WEIGHT`) against the network alone and against the same refinement on
    the images alone (what shipped before). On the first eight patients, mean Dice of LV and
    myocardium: 0.898 (network), 0.897 (images alone), 0.907 (images and maps) when it was installed
    (0.902 with the anatomy network trained 4000 steps instead of 10000)."""
    from EchoRegistrationLib.registration import register_sequence
    from EchoRegistrationLib.registration.tracking import REFINE_ANATOMY_WEIGHT
    from EchoRegistrationLib.io import CamusPairFolder
    from EchoRegistrationLib.spatial import field_to_torch
    from EchoRegistrationLib.spatial.metrics import warped_label_dice
    from EchoRegistrationLib.workflow import DEFAULT_REFINE

    pairs = CamusPairFolder(camus / "valid", views=("4CH",))
    runs = {"network": {"refine": 0}, "images": {"refine": DEFAULT_REFINE, "feature_weight": 0.0},
            "anatomy": {"refine": DEFAULT_REFINE}}
    dice: dict[str, list[float]] = {name: [] for name in runs}
    for k in range(8):
        seq = pairs[k]
        for fixed, moving in ((0, 1), (1, 0)):
            for name, settings in runs.items():
                result = register_sequence(seq, "dlir", model=shipped, reference=fixed, device="cpu", **settings)
                field = field_to_torch(result.displacement[moving][None])
                dice[name].append(warped_label_dice(seq.label_map(fixed), seq.label_map(moving), field,
                                                    seq.spacing))
                assert result.folding_fraction.max() <= 0.0005
            assert result.parameters["refine_anatomy_weight"] == REFINE_ANATOMY_WEIGHT
    mean = {name: np.mean(values) for name, values in dice.items()}
    assert mean["anatomy"] > mean["network"] + 0.006 and mean["anatomy"] > mean["images"] + 0.006, mean


def test_the_run_summary_says_whether_the_refinement_compared_the_anatomy_maps():
    from EchoRegistrationLib.cli.common import describe_model_use

    run = {"model": "m", "licence": "L", "refine": 40, "refine_iterations": [20, 10]}
    assert describe_model_use({**run, "refine_anatomy_weight": 0.1}) == (
        "model m (licence: L; refine 40: up to 20 + 10 optimisation steps, coarse to fine, on the images and the "
        "model's anatomy maps (weight 0.1))")
    assert describe_model_use({**run, "refine_anatomy_weight": None}) == (
        "model m (licence: L; refine 40: up to 20 + 10 optimisation steps, coarse to fine, on the images alone "
        "(the model has no anatomy network))")
    assert describe_model_use({**run, "refine_anatomy_weight": 0.0}) == (  # the maps turned off
        "model m (licence: L; refine 40: up to 20 + 10 optimisation steps, coarse to fine, on the images alone)")
    assert describe_model_use({"model": "m", "licence": "L", "refine": 3, "refine_iterations": [1]}) == (
        "model m (licence: L; refine 3: up to 1 optimisation step, at full resolution)")
    assert describe_model_use({"model": "m", "licence": "L", "refine": 40}) == "model m (licence: L; refine 40)"


@pytest.mark.parametrize("view, refine, warned", [("2CH", 3, True), ("4CH", 3, False), ("A4C", 3, False),
                                                  (None, 3, False), ("2CH", 0, False)])
def test_the_anatomy_maps_on_a_view_they_never_learnt_are_named(view, refine, warned):
    """The anatomy network learnt A4C frames only: a refinement that compared its maps on a known other
    view (CAMUS "2CH") says so among the warnings; A4C, an unknown view and the network alone do not."""
    from EchoRegistrationLib.registration import register_sequence
    from EchoRegistrationLib.sequence import EchoSequence

    torch.manual_seed(0)
    model = DLIRModel(RegistrationUNet(**TINY_UNET), working_size=32, anatomy=AnatomyNet.new(48, **TINY_UNET))
    frames = np.random.default_rng(0).uniform(0, 200, (2, 48, 40)).astype(np.float32)
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.array([0.0, 0.04]),
                       metadata={} if view is None else {"view": view})
    result = register_sequence(seq, "dlir", model=model, refine=refine, anchor=0)
    named = [line for line in result.warnings if "learnt apical four-chamber (A4C) frames only" in line]
    assert named == ([f"the refinement compared anatomy maps from a network that learnt apical four-chamber (A4C) "
                      f"frames only, on this {view} view: check the warped frames (--refine 0: the network "
                      f"alone)"] if warned else [])


@pytest.mark.parametrize("apical_view, warned", [("A2C", True), ("A4C", False), (None, False)])
def test_the_view_a_user_gives_is_the_one_the_warning_names(tmp_path, apical_view, warned):
    """An input that records no view (a NIfTI cine) takes the user's ``apical_view`` (--apical-view)."""
    from EchoRegistrationLib.sequence import EchoSequence
    from EchoRegistrationLib.workflow import WorkflowSettings, register

    torch.manual_seed(0)
    save_model(DLIRModel(RegistrationUNet(**TINY_UNET), working_size=32, anatomy=AnatomyNet.new(48, **TINY_UNET)),
               tmp_path / "model")
    frames = np.random.default_rng(0).uniform(0, 200, (2, 48, 40)).astype(np.float32)
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.array([0.0, 0.04]))
    settings = WorkflowSettings(method="dlir", model=str(tmp_path / "model"), refine=3, anchor=0,
                                apical_view=apical_view)
    named = [line for line in register(seq, settings).warnings if "(A4C) frames only, on this A2C view" in line]
    assert len(named) == int(warned)
    assert "view" not in seq.metadata  # the caller's sequence is left as it was


def test_the_command_line_trains_the_shipped_recipe_by_default():
    """`echoreg train anatomy` writes the recipe's steps and grid out (the command line does not import
    torch): they must be the library's."""
    from EchoRegistrationLib.cli import build_parser
    from EchoRegistrationLib.dlir.anatomy import DEFAULT_ANATOMY_SIZE
    from EchoRegistrationLib.dlir.anatomy_training import ANATOMY_ITERATIONS

    args = build_parser().parse_args(["train", "anatomy", "--data", "x", "--base", "m", "-o", "out"])
    assert (args.iterations, args.size) == (ANATOMY_ITERATIONS, DEFAULT_ANATOMY_SIZE) == (10000, 160)
