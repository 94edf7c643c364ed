"""The simulator's tissue appearance: nominal by default, randomised for training (domain
randomisation), the truth untouched by either."""

import dataclasses

import numpy as np
import pytest

from EchoRegistrationLib.dlir.data import (APPEARANCE_STREAM, SimulatedSequences, open_source, simulate_item,
                                          write_simulated_cache)
from EchoRegistrationLib.sequence import LABEL_LV, LABEL_MYOCARDIUM
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.simulation.appearance import (
    ECHOGENICITY, NOMINAL_APPEARANCE, RANDOM_AXIAL_FWHM, RANDOM_ECHOGENICITY, RANDOM_LATERAL_FWHM,
    RANDOM_TEXTURE_STRENGTH, TissueAppearance, random_appearance)

SMALL = {"n_frames": 3, "image_size": (96, 96), "seed": 4}


def test_random_appearances_lie_in_their_ranges_which_hold_the_nominal_one():
    rng = np.random.default_rng(0)
    drawn = [random_appearance(rng) for _ in range(200)]
    for name, (low, high) in RANDOM_ECHOGENICITY.items():
        values = np.array([a.echogenicity[name] for a in drawn])
        assert low <= ECHOGENICITY[name] <= high
        assert values.min() >= low and values.max() <= high and np.ptp(values) > 0.8 * (high - low)
    assert all(a.echogenicity["myocardium"] == 1.0 for a in drawn)
    for attribute, (low, high) in (("texture_strength", RANDOM_TEXTURE_STRENGTH),
                                   ("axial_fwhm", RANDOM_AXIAL_FWHM), ("lateral_fwhm", RANDOM_LATERAL_FWHM)):
        values = np.array([getattr(a, attribute) for a in drawn])
        assert low <= getattr(NOMINAL_APPEARANCE, attribute) <= high
        assert values.min() >= low and values.max() <= high
    again = random_appearance(np.random.default_rng(0))
    assert again == drawn[0]


def test_appearance_changes_the_images_not_the_truth():
    nominal = simulate_sequence(**SMALL)
    bright_blood = dataclasses.replace(NOMINAL_APPEARANCE, echogenicity={**ECHOGENICITY, "blood": 0.5})
    other = simulate_sequence(appearance=bright_blood, **SMALL)
    np.testing.assert_array_equal(other.displacement, nominal.displacement)
    np.testing.assert_array_equal(other.sequence.labels, nominal.sequence.labels)
    labels = nominal.sequence.label_map(0)
    cavity, wall = labels == LABEL_LV, labels == LABEL_MYOCARDIUM
    before, after = nominal.sequence.frames[0], other.sequence.frames[0]
    # blood 0.015 -> 0.5 of myocardium: +30 dB in the cavity (50 dB over 255 grey levels), the wall unchanged
    assert np.median(after[cavity]) - np.median(before[cavity]) > 60
    assert abs(np.median(after[wall]) - np.median(before[wall])) < 10
    assert other.sequence.metadata["parameters"]["appearance"]["echogenicity"]["blood"] == 0.5


def test_the_psf_width_is_used_and_recorded():
    wide = dataclasses.replace(NOMINAL_APPEARANCE, lateral_fwhm=np.deg2rad(4.0))
    parameters = simulate_sequence(appearance=wide, **SMALL).sequence.metadata["parameters"]
    assert parameters["psf_lateral_fwhm_deg"] == pytest.approx(4.0)
    assert parameters["appearance"]["lateral_fwhm_deg"] == pytest.approx(4.0)


def test_invalid_appearances_are_refused():
    with pytest.raises(ValueError, match="lacks"):
        TissueAppearance(echogenicity={"blood": 0.1})
    with pytest.raises(ValueError, match=r"unknown \['bone'\]"):
        TissueAppearance(echogenicity={**ECHOGENICITY, "bone": 3.0})
    with pytest.raises(TypeError):  # the shared nominal appearance is read-only
        NOMINAL_APPEARANCE.echogenicity["blood"] = 1.0
    with pytest.raises(ValueError, match="PSF"):
        dataclasses.replace(NOMINAL_APPEARANCE, axial_fwhm=0.0)
    with pytest.raises(ValueError, match="appearance must be one of"):
        simulate_item(0, appearance="random")
    with pytest.raises(ValueError, match="cached appearance must be one of"):  # before simulating anything
        write_simulated_cache("never-written", [0], appearance=NOMINAL_APPEARANCE, progress=False)


def test_randomised_training_source_and_its_cache(tmp_path):
    source = open_source(f"sim-randomised:4-6:{tmp_path}")
    assert isinstance(source, SimulatedSequences) and source.describe()["appearance"] == "randomised"
    options = {"n_frames": 2, "image_size": (48, 48)}
    source.options.update(options)
    item = source[0]
    assert (tmp_path / "simulated_randomised_0000004.npz").exists()
    assert not (tmp_path / "simulated_0000004.npz").exists()
    again = simulate_item(4, appearance="randomised", **options)
    nominal = simulate_item(4, **options)
    np.testing.assert_allclose(item.sequence.frames, again.sequence.frames, atol=0.13)  # float16 cache
    drawn = random_appearance(np.random.default_rng((APPEARANCE_STREAM, 4))).describe()
    assert again.sequence.metadata["parameters"]["appearance"] == drawn
    assert np.abs(again.sequence.frames - nominal.sequence.frames).mean() > 1
    np.testing.assert_allclose(again.displacement, nominal.displacement)
    assert open_source("sim:4-6").describe()["appearance"] == "nominal"


def test_cli_simulates_randomised_sequences_into_a_cache(tmp_path):
    from EchoRegistrationLib.cli import main

    arguments = ["train", "simulate", "--seeds", "4-5", "-o", str(tmp_path), "--frames", "2", "--size", "48"]
    assert main([*arguments, "--appearance", "randomised"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["simulated_randomised_0000004.npz"]
    cached = SimulatedSequences([4], n_frames=2, image_size=(48, 48), appearance="randomised", cache=tmp_path)[0]
    fresh = simulate_item(4, n_frames=2, image_size=(48, 48), appearance="randomised")
    np.testing.assert_allclose(cached.sequence.frames, fresh.sequence.frames, atol=0.13)
