"""Tracking to the reference through one anchor frame in systole (spatial.pairs.systole_anchors,
registration.tracking.frame_anchors, dlir.inference.predict_anchored_fields, register_sequence(anchor=...),
the default of "dlir" to the reference, and the workflow's one-frame registration through it)."""

import dataclasses

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir.inference import predict_anchored_fields, predict_pair_fields
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.registration.tracking import anchor_setting, frame_anchors
from EchoRegistrationLib.spatial import compose
from EchoRegistrationLib.spatial.pairs import SYSTOLE_ANCHOR, systole_anchors
from test_dlir import blob_sequence, constant_output, tiny_model


def test_frames_beyond_the_anchor_go_through_it_on_a_half_cycle():
    # ED -> ES over 6 frames: A = round(0.6 x 5) = 3; frames 4 and 5 through it
    assert systole_anchors(6, 0, 5, 0.6) == {1: 0, 2: 0, 3: 0, 4: 3, 5: 3}
    assert systole_anchors(6, 0, 5, 0.5) == {1: 0, 2: 0, 3: 2, 4: 2, 5: 2}  # round(2.5) = 2


def test_after_es_the_frames_near_the_returning_ed_are_direct():
    anchors = systole_anchors(20, 0, 9, 0.6)
    assert [t for t, a in anchors.items() if a == 5] == [6, 7, 8, 9, 10, 11, 12]  # (19 - t) / 10 > 0.6
    assert all(anchors[t] == 0 for t in (*range(1, 6), *range(13, 20)))


def test_a_later_reference_and_an_es_before_it():
    # reference 2, ES 7: A = 2 + round(0.6 x 5) = 5; frames before the reference and after ES direct
    assert systole_anchors(10, 2, 7, 0.6) == {0: 2, 1: 2, 3: 2, 4: 2, 5: 2, 6: 5, 7: 5, 8: 2, 9: 2}
    assert set(systole_anchors(10, 7, 3, 0.6).values()) == {7}  # ES before the reference: all direct
    assert systole_anchors(2, 0, 1, 0.6) == {1: 0}  # a pair is one direct registration
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        systole_anchors(6, 0, 5, 1.0)


def test_anchored_fields_are_the_anchor_pairs_composed():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)  # one shift for every pair
    pairs = [(0, t) for t in range(1, 6)]
    anchored, anchor_frame = predict_anchored_fields(model, seq, pairs, systole_anchors(6, 0, 5, 0.6), "cpu")
    assert anchor_frame == 3
    direct = predict_pair_fields(model, seq, pairs, "cpu")
    through = predict_pair_fields(model, seq, [(3, 4), (3, 5)], "cpu")
    torch.testing.assert_close(anchored[:3], direct[:3])  # frames 1-3: to the reference directly
    expected = compose(direct[[2, 2]], through, seq.spacing)  # frame 3's field, then 3 -> t
    torch.testing.assert_close(anchored[3:], expected)
    # a shift composed with itself: twice the shift (inside the frame, where nothing is clamped)
    torch.testing.assert_close(anchored[3:, :, 20:40, 15:30], 2 * direct[3:, :, 20:40, 15:30])
    # no frame through an anchor: as direct registration
    fields, anchor_frame = predict_anchored_fields(model, seq, pairs, {t: 0 for t in range(1, 6)}, "cpu")
    torch.testing.assert_close(fields, direct)
    assert anchor_frame is None
    for anchors in ({4: 3, 5: 2}, {4: 3, 3: 2}):  # two anchor frames; an anchor not registered to the reference
        with pytest.raises(ValueError, match="one anchor frame"):
            predict_anchored_fields(model, seq, pairs, anchors, "cpu")


def test_a_skipped_anchor_frame_means_direct_registration():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)
    pairs = [(0, t) for t in (1, 2, 4, 5)]  # frame 3, the anchor, had no signal
    fields, anchor_frame = predict_anchored_fields(model, seq, pairs, systole_anchors(6, 0, 5, 0.6), "cpu")
    torch.testing.assert_close(fields, predict_pair_fields(model, seq, pairs, "cpu"))
    assert anchor_frame is None


def test_frame_anchors_default_to_the_systole_anchor_for_dlir_to_the_reference_only():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    assert frame_anchors(seq, 0, "dlir", "to_reference", None) == systole_anchors(6, 0, 5, SYSTOLE_ANCHOR)
    assert frame_anchors(seq, 0, "dlir", "to_reference", 0.5) == systole_anchors(6, 0, 5, 0.5)
    assert frame_anchors(seq, 0, "dlir", "to_reference", {2: 1}) == {2: 1}  # a map as it is
    for method, mode in (("dlir", "sequential"), ("deformable", "to_reference"), ("affine", "sequential")):
        assert frame_anchors(seq, 0, method, mode, None) is None  # the default: none
        assert frame_anchors(seq, 0, method, mode, 0) is None
        with pytest.raises(ValueError, match="anchor"):
            frame_anchors(seq, 0, method, mode, 0.6)
    assert frame_anchors(seq, 0, "dlir", "to_reference", 0) is None
    assert frame_anchors(dataclasses.replace(seq, es_index=None), 0, "dlir", "to_reference", None) is None
    assert frame_anchors(seq, 5, "dlir", "to_reference", None) is None  # ES not after the reference
    for bad in (1.0, 1.2, -0.1):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            frame_anchors(seq, 0, "dlir", "to_reference", bad)
    # a map is checked: an anchor beyond its frame would be composed before its own field is known
    with pytest.raises(ValueError, match="lies between the reference"):
        frame_anchors(seq, 0, "dlir", "to_reference", {3: 5})
    with pytest.raises(ValueError, match=r"outside 0..5: \[20\]"):
        frame_anchors(seq, 0, "dlir", "to_reference", {20: 3})
    with pytest.raises(ValueError, match="lies between the reference"):  # the other side of the reference
        frame_anchors(seq, 3, "dlir", "to_reference", {1: 4})


def test_register_sequence_goes_through_the_anchor_by_default_for_dlir_to_the_reference():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)
    result = register_sequence(seq, "dlir", model=model, reference=0, device="cpu")
    direct = register_sequence(seq, "dlir", model=model, reference=0, anchor=0, device="cpu")
    hops = predict_pair_fields(model, seq, [(0, 3), (3, 5)], "cpu")
    composed = compose(hops[:1], hops[1:], seq.spacing)[0].permute(1, 2, 0).numpy()
    assert (result.parameters["anchor"], result.parameters["anchor_frame"]) == (SYSTOLE_ANCHOR, 3)
    assert (direct.parameters["anchor"], direct.parameters["anchor_frame"]) == (0, None)
    assert abs(result.displacement[5] - composed).max() < 1e-4
    assert abs(result.displacement[5] - direct.displacement[5]).max() > 0.1  # it went through frame 3
    np.testing.assert_allclose(result.displacement[:4], direct.displacement[:4], atol=1e-5)
    # without ES: every frame directly, and no anchor frame recorded
    unknown = register_sequence(dataclasses.replace(seq, es_index=None), "dlir", model=model, reference=0,
                                device="cpu")
    assert unknown.parameters["anchor_frame"] is None
    np.testing.assert_allclose(unknown.displacement, direct.displacement, atol=1e-5)
    # tracked sequentially: no anchor by default, and one asked for is refused
    sequential = register_sequence(seq, "dlir", model=model, mode="sequential", device="cpu")
    assert (sequential.parameters["anchor"], sequential.parameters["anchor_frame"]) == (0, None)
    for method, options in (("deformable", {}), ("dlir", {"mode": "sequential"}), ("dlir", {"anchor": 1.2})):
        with pytest.raises(ValueError, match="anchor"):
            register_sequence(seq, method, model=model if method == "dlir" else None,
                              **{"anchor": 0.6, **options})


def test_one_frame_goes_through_the_whole_sequences_anchor(tmp_path):
    """The quick look (workflow.register_one_frame) registers the reference, the anchor and the frame:
    the field of the whole run, also refined, for a frame beyond the anchor and one before it."""
    from EchoRegistrationLib.dlir.checkpoints import save_model
    from EchoRegistrationLib.workflow import WorkflowSettings, analyse, register_one_frame

    seq = dataclasses.replace(blob_sequence(n_frames=8, labels=False), ed_index=0, es_index=5)
    save_model(constant_output(tiny_model(working_size=24), 2.0, 4.0), tmp_path / "model")
    for refine in (0, 4):  # the refinement from the direct start: the chained one goes through no anchor
        settings = WorkflowSettings(model=str(tmp_path / "model"), refine=refine, device="cpu",
                                    options={"refine_start": "direct"} if refine else {})
        whole = analyse(seq, settings, None).registration
        assert whole.parameters["anchor_frame"] == 3
        for frame in (2, 4, 5):  # 2: directly; 4, 5: through frame 3
            one = register_one_frame(seq, frame, settings)
            np.testing.assert_allclose(one.displacement, whole.displacement[frame], atol=1e-3)
            assert one.parameters["anchor_frame"] == (None if frame == 2 else 3)
        # an anchor frame without signal: the whole run and the quick look both go directly, and say so
        blank = dataclasses.replace(seq, frames=seq.frames.copy())
        blank.frames[3] = blank.frames[3].mean()
        direct = analyse(blank, settings, None).registration
        assert direct.parameters["anchor_frame"] is None
        assert register_one_frame(blank, 5, settings).parameters["anchor_frame"] is None
        off = WorkflowSettings(model=str(tmp_path / "model"), refine=refine, anchor=0, device="cpu",
                               options=settings.options)
        assert abs(register_one_frame(seq, 5, off).displacement - whole.displacement[5]).max() > 0.1
    with pytest.raises(ValueError, match="DLIR options"):
        WorkflowSettings(method="deformable", anchor=0.6)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        WorkflowSettings(anchor=1.5)
    with pytest.raises(ValueError, match="WorkflowSettings.anchor"):
        WorkflowSettings(options={"anchor": 0.6})
    assert WorkflowSettings(anchor=0).arguments()["anchor"] == 0
    assert "anchor" not in WorkflowSettings().arguments()  # register_sequence's default


def test_the_command_line_states_the_default_anchor_and_passes_it_on():
    import argparse

    from EchoRegistrationLib.cli.common import add_registration_options, settings_from_args
    from EchoRegistrationLib.sequence import EchoDataError

    parser = argparse.ArgumentParser()
    add_registration_options(parser)
    assert f"from the last frame; default {SYSTOLE_ANCHOR}; 0: every frame directly)" in " ".join(
        parser.format_help().split())
    assert settings_from_args(parser.parse_args([])).anchor is None  # register_sequence's default
    assert settings_from_args(parser.parse_args(["--anchor", "0"])).arguments()["anchor"] == 0
    for bad in ("1", "-0.2", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--anchor", bad])
    with pytest.raises(EchoDataError, match="--anchor and --float32 are DLIR options"):
        settings_from_args(parser.parse_args(["--method", "deformable", "--anchor", "0.5"]))
    # sequential tracking, asked for or the model's own: one line, not a traceback from the registration
    for flags in (["--mode", "sequential"], ["--model", "echoreg-dlir-sim-sequential"]):
        with pytest.raises(EchoDataError, match="this run tracks sequentially"):
            settings_from_args(parser.parse_args([*flags, "--anchor", "0.5"]))
    assert settings_from_args(parser.parse_args(["--mode", "sequential"])).anchor is None  # the default: none


def test_the_console_says_whether_the_registration_went_through_an_anchor():
    from EchoRegistrationLib.cli.common import describe_model_use

    through = describe_model_use({"model": "m", "licence": "L", "anchor": 0.6, "anchor_frame": 11, "refine": 0})
    assert "systole anchor 0.6: later systolic frames registered through frame 11" in through
    direct = describe_model_use({"model": "m", "licence": "L", "anchor": 0.6, "anchor_frame": None, "refine": 0})
    assert "systole anchor 0.6 not used (it needs ES after the reference, from the file or --es-frame" in direct
    off = describe_model_use({"model": "m", "licence": "L", "anchor": 0, "anchor_frame": None, "refine": 0})
    assert "anchor" not in off


def test_a_reused_registrations_unused_anchor_is_said_to_be_its_own():
    """echoreg strain --registration: the anchor a reused registration did not use stays unused, whatever ES the
    input has now; the console names the ES it was made with (none recorded before 2026-11-30)."""
    from EchoRegistrationLib.cli.common import describe_model_use

    run = {"model": "m", "licence": "L", "anchor": 0.6, "anchor_frame": None, "refine": 0}
    assert "systole anchor 0.6 not used when reg was registered with ES frame 0 (it needs ES after the reference " \
        "and an anchor frame" in describe_model_use({**run, "es_frame": 0}, "reg")
    assert "systole anchor 0.6 not used when reg was registered (it needs" in describe_model_use(run, "reg")
    assert "from the file or --es-frame" in describe_model_use(run)  # registered now: ES can be given


def test_a_batch_begun_before_the_anchor_is_not_resumed_under_it(tmp_path):
    """batch.json records the anchor a batch runs with; one written before it existed registered every
    frame directly, so resuming it takes --anchor 0, not the new default."""
    import json

    from EchoRegistrationLib.batch.runner import SETTINGS_JSON, _check_settings, settings_record
    from EchoRegistrationLib.sequence import EchoDataError
    from EchoRegistrationLib.workflow import WorkflowSettings

    assert settings_record(WorkflowSettings())["anchor"] == SYSTOLE_ANCHOR
    assert settings_record(WorkflowSettings(model="echoreg-dlir-sim-sequential"))["anchor"] == 0  # sequential
    assert settings_record(WorkflowSettings(method="deformable"))["anchor"] == 0
    before = {k: v for k, v in settings_record(WorkflowSettings()).items() if k != "anchor"}
    (tmp_path / SETTINGS_JSON).write_text(json.dumps(before))
    with pytest.raises(EchoDataError, match=r"anchor 0 -> 0\.6"):
        _check_settings(WorkflowSettings(), tmp_path)
    _check_settings(WorkflowSettings(anchor=0), tmp_path)  # as it ran


def test_the_web_page_takes_the_anchor_by_default_and_can_turn_it_off(tmp_path):
    pytest.importorskip("trame", reason="needs the web extra (trame)")
    from trame.app import get_server

    from EchoRegistrationLib.web.app import FORM, EchoWebApp

    app = EchoWebApp(get_server("anchor-test", client_type="vue3"), tmp_path)
    assert "anchor" in FORM and app.state.anchor is True
    assert "anchor" not in app.settings().arguments()  # register_sequence's default: the anchor
    app.state.anchor = False
    assert app.settings().arguments()["anchor"] == 0
    app.state.method = "deformable"
    assert "anchor" not in app.settings().arguments()


def test_the_setting_is_one_value_however_given_and_a_map_holds_frame_numbers():
    assert anchor_setting("dlir", "to_reference", np.float32(0.6)) == 0.6  # not 0.6000000238
    assert str(anchor_setting("dlir", "to_reference", -0.0)) == "0.0"
    assert anchor_setting("dlir", "to_reference", {np.int64(5): np.int64(3)}) == {5: 3}
    with pytest.raises(ValueError, match="frame numbers"):
        frame_anchors(dataclasses.replace(blob_sequence(n_frames=8, labels=False), es_index=7), 0, "dlir",
                      "to_reference", {7.5: 5})


def test_a_checkpoint_file_says_how_its_model_tracks():
    from EchoRegistrationLib.dlir.shipped import resolve_model, tracking_of

    folder = resolve_model("echoreg-dlir-sim-sequential")
    assert tracking_of(folder) == tracking_of(folder / "model.safetensors") == "sequential"
    assert tracking_of("echoreg-dlir-camus") == "to_reference"


def test_a_batch_recorded_with_the_unresolved_default_resumes_under_it(tmp_path):
    import json

    from EchoRegistrationLib.batch.runner import SETTINGS_JSON, _check_settings, settings_record
    from EchoRegistrationLib.sequence import EchoDataError
    from EchoRegistrationLib.workflow import WorkflowSettings

    (tmp_path / SETTINGS_JSON).write_text(json.dumps({**settings_record(WorkflowSettings()), "anchor": None}))
    _check_settings(WorkflowSettings(), tmp_path)  # None then meant the default, the anchor
    with pytest.raises(EchoDataError, match=r"anchor 0\.6 -> 0\.0"):
        _check_settings(WorkflowSettings(anchor=0), tmp_path)


def test_the_settings_say_how_dlir_will_track_without_loading_a_model():
    import subprocess
    import sys

    from EchoRegistrationLib.workflow import WorkflowSettings

    assert WorkflowSettings().dlir_mode() == "to_reference"
    assert WorkflowSettings(model="echoreg-dlir-sim-sequential").dlir_mode() == "sequential"
    assert WorkflowSettings(mode="sequential").dlir_mode() == "sequential"
    assert WorkflowSettings(method="deformable").dlir_mode() is None
    script = ("import sys; sys.modules['torch'] = None\n"
              "from EchoRegistrationLib.workflow import WorkflowSettings\n"
              "print(WorkflowSettings(model='echoreg-dlir-sim-sequential').dlir_mode())")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "sequential", run.stderr[-1000:]
