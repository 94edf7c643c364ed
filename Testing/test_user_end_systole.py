"""End-systole set by the user (--es-frame, the batch listing's es_frame, the panel's and the page's ES
frame): it wins over the file's, is named as the user's, times strain and places the systole anchor."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from EchoRegistrationLib import save_sequence
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.strain import compute_strain
from EchoRegistrationLib.strain.reference import FROM_FILE, FROM_USER, SMALLEST_VOLUME, cardiac_frames
from EchoRegistrationLib.workflow import Study


@pytest.fixture(scope="module")
def beat():
    """A full simulated beat without ES in the file: 21 frames at 50 /s, ED at frame 0."""
    sim = simulate_sequence(view="A4C", cycle="full", n_frames=21, image_size=(96, 96), frame_rate=50.0, seed=7)
    return sim, dataclasses.replace(sim.sequence, es_index=None)


def test_the_users_es_wins_and_is_named_as_the_users(beat):
    sim, seq = beat
    volume = np.linspace(5.0, 6.0, seq.n_frames)
    volume[4] = 1.0  # the smallest volume: what detection would take
    assert (cardiac_frames(seq, volume).es, cardiac_frames(seq, volume).es_source) == (4, SMALLEST_VOLUME)
    user = seq.with_end_systole(9)
    assert (user.es_index, user.es_set_by_user, user.es_in_file) == (9, True, None)
    assert (seq.es_set_by_user, sim.sequence.es_in_file) == (False, sim.sequence.es_index)
    over = sim.sequence.with_end_systole(3)  # over the file's ES, which is kept
    assert (over.es_index, over.es_set_by_user, over.es_in_file) == (3, True, sim.sequence.es_index)
    assert over.with_end_systole(4).es_in_file == sim.sequence.es_index  # set again: still the file's
    # a subsequence remaps both; without the user's ES frame, ES is the file's again
    kept = over.subsequence([0, 3, sim.sequence.es_index])
    assert (kept.es_index, kept.es_set_by_user, kept.es_in_file) == (1, True, 2)
    dropped = over.subsequence([0, 5, sim.sequence.es_index])
    assert (dropped.es_index, dropped.es_set_by_user) == (2, False)
    assert not user.subsequence([0, 5]).es_set_by_user and user.subsequence([0, 5]).es_index is None
    assert "frame 9 (ES set by the user; the file's: not in the file)" in user.describe()
    assert (cardiac_frames(user, volume).es, cardiac_frames(user, volume).es_source) == (9, FROM_USER)
    assert cardiac_frames(sim.sequence, volume).es_source == FROM_FILE  # the file's own stays the file's
    for bad, problem in ((21, "--es-frame 21 is not a frame of this 21-frame sequence"),
                         (-1, "not a frame"), (2.5, "not a frame"), (0, "is the file's ED frame")):
        with pytest.raises(EchoDataError, match=problem):
            seq.with_end_systole(bad, "--es-frame")


def test_strain_takes_the_users_es_and_warns_when_es_was_detected(beat):
    """Peak systolic strain and EF are taken at the user's ES; a detected ES is named in a warning."""
    from EchoRegistrationLib.strain import myocardium_from_labels
    from EchoRegistrationLib.strain.compute import result_from_displacement

    sim, seq = beat
    registration = result_from_displacement(seq, sim.displacement, 0)
    myocardium = myocardium_from_labels(sim.sequence.labels[0], seq.spacing)
    detected = compute_strain(seq, registration, myocardium)
    assert detected.es_index == sim.sequence.es_index
    assert f"ES not given by the file: frame {detected.es_index} was detected as ES" in " ".join(detected.warnings())
    late = sim.sequence.es_index + 3
    user = compute_strain(seq.with_end_systole(late), registration, myocardium)
    assert (user.es_index, user.frames.es_source) == (late, FROM_USER)
    assert not any("ES not given" in w for w in user.warnings())
    assert user.ef < detected.ef - 1  # the volume at a frame past ES is larger
    assert user.peaks()["GLS endocardial"]["peak_frame"] <= late
    # a file's ES inside a cine starting at ED makes it a full cycle (drift reported); a user's ES says
    # nothing about where the cine ends
    assert compute_strain(sim.sequence, registration, myocardium).full_cycle
    assert not user.full_cycle and np.isnan(user.drift_mm) and not detected.full_cycle
    # ... nor does it take the full cycle away from a file whose own ES says so
    assert compute_strain(sim.sequence.with_end_systole(late), registration, myocardium).full_cycle
    # ED and ES that show no ejection are named
    same = compute_strain(dataclasses.replace(seq, ed_index=None).with_end_systole(0), registration, myocardium)
    assert "ED and ES are the same frame (0" in " ".join(same.warnings())
    swapped = dataclasses.replace(seq, ed_index=sim.sequence.es_index).with_end_systole(0)  # ED and ES mixed up
    swapped = compute_strain(swapped, registration, myocardium)
    assert swapped.ef < -5 and "the LV cavity grows from ED (frame 12, given by the file) to ES " \
        "(frame 0, set by the user)" in " ".join(swapped.warnings())
    still = seq.with_end_systole(late)  # a registration that did not follow the wall
    still = compute_strain(still, result_from_displacement(still, 0 * sim.displacement, 0), myocardium)
    assert abs(still.ef) < 1e-3 and "the LV cavity barely changes" in " ".join(still.warnings())
    assert not any(("barely changes" in w or "grows" in w or "same frame" in w)
                   for w in (*user.warnings(), *detected.warnings()))


def test_a_study_and_a_listing_set_es_and_bad_values_name_their_source(beat, tmp_path):
    from EchoRegistrationLib.batch.studies import csv_studies

    _, seq = beat
    path = tmp_path / "beat.seq.nrrd"
    save_sequence(seq, path)
    assert Study(str(path)).load().es_index is None
    assert Study(str(path), es_frame=8).load().es_index == 8
    with pytest.raises(EchoDataError, match="--es-frame 30 is not a frame"):
        Study(str(path), es_frame=30).load()
    listing = tmp_path / "cohort.csv"
    listing.write_text("id,input,es_frame\na,beat.seq.nrrd,8\nb,beat.seq.nrrd,\nc,beat.seq.nrrd,30\n")
    studies = [s.study for s in csv_studies(listing)]
    assert [s.es_frame for s in studies] == [8, None, 30]
    assert studies[0].load().es_index == 8 and studies[1].load().es_index is None
    with pytest.raises(EchoDataError, match=r"cohort.csv:4 es_frame 30 is not a frame"):
        studies[2].load()
    for cell in ("8.5", "-1", "x", "1_0"):
        listing.write_text(f"id,input,es_frame\na,beat.seq.nrrd,{cell}\n")
        with pytest.raises(EchoDataError, match=rf"cohort.csv:2: es_frame: a frame number .* got '{cell}'"):
            csv_studies(listing)


def test_the_command_line_sets_es_and_the_anchor_goes_through_it(beat, tmp_path, capsys):
    """`echoreg register --es-frame`: the default method's systole anchor needs ES; without it every
    frame is registered directly."""
    import json

    from EchoRegistrationLib.cli import main

    sim, seq = beat
    path = tmp_path / "beat.seq.nrrd"
    es = sim.sequence.es_index
    save_sequence(seq.subsequence(range(es + 4)), path)  # ED .. a little past ES
    common = [str(path), "--method", "dlir", "--refine", "0", "--device", "cpu"]
    assert main(["register", *common, "-o", str(tmp_path / "direct")]) == 0
    assert main(["register", *common, "--es-frame", str(es), "-o", str(tmp_path / "anchored")]) == 0
    out = capsys.readouterr().out
    assert f"later systolic frames registered through frame {round(0.6 * es)}" in out
    direct = json.loads((tmp_path / "direct" / "report.json").read_text())["parameters"]
    anchored = json.loads((tmp_path / "anchored" / "report.json").read_text())["parameters"]
    assert (direct["anchor_frame"], anchored["anchor_frame"]) == (None, round(0.6 * es))
    assert main(["register", *common, "--es-frame", str(es + 4), "-o", str(tmp_path / "bad")]) != 0
    assert f"--es-frame {es + 4} is not a frame of this {es + 4}-frame sequence" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # a registration reused for strain must have placed its anchor for the same ES
    strain = ["strain", str(path), "--landmarks", "30,70,48,20,66,70", "-o", str(tmp_path / "strain")]
    assert main([*strain, "--registration", str(tmp_path / "anchored")]) != 0
    assert f"systole anchor (frame {round(0.6 * es)}) was placed for ES frame {es}, the input now has no ES " \
        f"(give --es-frame {es})" in capsys.readouterr().err
    assert main([*strain, "--es-frame", str(es), "--registration", str(tmp_path / "anchored")]) == 0
    # an anchor given as a frame map through the API (recorded without ES) does not depend on ES
    report = tmp_path / "anchored" / "report.json"
    record = json.loads(report.read_text())
    record["parameters"]["es_frame"] = None
    report.write_text(json.dumps(record))
    assert main([*strain, "--overwrite", "--registration", str(tmp_path / "anchored")]) == 0
    # info says whose ES it is; convert writes no ES, so it does not take one
    assert main(["info", str(path), "--es-frame", str(es)]) == 0
    assert f"frame {es} (ES set by the user; the file's: not in the file)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["convert", str(path), str(tmp_path / "out.nii.gz"), "--es-frame", str(es)])


def test_a_reused_registration_made_without_es_says_so_when_es_is_given_now(beat, tmp_path, capsys):
    """strain --registration --es-frame: the reused registration went without the anchor (made without ES), and
    stays so; the console says that, not that the anchor needs --es-frame (which was given)."""
    from EchoRegistrationLib.cli import main

    sim, seq = beat
    path, reg = tmp_path / "beat.seq.nrrd", tmp_path / "reg"
    es = sim.sequence.es_index
    save_sequence(seq.subsequence(range(es + 4)), path)
    assert main(["register", str(path), "--method", "dlir", "--refine", "0", "--device", "cpu", "-o", str(reg)]) == 0
    capsys.readouterr()
    assert main(["strain", str(path), "--landmarks", "30,70,48,20,66,70", "-o", str(tmp_path / "strain"),
                 "--es-frame", str(es), "--registration", str(reg)]) == 0
    out = capsys.readouterr().out
    assert (f"systole anchor 0.6 not used when {reg} was registered without ES (it needs ES after the reference and "
            f"an anchor frame with signal between them): every frame registered directly, as reused "
            f"(--registration), whatever ES the input has now; register again to use the anchor") in out
    assert "--es-frame" not in out


def test_the_panel_and_the_page_pass_their_es_frame_to_the_sequence(beat, tmp_path):
    pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
    from EchoRegistrationLib.mrml import RegistrationSettings, echo_sequence_from_node, volume_sequence_node
    from EchoRegistrationLib.mrml.headless import standalone_scene

    _, seq = beat
    node = volume_sequence_node(standalone_scene().scene, "beat", seq)
    assert RegistrationSettings().sequence(node).es_index is None
    assert RegistrationSettings(es_frame=8).sequence(node).es_index == 8
    # an output node of a run with the user's ES keeps it as the user's (and the file's, none here)
    scene = standalone_scene().scene
    for source in (seq.with_end_systole(8), beat[0].sequence.with_end_systole(8)):
        back = echo_sequence_from_node(volume_sequence_node(scene, "out", source))
        assert (back.es_index, back.es_set_by_user, back.es_in_file) == (8, True, source.es_in_file)
    with pytest.raises(EchoDataError, match="ES frame 25 is not a frame"):
        RegistrationSettings(es_frame=25).sequence(node)
    with pytest.raises(ValueError, match="es_frame is a frame index"):
        RegistrationSettings(es_frame=-1)
    trame = pytest.importorskip("trame.app", reason="needs the web extra (trame)")
    from EchoRegistrationLib.web.app import FORM, FORM_CINE, EchoWebApp

    app = EchoWebApp(trame.get_server("es-test", client_type="vue3"), tmp_path)
    assert "es_frame" in FORM and app.settings().es_frame is None
    app.state.es_frame = " 8 "
    assert app.settings().es_frame == 8
    for bad in ("-1", "2.5", "abc", "\u00b2"):
        app.state.es_frame = bad
        with pytest.raises(ValueError, match=f"ES frame: a frame number .* got '{re.escape(bad)}'"):
            app.settings()
    # opening another cine clears the frame fields: frame numbers of one cine mean nothing on another
    path = tmp_path / "beat.seq.nrrd"
    save_sequence(seq, path)
    app.state.es_frame, app.state.reference = "8", "2"
    form = [app.state[key] for key in (*FORM, FORM_CINE)]  # as the page shows them before the next cine opens
    app.open_cine(path)
    assert (app.state.es_frame, app.state.reference) == ("", "")
    app.apply(*form)  # sent by a page that had not yet shown the new cine: refused, nothing applied
    assert "Another cine was opened after these settings were shown" in app.state.error
    assert (app.state.es_frame, app.state.reference) == ("", "")
