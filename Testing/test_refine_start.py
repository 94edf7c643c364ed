"""Where the DLIR refinement starts (registration.tracking.REFINE_STARTS): the direct start, the chained start
and the better of the two by the images' match, on a sequence whose true motion is known."""

import numpy as np
import pytest
import torch

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.dlir.inference import predict_pair_fields
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.registration.pairwise import image_mismatch
from EchoRegistrationLib.registration.tracking import REFINE_STARTS, chain_hops
from EchoRegistrationLib.spatial import field_to_torch
from test_dlir import constant_output, tiny_model

SPACING = (0.5, 0.5)


def drifting_sequence(step_mm: np.ndarray, n_frames: int = 8, size: int = 64, seed: int = 0) -> EchoSequence:
    """Smooth random texture (Gaussian blobs, drawn over a wider area than the image) moving by ``step_mm``
    (x, y) more at every frame: a reference point p is at p + t * step in frame t (project convention), so the
    true field of frame t is t * step everywhere. Each frame is the texture evaluated at its place: no
    interpolation, nothing smeared in at the edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    centres = rng.uniform(-size / 2, 1.5 * size, (400, 2))
    weights = rng.random(400)
    step_px = np.asarray(step_mm, np.float64) / np.asarray(SPACING)
    frames = [sum(w * np.exp(-((x - t * step_px[0] - cx) ** 2 + (y - t * step_px[1] - cy) ** 2) / 12.0)
                  for w, (cx, cy) in zip(weights, centres)) for t in range(n_frames)]
    return EchoSequence((200 * np.stack(frames)).astype(np.float32), SPACING, ed_index=0, es_index=n_frames - 1)


@pytest.fixture(scope="module")
def stepping():
    """A network that predicts one constant field c for any pair, and a sequence that moves by c at every
    frame: the network's step between neighbours is exact, its field of a frame k steps away is k times short
    of it (the direct start), and chaining its steps gives the truth (the chained start)."""
    height = 63 * SPACING[1]  # mm: the network's unit is percent of the field of view's height
    model = constant_output(tiny_model(), 100 * 1.0 / height, 100 * 0.5 / height)
    probe = drifting_sequence(np.zeros(2), n_frames=2)
    step = predict_pair_fields(model, probe, [(0, 1)], "cpu")[0].mean((1, 2)).numpy()
    np.testing.assert_allclose(step, (1.0, 0.5), atol=1e-4)  # mm per frame: 7.8 mm by the last frame
    return model, step, drifting_sequence(step)


def errors(result, step: np.ndarray) -> np.ndarray:
    """(T,) mean end-point error (mm) of each frame's field against t * step, away from the image edges."""
    truth = np.arange(result.displacement.shape[0])[:, None, None, None] * step
    return np.linalg.norm(result.displacement - truth, axis=-1)[:, 8:-8, 8:-8].mean((1, 2))


def test_the_chained_start_reaches_motion_the_direct_start_cannot_and_best_keeps_it(stepping):
    model, step, seq = stepping
    runs = {start: register_sequence(seq, "dlir", model=model, refine=2, refine_start=start, device="cpu")
            for start in REFINE_STARTS}
    direct, chained = errors(runs["direct"], step), errors(runs["chained"], step)
    # the direct start of the last frame is 2 steps (through the systole anchor, frame 4) against 7: one
    # refinement step (refine 2) does not go the rest of the way. The chained start is the truth, and the
    # refinement keeps it to within its first Adam step (which moves every control point by about the step
    # size wherever the match is not exact to the bit: 0.15-0.2 mm here, 5.5 mm for the direct start)
    assert direct[-1] > 3 * np.linalg.norm(step) and chained.max() < 0.3, (direct, chained)
    assert np.array_equal(runs["best"].displacement, runs["chained"].displacement)
    assert [runs[s].parameters["refine_start_used"] for s in REFINE_STARTS] == ["chained", "direct", "chained"]
    assert [runs[s].parameters["refine_start"] for s in REFINE_STARTS] == list(REFINE_STARTS)
    # the choice is the images' own measure: the chained fields match the reference better
    frames, fields = torch.from_numpy(seq.frames)[:, None], {s: field_to_torch(runs[s].displacement) for s in runs}
    mismatch = {s: float(image_mismatch(frames[:1], frames[1:], fields[s][1:], SPACING).mean()) for s in fields}
    assert mismatch["chained"] < 0.2 * mismatch["direct"], mismatch


def test_two_frames_have_nothing_to_chain_and_refine_once(stepping):
    model, step, seq = stepping
    pair = seq.subsequence([0, 1])
    done = []
    best = register_sequence(pair, "dlir", model=model, refine=2, device="cpu",
                             progress=lambda k, total: done.append((k, total)))
    direct = register_sequence(pair, "dlir", model=model, refine=2, refine_start="direct", device="cpu")
    assert best.parameters["refine_start_used"] == "direct" and done[-1] == (1, 1)
    assert np.array_equal(best.displacement, direct.displacement)


def test_progress_counts_both_starts_and_an_unknown_start_is_refused(stepping):
    model, _, seq = stepping
    done = []
    register_sequence(seq, "dlir", model=model, refine=2, device="cpu",
                      progress=lambda k, total: done.append((k, total)))
    assert done[0] == (0, 14) and done[-1] == (14, 14) and all(a[0] <= b[0] for a, b in zip(done, done[1:]))
    with pytest.raises(ValueError, match="refine_start must be one of"):
        register_sequence(seq, "dlir", model=model, refine=2, refine_start="nearest", device="cpu")


def test_chain_hops_step_outwards_from_the_reference_on_both_sides():
    assert chain_hops([(3, 1), (3, 2), (3, 4), (3, 6)]) == [(2, 1), (3, 2), (3, 4), (4, 6)]  # frame 5 skipped
    assert chain_hops([(0, 1)]) == [] and chain_hops([(2, 1), (2, 3)]) == []  # only the reference's neighbours
    assert chain_hops([(0, 1), (1, 2)]) == []  # sequential pairs: more than one fixed frame


def test_chain_hops_go_between_key_frames_at_least_the_key_time_apart():
    """At 33 frames/s (0.03 s apart) the key frames (CHAIN_KEY_SECONDS, 0.05 s) are every second frame outwards
    from the reference on each side, and each other frame hops from the last key frame before it; frames that
    far apart (0.06 s) or without times are all key frames; frames all within the key time of the reference
    have nothing to chain."""
    from EchoRegistrationLib.registration.tracking import CHAIN_KEY_SECONDS

    assert CHAIN_KEY_SECONDS == 0.05
    pairs = [(3, m) for m in range(10) if m != 3]
    assert chain_hops(pairs, 0.03 * np.arange(10)) == [(1, 0), (3, 1), (3, 2), (3, 4), (3, 5), (5, 6), (5, 7),
                                                         (7, 8), (7, 9)]
    every = [(1, 0), (2, 1), (3, 2), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9)]
    assert chain_hops(pairs, 0.06 * np.arange(10)) == chain_hops(pairs) == every
    assert chain_hops(pairs, 0.03 * np.arange(10), key_seconds=0.09) == [
        (3, 0), (3, 1), (3, 2), (3, 4), (3, 5), (3, 6), (6, 7), (6, 8), (6, 9)]
    assert chain_hops([(0, 1), (0, 2)], [0.0, 0.02, 0.04]) == []  # both within 0.05 s of the reference


def test_the_quick_look_refines_the_whole_runs_way_from_the_start_it_can_choose(stepping, tmp_path):
    """workflow.register_one_frame: with "chained" it registers every frame from the reference to the one looked
    at, as the whole run's chain does, and gives its field; with the default "best" it refines the frame from the
    direct start (a frame alone cannot choose as the whole run does, on all its frames), and says so."""
    from EchoRegistrationLib.dlir.checkpoints import save_model
    from EchoRegistrationLib.workflow import WorkflowSettings, analyse, describe_registration, register_one_frame

    model, step, seq = stepping
    save_model(model, tmp_path / "model")
    for start in ("chained", "direct"):
        settings = WorkflowSettings(model=str(tmp_path / "model"), refine=2, device="cpu",
                                    options={"refine_start": start})
        whole = analyse(seq, settings, None).registration
        one = register_one_frame(seq, 6, settings)
        assert whole.parameters["refine_start_used"] == one.parameters["refine_start_used"] == start
        assert np.abs(one.displacement - whole.displacement[6]).max() < 1e-3
        assert one.description == describe_registration(whole.method, whole.parameters)
    assert "(chained start: through every frame from the reference)" in \
        register_one_frame(seq, 6, WorkflowSettings(model=str(tmp_path / "model"), refine=2, device="cpu",
                                                    options={"refine_start": "chained"})).description
    quick = register_one_frame(seq, 6, WorkflowSettings(model=str(tmp_path / "model"), refine=2, device="cpu"))
    assert (quick.parameters["refine_start"], quick.parameters["refine_start_used"]) == ("direct", "direct")
    assert np.abs(quick.displacement - whole.displacement[6]).max() < 1e-3  # the direct start's whole run


def test_the_command_line_offers_the_starts_for_a_refined_dlir_run_only():
    import argparse

    from EchoRegistrationLib.cli.common import add_registration_options, settings_from_args
    from EchoRegistrationLib.sequence import EchoDataError

    parser = argparse.ArgumentParser()
    add_registration_options(parser)
    action = next(a for a in parser._actions if a.dest == "refine_start")
    assert tuple(action.choices) == REFINE_STARTS  # written out there (the module imports no torch)
    assert settings_from_args(parser.parse_args(["--refine-start", "direct"])).arguments()["refine_start"] == "direct"
    assert "refine_start" not in settings_from_args(parser.parse_args([])).arguments()  # register_sequence's default
    for flags, named in ((["--method", "deformable", "--refine-start", "best"], "--method"),
                         (["--refine", "0", "--refine-start", "chained"], "--refine-start")):
        with pytest.raises(EchoDataError, match=named):
            settings_from_args(parser.parse_args(flags))


def test_a_batch_records_the_start_and_one_begun_before_it_is_not_resumed_with_the_new_default(tmp_path):
    """batch.json records the refinement's start resolved ("best" whether given or not); a batch begun before
    the two starts (no record of one: it refined from the direct start) is refused with the new default, so
    that one cohort table never mixes the two, and resumed with --refine-start direct."""
    import json

    from EchoRegistrationLib.batch.runner import _check_settings, settings_record
    from EchoRegistrationLib.sequence import EchoDataError
    from EchoRegistrationLib.workflow import WorkflowSettings

    default = settings_record(WorkflowSettings())
    assert default["refine_start"] == "best" and "refine_start" not in default["options"]
    assert settings_record(WorkflowSettings(options={"refine_start": "best"})) == default
    assert settings_record(WorkflowSettings(options={"refine_start": "direct"}))["refine_start"] == "direct"
    for settings in (WorkflowSettings(method="deformable"), WorkflowSettings(refine=0),
                     WorkflowSettings(mode="sequential")):
        assert settings_record(settings)["refine_start"] is None  # no refinement to the reference: no start
    (tmp_path / "batch.json").write_text(json.dumps({k: v for k, v in default.items()
                                                     if k not in ("refine_start", "refine_chain_level",
                                                                  "refine_chain_key_seconds")}))
    with pytest.raises(EchoDataError, match=r"other settings \(refine_chain_key_seconds None -> 0.05; "
                                            r"refine_chain_level None -> 'first'; "
                                            r"refine_start 'direct' -> 'best'\)"):
        _check_settings(WorkflowSettings(), tmp_path)
    _check_settings(WorkflowSettings(options={"refine_start": "direct"}), tmp_path)
    # a batch begun with both starts refined at every level (the eighteenth session) is not resumed with the
    # starts compared after the first level: its chained studies would differ
    assert (default["refine_chain_level"], settings_record(WorkflowSettings(options={"refine_start": "direct"}))
            ["refine_chain_level"]) == ("first", None)
    (tmp_path / "batch.json").write_text(json.dumps({k: v for k, v in default.items() if k != "refine_chain_level"}))
    with pytest.raises(EchoDataError, match=r"begun by an earlier version.* cannot resume it: write into a new"):
        _check_settings(WorkflowSettings(), tmp_path)


def batch_begun_without(key: str, folder, **settings) -> None:
    """``folder/batch.json`` as an earlier version wrote it for the ``settings`` (WorkflowSettings keywords): this
    version's record without ``key``, which that version did not record."""
    import json

    from EchoRegistrationLib.batch.runner import settings_record
    from EchoRegistrationLib.workflow import WorkflowSettings

    record = settings_record(WorkflowSettings(**settings))
    (folder / "batch.json").write_text(json.dumps({k: v for k, v in record.items() if k != key}))


def refused_on_resume(key: str, folder, options_tried, message: str) -> None:
    """A batch begun by an earlier version without ``key`` (:func:`batch_begun_without`) with each of the
    ``options_tried`` is refused on resume with the same options, the error matching ``message``."""
    from EchoRegistrationLib.batch.runner import _check_settings
    from EchoRegistrationLib.sequence import EchoDataError
    from EchoRegistrationLib.workflow import WorkflowSettings

    for options in options_tried:
        batch_begun_without(key, folder, options=options)
        with pytest.raises(EchoDataError, match=message):
            _check_settings(WorkflowSettings(options=options), folder)


def test_a_batch_records_the_refinements_step_sizes_and_one_begun_before_them_is_refused(tmp_path):
    """batch.json records the refinement's step sizes per level (registration.tracking.REFINE_LEARNING_RATES for a
    DLIR refinement whose options do not set them: one per level where the settings fix the levels, else the
    rule); a batch begun before them (0.5 pixel at every level) is refused with a message that says so, with any
    start, unless its refinement has one level (the same steps then) or its options set the step."""
    import json

    from EchoRegistrationLib.batch.runner import _check_settings, settings_record
    from EchoRegistrationLib.registration.tracking import REFINE_LEARNING_RATES
    from EchoRegistrationLib.sequence import EchoDataError
    from EchoRegistrationLib.workflow import WorkflowSettings

    def record(**kwargs):
        return settings_record(WorkflowSettings(**kwargs))["refine_learning_rates"]

    assert record() == list(REFINE_LEARNING_RATES) == [0.5, 0.25]  # two levels or one, by the frames' size
    assert record(refine=3) == [0.5] and record(options={"levels": 3, "iterations": (12, 12, 6)}) == [0.5, 0.5, 0.25]
    assert record(method="deformable") is record(refine=0) is record(options={"learning_rate": 0.5}) is None

    def begun_before(**kwargs):  # batch.json as the nineteenth session wrote it
        batch_begun_without("refine_learning_rates", tmp_path, **kwargs)

    refused_on_resume("refine_learning_rates", tmp_path, ({}, {"refine_start": "direct"}),
                      r"earlier version, whose refinement took steps of 0.5 pixel at every level \(this version takes "
                      r"0.25 at the full level of two\); it cannot be resumed: write into a new folder")
    with pytest.raises(EchoDataError, match="it cannot be resumed"):  # nor with other settings
        _check_settings(WorkflowSettings(refine=0), tmp_path)
    for kwargs in ({"refine": 3}, {"options": {"learning_rate": 0.5}}, {"method": "deformable"}):
        begun_before(**kwargs)
        _check_settings(WorkflowSettings(**kwargs), tmp_path)  # the same steps as then: resumed
        with pytest.raises(EchoDataError, match=r"began with other settings \(.*resume it with its settings"):
            _check_settings(WorkflowSettings(), tmp_path)  # resumable with its own settings: the usual message
    (tmp_path / "batch.json").write_text(json.dumps(settings_record(WorkflowSettings())))
    _check_settings(WorkflowSettings(), tmp_path)  # this version's own batch resumes


def test_the_chained_start_composes_each_step_after_the_previous_frames_field_on_both_sides():
    """_chained_fields with exact network steps and no refinement step: frame m's start is the previous frame's
    field followed by the step previous -> m (spatial.compose, the project convention), on both sides of a
    reference in the middle and across a frame left out (no signal). Each frame moves by its own affine map
    (rotation and unequal scaling, which do not commute), so composing in the other order, a step taken in
    the other direction or the wrong previous frame is millimetres off."""
    from EchoRegistrationLib.registration.tracking import _chained_fields, _refinement_options
    from EchoRegistrationLib.spatial import affine_to_displacement

    shape, reference, n_frames = (64, 64), 4, 9

    def motion(t: int) -> torch.Tensor:
        """(1, 3, 3): where frame t shows a reference point (about the image centre)."""
        k = t - reference
        angle, sx, sy = np.deg2rad(2.0 * k), 1 + 0.02 * k, 1 - 0.015 * k
        return torch.tensor([[[np.cos(angle) * sx, -np.sin(angle) * sy, 0.5 * k],
                              [np.sin(angle) * sx, np.cos(angle) * sy, -0.25 * k], [0, 0, 1]]], dtype=torch.float32)

    pairs = [(reference, m) for m in range(n_frames) if m not in (reference, 6)]  # frame 6: no signal
    frames = torch.rand(n_frames, 1, *shape)
    options = _refinement_options(2, shape[0], tiny_model(), {"levels": 1, "iterations": (0,)})
    truth = torch.cat([affine_to_displacement(motion(m), shape, SPACING) for _, m in pairs])
    # every frame (unknown times), and key frames 0.05 s apart at 33 frames/s (4; 2, 0 and 7; frame 6 left out)
    for times, expected in ((None, [(1, 0), (2, 1), (3, 2), (4, 3), (4, 5), (5, 7), (7, 8)]),
                            (0.03 * np.arange(n_frames), [(2, 0), (2, 1), (4, 2), (4, 3), (4, 5), (4, 7), (7, 8)])):
        hops = chain_hops(pairs, times)
        assert hops == expected
        steps = torch.cat([affine_to_displacement(motion(m) @ torch.linalg.inv(motion(p)), shape, SPACING)
                           for p, m in hops])
        starts, chained = _chained_fields(SPACING, frames, pairs, hops, steps, None, options, None, None, None)
        assert torch.equal(starts, chained)  # no step: each start is its frame's field
        error = (chained - truth).norm(dim=1)[:, 12:-12, 12:-12]  # where no point leaves the grid
        assert float(error.max()) < 1e-3, error.amax((1, 2))
        assert float((truth - steps).norm(dim=1)[:, 12:-12, 12:-12].amax()) > 1.0  # the steps alone are far off


def test_the_choice_is_the_same_in_chunks_of_any_size(stepping):
    """The two starts' mismatch is computed chunk by chunk (``chunk_size`` pairs at a time, as the refinement):
    the same choice and record for chunks of 1, 3 and all 7 pairs."""
    model, _, seq = stepping
    runs = [register_sequence(seq, "dlir", model=model, refine=2, device="cpu", chunk_size=size)
            for size in (1, 3, 32)]
    assert {r.parameters["refine_start_used"] for r in runs} == {"chained"}
    mismatches = [r.parameters["refine_start_mismatch"] for r in runs]
    assert all(m == pytest.approx(mismatches[-1], abs=1e-6) for m in mismatches)
    assert mismatches[-1]["chained"] < 0.2 * mismatches[-1]["direct"]


def test_the_web_page_offers_the_starts_of_a_refined_dlir_run(tmp_path):
    pytest.importorskip("trame", reason="needs the web extra (trame)")
    from trame.app import get_server

    from EchoRegistrationLib.web.app import FORM, EchoWebApp

    app = EchoWebApp(get_server("refine-start-test", client_type="vue3"), tmp_path)
    assert "refine_start" in FORM and app.state.refine_starts == list(REFINE_STARTS)
    assert app.settings().arguments()["refine_start"] == app.state.refine_start == "best"  # the library's default
    app.state.refine_start = "chained"
    assert app.settings().arguments()["refine_start"] == "chained"
    app.state.refine = 0  # the network alone: no refinement to start
    assert "refine_start" not in app.settings().arguments()
    app.state.refine, app.state.method = 24, "deformable"
    assert "refine_start" not in app.settings().arguments()


def test_a_refinement_resumed_after_its_first_level_optimises_what_the_whole_one_would(stepping):
    """register_pair in two levels at once, and its first level alone then its second resumed from there with
    the first level's residual as ``earlier_residual`` (what the two starts do, registration.tracking._split_levels):
    the same field to within 0.01 mm. Resumed without it (the first level's residual then unregularised), the
    second level ends tens of times further off."""
    from EchoRegistrationLib.registration import register_pair
    from EchoRegistrationLib.registration.tracking import REFINE_LEARNING_RATES, REFINE_REGULARISATION, _split_levels

    _, step, seq = stepping
    frames = torch.from_numpy(seq.frames)[:, None]
    start = field_to_torch(np.broadcast_to(2.0 * step, (*seq.frame_shape, 2)).copy())  # 3 of 5 steps short
    options = {"spacing": SPACING, "loss": "mse", "levels": 2, "iterations": (8, 6), "patience": 3,
               "learning_rate": REFINE_LEARNING_RATES, **REFINE_REGULARISATION}
    first, later = _split_levels(options)
    assert (first["iterations"], later["levels"], later["iterations"]) == ((8, 0), 1, (6,))
    assert later["learning_rate"] == REFINE_LEARNING_RATES[1:] and REFINE_LEARNING_RATES[1] < REFINE_LEARNING_RATES[0]
    whole = register_pair(frames[0], frames[5], initial=start, **options).displacement
    level = register_pair(frames[0], frames[5], initial=start, **first).displacement
    resumed = register_pair(frames[0], frames[5], initial=level, earlier_residual=level - start, **later).displacement
    restarted = register_pair(frames[0], frames[5], initial=level, **later).displacement

    def apart(a: torch.Tensor) -> float:
        return float((a - whole).norm(dim=1)[:, 8:-8, 8:-8].mean())
    assert apart(level) > 0.1  # the second level moves the field
    assert apart(resumed) < 0.01 and apart(restarted) > 10 * apart(resumed), (apart(resumed), apart(restarted))
    with pytest.raises(ValueError, match="give the initial field too"):
        register_pair(frames[0], frames[5], earlier_residual=level - start, **later)


def test_two_level_refinements_choose_after_the_first_and_keep_the_whole_runs_fields(stepping):
    """refine 8 on 64 rows with a network of 32 is two levels (4 steps at half resolution, 2 at full): both
    starts refine their first level, the start is chosen there and only the one kept refines the second. The
    best of two gives the chained run's fields to the bit where it keeps that start (the texture moving by the
    network's step), and the direct run's to within 0.01 mm where it keeps the direct start (a texture that
    moves by the network's step once and then stays: the direct start is exact, the chained one adds a step at
    every frame); progress counts three parts."""
    model, step, seq = stepping
    done = []
    runs = {start: register_sequence(seq, "dlir", model=model, refine=8, refine_start=start, device="cpu",
                                     **({"progress": lambda k, total: done.append((k, total))} if start == "best"
                                        else {}))
            for start in REFINE_STARTS}
    assert runs["best"].parameters["refine_iterations"] == [4, 2]
    assert runs["best"].parameters["refine_start_used"] == "chained"
    assert np.array_equal(runs["best"].displacement, runs["chained"].displacement)
    # the chain carries first-level fields (0.13-0.4 mm off here, the Adam steps of a half level adding up)
    assert errors(runs["chained"], step).max() < 0.5 and errors(runs["direct"], step)[-1] > 3 * np.linalg.norm(step)
    assert done[0] == (0, 21) and done[-1] == (21, 21) and all(a[0] <= b[0] for a, b in zip(done, done[1:]))
    once = drifting_sequence(step, n_frames=2)
    once = EchoSequence(once.frames[[0, 1, 1, 1, 1, 1, 1, 1]], SPACING, ed_index=0, es_index=7)
    best, direct = (register_sequence(once, "dlir", model=model, refine=8, refine_start=start, anchor=0, device="cpu")
                    for start in ("best", "direct"))
    assert best.parameters["refine_start_used"] == "direct"
    apart = np.linalg.norm(best.displacement - direct.displacement, axis=-1)[:, 8:-8, 8:-8].mean()
    assert apart < 0.01 and np.abs(direct.displacement).max() > 0.1, apart


def test_the_direct_start_kept_resumes_from_the_networks_own_field(stepping, monkeypatch):
    """Where "best" keeps the direct start after the half level, the full level resumes with the network's field
    as the start and only the half level's correction as the residual: a network field with bending energy (a
    ripple on top of the true motion) stays as the direct run leaves it, to within 0.01 mm; taken as residual,
    the regulariser would smooth it away (0.2 mm and more). The network is replaced by fields given here: the
    true field plus the ripple for every frame from the reference, four steps for every step between
    neighbours (the texture moves once, then stays: the chain adds 4.5 mm at every frame)."""
    from EchoRegistrationLib.dlir import inference

    model, step, _ = stepping
    once = drifting_sequence(step, n_frames=2)
    once = EchoSequence(once.frames[[0, 1, 1, 1, 1, 1, 1, 1]], SPACING, ed_index=0, es_index=7)
    y, x = np.mgrid[0:64, 0:64] * SPACING[1]
    ripple = 0.4 * np.sin(2 * np.pi * x / 8.0) * np.sin(2 * np.pi * y / 8.0)  # mm, 8 mm wavelength
    rippled = field_to_torch(np.stack([step[0] + ripple, step[1] + ripple], -1).astype(np.float32))
    four_steps = field_to_torch(np.broadcast_to(4 * step, (64, 64, 2)).astype(np.float32).copy())

    def given(model, seq, pairs, *args, **kwargs):
        return torch.cat([rippled if fixed == 0 else four_steps for fixed, _ in pairs])
    monkeypatch.setattr(inference, "predict_pair_fields", given)
    best, direct = (register_sequence(once, "dlir", model=model, refine=8, refine_start=start, anchor=0,
                                      device="cpu") for start in ("best", "direct"))
    assert best.parameters["refine_start_used"] == "direct" and best.parameters["refine_iterations"] == [4, 2]
    apart = np.linalg.norm(best.displacement - direct.displacement, axis=-1)[1:, 8:-8, 8:-8].mean()
    kept = np.abs(direct.displacement[1:, 8:-8, 8:-8] - step).max()  # the ripple the direct run keeps
    assert apart < 0.01 and kept > 0.2, (apart, kept)


def test_register_sequence_refuses_the_resumed_levels_own_options_before_any_work(stepping):
    model, _, seq = stepping
    with pytest.raises(ValueError, match="does not take earlier_residual"):
        register_sequence(seq, "dlir", model=model, refine=8, earlier_residual=np.zeros((64, 64, 2), np.float32))
    done = []
    # levels=3, the 2-level schedule
    with pytest.raises(ValueError, match="iterations must be one finite non-negative int, or 3 of them"):
        register_sequence(seq, "dlir", model=model, refine=8, levels=3, device="cpu",
                          progress=lambda k, total: done.append(k))
    assert set(done) <= {0}  # refused before any refinement step


def test_the_console_says_the_starts_were_compared_after_the_first_level():
    from EchoRegistrationLib.cli.common import describe_model_use

    parameters = {"model": "m", "refine": 24, "refine_iterations": [12, 6], "refine_start_used": "chained",
                  "refine_start_mismatch": {"direct": 0.004, "chained": 0.003}}
    line = describe_model_use(parameters)
    assert ("the previous one's refined field at that level and the network's step between them; the systole anchor "
            "not used), its frames matching the reference better than the direct start's after the refinement's "
            "first level (mean squared difference 0.003 against 0.004)") in line
    one_level = describe_model_use({**parameters, "refine_iterations": [12]})
    assert "first level" not in one_level and "at that level" not in one_level
    # a chain between key frames says so (without the key time: every frame, or a report written before it)
    assert ("the chained start (each frame from the refined field at that level of the last key frame before it, "
            "key frames at least 0.05 s apart, and the network's step between them") in \
        describe_model_use({**parameters, "refine_chain_key_seconds": 0.05})


def test_the_chained_frames_on_both_sides_refined_together_are_those_refined_one_at_a_time(stepping):
    """_chained_fields refines the frames as many hops from a reference in the middle together: the same starts
    and fields, to the bit, as in chunks of one frame (each pair is optimised on its own)."""
    from EchoRegistrationLib.registration.tracking import _chained_fields, _refinement_options

    model, _, seq = stepping
    frames = torch.from_numpy(seq.frames)[:, None]
    pairs = [(3, m) for m in range(seq.n_frames) if m != 3]
    hops = chain_hops(pairs)
    steps = predict_pair_fields(model, seq, hops, "cpu")
    options = _refinement_options(8, seq.frame_shape[0], model, {"levels": 1, "iterations": (4,)})
    together, alone = (_chained_fields(SPACING, frames, pairs, hops, steps, None, options, None, None, None, size)
                       for size in (2, 1))
    assert torch.equal(together[0], alone[0]) and torch.equal(together[1], alone[1])
    assert float((together[1] - together[0]).abs().amax()) > 1e-3  # the refinement moved the fields


def test_a_batch_records_the_chains_key_time_and_one_begun_before_it_is_refused(tmp_path):
    """batch.json records the least time between the chain's key frames (CHAIN_KEY_SECONDS) where the refinement
    may chain (refine_start best or chained); a batch begun before (a chain through every frame) with such a start
    is refused with a message that says so, one with the direct start or without a refinement resumes."""
    import json

    from EchoRegistrationLib.batch.runner import _check_settings, settings_record
    from EchoRegistrationLib.workflow import WorkflowSettings

    def record(**kwargs):
        return settings_record(WorkflowSettings(**kwargs))["refine_chain_key_seconds"]

    assert record() == record(options={"refine_start": "chained"}) == 0.05
    assert record(options={"refine_start": "direct"}) is record(refine=0) is record(method="deformable") is None

    refused_on_resume("refine_chain_key_seconds", tmp_path, ({}, {"refine_start": "chained"}),
                      r"earlier version, whose chained refinement start went through every frame \(this version hops "
                      r"between frames at least 0.05 s apart\); it cannot be resumed: write into a new folder")
    for kwargs in ({"options": {"refine_start": "direct"}}, {"refine": 0}, {"method": "deformable"}):
        batch_begun_without("refine_chain_key_seconds", tmp_path, **kwargs)  # as the twentieth session wrote it
        _check_settings(WorkflowSettings(**kwargs), tmp_path)  # the same registrations as then: resumed
    (tmp_path / "batch.json").write_text(json.dumps(settings_record(WorkflowSettings())))
    _check_settings(WorkflowSettings(), tmp_path)  # this version's own batch resumes


def test_a_registration_records_the_chains_key_time_where_the_frame_times_are_known(stepping):
    """parameters["refine_chain_key_seconds"]: CHAIN_KEY_SECONDS where a chain may start the refinement and the
    frames' times are known, None from the direct start or with unknown times (a chain through every frame)."""
    model, _, seq = stepping
    timed = EchoSequence(seq.frames, SPACING, frame_times=0.03 * np.arange(seq.n_frames), ed_index=0,
                         es_index=seq.n_frames - 1)
    key = {(name, start): register_sequence(s, "dlir", model=model, refine=2, refine_start=start, device="cpu")
           .parameters["refine_chain_key_seconds"] for name, s in (("timed", timed), ("untimed", seq))
           for start in ("best", "direct")}
    assert key == {("timed", "best"): 0.05, ("timed", "direct"): None, ("untimed", "best"): None,
                   ("untimed", "direct"): None}
    # at 50 frames/s three frames are all within the key time: nothing to chain, said, and no key time recorded
    fast = EchoSequence(seq.frames[:3], SPACING, frame_times=[0.0, 0.02, 0.04], ed_index=0, es_index=2)
    for start in ("best", "chained"):
        result = register_sequence(fast, "dlir", model=model, refine=2, refine_start=start, device="cpu")
        assert (result.parameters["refine_start_used"], result.parameters["refine_chain_key_seconds"]) == \
            ("direct", None)
        said = [w for w in result.warnings if w.startswith("refine_start chained: nothing to chain")]
        assert len(said) == (start == "chained")
    # sequential tracking has no refinement start to speak of: not said to have nothing to chain
    sequential = register_sequence(timed, "dlir", model=model, refine=2, refine_start="chained", mode="sequential",
                                   device="cpu")
    assert not any("nothing to chain" in w for w in sequential.warnings)
