"""The Slicer module's scenario on real MRML (slicer-core), without Qt: a sequence node in, every
output node out and synchronised in the input's browser, cancel and failure leave the scene as it
was, outputs saved and read back equal (issue 6). The module's ScriptedLoadableModuleTest runs the
same scenario inside Slicer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")

from EchoRegistrationLib.dlir.shipped import SHIPPED_MODEL  # noqa: E402
from EchoRegistrationLib.io.seqnrrd import read_seq_nrrd  # noqa: E402
from EchoRegistrationLib.mrml import (REGISTRATION_ATTRIBUTE, Analysis, RegistrationSettings,  # noqa: E402
                                      add_outputs, analyse, export_tables,
                                      browser_for, field_from_transform_node, read_table_csv,
                                      register_frame, remove_outputs, show_frame_registration,
                                      table_columns, volume_sequence_node, write_table_csv)
from EchoRegistrationLib.mrml.headless import standalone_scene  # noqa: E402
from EchoRegistrationLib.mrml.display import STRAIN_COLOUR_TABLE  # noqa: E402
from EchoRegistrationLib.strain.result import LONGITUDINAL_RANGE  # noqa: E402
from EchoRegistrationLib.mrml.sequences import volume_node  # noqa: E402
from EchoRegistrationLib.mrml.transforms import ras_vectors  # noqa: E402
from EchoRegistrationLib.registration import RegistrationCancelled  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.strain import compute_strain  # noqa: E402


@pytest.fixture(scope="module")
def case():
    """A simulated A4C cine as a sequence node with its browser and the ED labelmap, analysed once
    with the module's default settings."""
    sim = simulate_sequence(view="A4C", n_frames=6, image_size=(96, 80), seed=3)
    env = standalone_scene()
    node = volume_sequence_node(env.scene, "echo", sim.sequence)
    browser = browser_for(env.scene, node)
    labelmap = env.scene.AddNode(volume_node(sim.sequence.labels[0], sim.sequence,
                                             slicer.vtkMRMLLabelMapVolumeNode()))
    labelmap.SetName("ED labels")
    analysis = analyse(node, RegistrationSettings(), labelmap)
    return sim, env, node, browser, labelmap, analysis


def node_ids(scene):
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_analysis_tracks_the_simulated_heart(case):
    sim, _, _, _, _, analysis = case
    registration, strain = analysis.registration, analysis.strain
    # the default: the default model, refined (workflow.DEFAULT_METHOD / DEFAULT_REFINE)
    assert registration.reference == 0 and registration.method == "dlir"
    assert (registration.parameters["model"], registration.parameters["refine"]) == (SHIPPED_MODEL, 24)
    myocardium = sim.sequence.labels[0] == 2
    error = np.linalg.norm(registration.displacement[-1] - sim.displacement[-1], axis=-1)[myocardium]
    motion = np.linalg.norm(sim.displacement[-1], axis=-1)[myocardium]
    print(f"ES myocardial error {error.mean():.2f} mm, motion {motion.mean():.2f} mm")
    assert motion.mean() > 8.0  # ED -> ES: real motion to recover (1.6 mm pixels)
    assert error.mean() < 2.0 and error.mean() < 0.25 * motion.mean()
    assert strain.gls_endo[-1] == pytest.approx(sim.gls_endo[-1], abs=4.0)
    assert strain.myocardium.source == "labels"


def test_outputs_are_made_and_synchronised_in_the_input_browser(case, tmp_path):
    sim, env, node, browser, _, analysis = case
    scene, seq = env.scene, analysis.sequence
    before = node_ids(scene)
    outputs = add_outputs(scene, browser, node, analysis)
    assert [n.GetName() for n in outputs.nodes()] == [
        "echo warped", "echo deformation", "echo frames", "echo longitudinal strain",
        "echo strain summary", "echo strain curves"]
    # how the fields were made travels with them and the tables (saved with the scene, exported beside the
    # CSV files): the default, DLIR + refine 24, with the model's licence and the networks' precision
    made = outputs.transforms.GetAttribute(REGISTRATION_ATTRIBUTE)
    parameters = analysis.registration.parameters
    assert made.startswith(f"DLIR ({SHIPPED_MODEL}, licence CC BY-NC-SA 4.0") and " + refine 24 " in made
    assert f", networks in {parameters['network_precision']})" in made
    assert {n.GetAttribute(REGISTRATION_ATTRIBUTE) for n in (outputs.frame_table, outputs.summary_table)} == {made}
    export = tmp_path / "export"
    exported = export_tables([outputs.frame_table, outputs.summary_table], export)
    assert [p.name for p in exported] == ["echo frames.csv", "echo strain summary.csv", "echo frames registration.txt"]
    assert exported[2].read_text() == made + "\n"
    (export / "echo frames.csv").unlink()
    with pytest.raises(FileExistsError, match="registration.txt"):  # the note alone is not replaced either
        export_tables([outputs.frame_table], export)
    assert not (export / "echo frames.csv").exists()  # nothing written
    # a table of a scene saved before the attribute: the caller's line, else no note and none left behind
    outputs.frame_table.RemoveAttribute(REGISTRATION_ATTRIBUTE)
    assert export_tables([outputs.frame_table], export, overwrite=True, registration="rigid")[-1].read_text() == \
        "rigid\n"
    assert [p.name for p in export_tables([outputs.frame_table], export, overwrite=True)] == ["echo frames.csv"]
    assert not (export / "echo frames registration.txt").exists()
    sequences = (outputs.warped, outputs.transforms, outputs.strain_map)
    values = [node.GetNthIndexValue(i) for i in range(6)]
    for sequence in sequences:
        assert browser.IsSynchronizedSequenceNode(sequence.GetID())
        assert [sequence.GetNthIndexValue(i) for i in range(6)] == values
    warped, transform, strain_map = (browser.GetProxyNode(s) for s in sequences)
    assert isinstance(transform, slicer.vtkMRMLGridTransformNode)
    grid = transform.GetDisplayNode()
    assert grid.GetVisibility2D() and grid.GetVisualizationMode() == grid.VIS_MODE_GRID
    display = strain_map.GetDisplayNode()
    assert display.GetColorNode().GetName() == STRAIN_COLOUR_TABLE
    assert (display.GetWindow(), display.GetLevel()) == (2 * LONGITUDINAL_RANGE, 0.0)

    ijk_to_ras = seq.ijk_to_ras()
    rows, cols = np.nonzero(sim.sequence.labels[0] == 2)
    for t in (5, 2):
        browser.SetSelectedItemNumber(t)
        env.sequences.UpdateProxyNodesFromSequences(browser)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(warped)[0], analysis.registration.warped[t])
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(strain_map)[0],
                                      analysis.strain.longitudinal_map[t])
        u = analysis.registration.displacement[t]
        for i, j in list(zip(rows, cols))[::50]:
            p = (ijk_to_ras @ [j, i, 0.0, 1.0])[:3]
            np.testing.assert_allclose(transform.GetTransformFromParent().TransformPoint(p),
                                       p + ras_vectors(u[i, j], seq), atol=1e-5)

    frames = table_columns(outputs.frame_table)
    np.testing.assert_array_equal(frames["GLS endocardial (%)"], analysis.strain.gls_endo)
    np.testing.assert_array_equal(frames["basal inferoseptal (%)"], analysis.strain.segmental[:, 0])
    np.testing.assert_array_equal(frames["NCC after"], analysis.registration.similarity_after)
    assert frames["frame"].tolist() == list(range(6))
    summary = table_columns(outputs.summary_table)
    ef = summary["value"][summary["measure"].index("EF")]
    assert ef == pytest.approx(analysis.strain.ef) and ef == pytest.approx(sim.ef, abs=12.0)
    chart = outputs.chart
    assert chart.GetNumberOfPlotSeriesNodes() == 8
    series = chart.GetNthPlotSeriesNode(0)
    assert (series.GetXColumnName(), series.GetYColumnName()) == ("time from ED (s)", "GLS endocardial (%)")
    assert series.GetTableNode() is outputs.frame_table

    # saved and read back equal: the warped sequence and the deformation as .seq.nrrd, tables as CSV
    helpers = []
    for sequence, storage_class in ((outputs.warped, "vtkMRMLVolumeSequenceStorageNode"),
                                    (outputs.transforms, "vtkMRMLTransformSequenceStorageNode")):
        helpers.append(scene.AddNewNodeByClass(storage_class))
        helpers[-1].SetFileName(str(tmp_path / f"{sequence.GetName()}.seq.nrrd"))
        assert helpers[-1].WriteData(sequence) == 1
    warped_back = read_seq_nrrd(tmp_path / "echo warped.seq.nrrd")
    np.testing.assert_array_equal(warped_back.frames, analysis.registration.warped)
    np.testing.assert_array_equal(warped_back.frame_times, seq.frame_times)
    fields_back = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    reader = scene.AddNewNodeByClass("vtkMRMLTransformSequenceStorageNode")
    reader.SetFileName(str(tmp_path / "echo deformation.seq.nrrd"))
    assert reader.ReadData(fields_back) == 1
    np.testing.assert_allclose(field_from_transform_node(fields_back.GetNthDataNode(5), seq),
                               analysis.registration.displacement[5], atol=1e-5)
    for table, name in ((outputs.frame_table, "frames.csv"), (outputs.summary_table, "summary.csv")):
        back = read_table_csv(write_table_csv(table, tmp_path / name))
        for column, values in table_columns(table).items():
            np.testing.assert_array_equal(back[column], values)
    for helper in (*helpers, fields_back, reader):
        scene.RemoveNode(helper)

    remove_outputs(outputs)
    assert node_ids(scene) - before == {display.GetColorNodeID()}  # the colour table stays, shared
    assert not before - node_ids(scene)
    assert browser.GetNumberOfSynchronizedSequenceNodes() == 0


def test_cancel_stops_the_work_and_leaves_the_scene_unchanged(case):
    _, env, node, _, labelmap, _ = case
    before = node_ids(env.scene)
    calls = []
    with pytest.raises(RegistrationCancelled):
        analyse(node, RegistrationSettings(chunk_size=1), labelmap,
                progress=lambda done, total: calls.append((done, total)), cancel=lambda: bool(calls))
    # the default (DLIR + refine) reports the network's fields as (0, 10) before refining pair by pair (5 pairs,
    # twice: from the direct and from the chained start, registration.tracking.REFINE_STARTS): the cancel asked
    # then stops it before the refinement's first pair
    assert calls == [(0, 10)]
    assert node_ids(env.scene) == before


@pytest.mark.parametrize("cancel", [None, lambda: False])
def test_a_run_stops_with_a_clear_error_when_its_input_leaves_the_scene(cancel):
    """Deleting the input (or closing the scene) while the progress callback lets the application
    process events: the run stops at the next frame with InputRemoved (a RegistrationCancelled, so
    the panel reports it as a stop), instead of registering on and failing in the output nodes."""
    from EchoRegistrationLib.mrml import InputRemoved

    sim = simulate_sequence(view="A4C", n_frames=5, image_size=(64, 56), seed=4)
    env = standalone_scene()
    node = volume_sequence_node(env.scene, "echo", sim.sequence)
    browser_for(env.scene, node)
    calls = []

    def progress(done, total):
        calls.append(done)
        env.scene.RemoveNode(node)

    with pytest.raises(InputRemoved, match="'echo' was removed from the scene") as stopped:
        analyse(node, RegistrationSettings(chunk_size=1), progress=progress, cancel=cancel)
    assert isinstance(stopped.value, RegistrationCancelled)
    # the default (DLIR + refine) reports 0 pairs done once the network has predicted; it stopped
    # at the refinement's first pair after the removal, not after all four
    assert calls == [0]
    assert env.scene.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems() == 0


def test_a_failure_while_making_outputs_removes_what_was_made(case):
    _, env, node, browser, _, analysis = case
    before = node_ids(env.scene)
    broken = dataclasses.replace(analysis.strain, longitudinal_map=analysis.strain.longitudinal_map[:, :-1])
    with pytest.raises(ValueError, match="do not match"):
        add_outputs(env.scene, browser, node, Analysis(analysis.sequence, analysis.registration, broken))
    assert node_ids(env.scene) == before
    assert browser.GetNumberOfSynchronizedSequenceNodes() == 0


def test_without_a_myocardium_the_outputs_are_the_registration(case):
    _, env, node, browser, _, analysis = case
    outputs = add_outputs(env.scene, browser, node, Analysis(analysis.sequence, analysis.registration))
    assert [n.GetName() for n in outputs.nodes()] == ["echo warped", "echo deformation", "echo frames"]
    frames = table_columns(outputs.frame_table)
    assert list(frames) == ["frame", "time (s)", "NCC before", "NCC after", "folding (%)"]
    np.testing.assert_array_equal(frames["time (s)"], analysis.sequence.frame_times)
    assert frames["NCC after"][1:].mean() > frames["NCC before"][1:].mean()
    assert browser.GetNumberOfSynchronizedSequenceNodes() == 2
    remove_outputs(outputs)
    assert browser.GetNumberOfSynchronizedSequenceNodes() == 0


def test_register_current_frame_for_a_quick_look(case):
    sim, env, node, _, _, analysis = case
    frame = register_frame(node, 3, RegistrationSettings())
    assert (frame.frame, frame.reference) == (3, 0)
    myocardium = sim.sequence.labels[0] == 2
    error = np.linalg.norm(frame.displacement - sim.displacement[3], axis=-1)[myocardium]
    motion = np.linalg.norm(sim.displacement[3], axis=-1)[myocardium]
    print(f"frame 3 myocardial error {error.mean():.2f} mm, motion {motion.mean():.2f} mm")
    assert error.mean() < 0.5 * motion.mean()
    warped, transform = show_frame_registration(env.scene, "echo", frame)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(warped)[0], frame.warped)
    # how it was made travels with both nodes: the model, its licence and the precision
    assert frame.description.startswith("DLIR (echoreg-dlir-camus, licence CC BY-NC-SA 4.0, networks in ")
    assert {n.GetAttribute(REGISTRATION_ATTRIBUTE) for n in (warped, transform)} == {frame.description}
    count = env.scene.GetNumberOfNodes()
    same = register_frame(node, 0, RegistrationSettings())
    assert not same.displacement.any()
    np.testing.assert_array_equal(same.warped, analysis.sequence.frames[0])
    assert show_frame_registration(env.scene, "echo", same, warped, transform) == (warped, transform)
    assert env.scene.GetNumberOfNodes() == count
    assert not slicer.util.arrayFromGridTransform(transform).any()
    assert warped.GetAttribute(REGISTRATION_ATTRIBUTE) == "the reference frame itself: nothing to register"


@pytest.mark.parametrize("model", ["echoreg-dlir-sim", "echoreg-dlir-sim-sequential"])
def test_dlir_quick_look_is_the_frame_of_the_whole_registration(case, model):
    """The quick look registers the frames Apply would for that frame: the pair for the default
    model (to the reference), every frame between for the sequential one, the network seeing the
    whole sequence's intensity window. So it shows what Apply gives for that frame. The network alone
    (refine 0) through the MRML bridge, each model by name; the default method (refined, each pair
    optimised on its own) is compared with Apply in test_workflow."""
    sim, env, node, _, _, _ = case
    from EchoRegistrationLib.registration import register_sequence

    settings = RegistrationSettings(method="dlir", model=model, refine=0, reference=4, device="cpu")  # by name
    whole = register_sequence(sim.sequence, **settings.arguments())
    for frame in (5, 1):
        quick = register_frame(node, frame, settings)
        difference = np.linalg.norm(quick.displacement - whole.displacement[frame], axis=-1)
        motion = np.linalg.norm(sim.displacement[frame] - sim.displacement[4], axis=-1)
        assert difference.mean() < 0.05 and difference.mean() < 0.1 * motion.mean(), frame  # mm
        spread = np.ptp(sim.sequence.frames)
        assert np.abs(quick.warped - whole.warped[frame]).mean() < 0.01 * spread


def test_settings_default_to_the_default_model_refined_and_say_what_is_wrong():
    """The panel's settings default to DLIR + refine 24 (workflow.DEFAULT_METHOD / DEFAULT_REFINE);
    an empty model ("" or None, as the panel holds when it has none chosen) is the default model,
    resolved by the workflow (which leaves it to register_sequence: model None)."""
    assert RegistrationSettings().arguments() == {"method": "dlir", "reference": None, "device": "auto",
                                                  "chunk_size": 4, "model": None, "refine": 24}
    for empty in ("", None):
        settings = RegistrationSettings(method="dlir", model=empty)
        assert settings.describe_model() == SHIPPED_MODEL
        assert settings.arguments()["model"] is None and settings.arguments()["refine"] == 24
    assert RegistrationSettings(method="deformable").arguments() == {
        "method": "deformable", "reference": None, "device": "auto", "chunk_size": 4}
    with pytest.raises(ValueError, match="method must be one of"):
        RegistrationSettings(method="demons")
    arguments = RegistrationSettings(method="dlir", model="m.safetensors", refine=20, reference=2,
                                     device="cpu").arguments()
    assert arguments == {"method": "dlir", "reference": 2, "device": "cpu", "chunk_size": 4,
                         "model": "m.safetensors", "refine": 20}


def test_tables_and_chart_mark_an_unknown_pixel_size_and_unknown_times(case):
    """Issue 13: without pixel size the mm2 / ml columns and EDV / ESV are NaN with marked names and
    units; without frame times the times are NaN and the chart runs over the frame index."""
    _, env, node, browser, _, analysis = case
    bare = dataclasses.replace(analysis.sequence, frame_times=None,
                               metadata={**analysis.sequence.metadata, "spacing_known": False})
    strain = compute_strain(bare, analysis.registration, analysis.strain.myocardium)
    outputs = add_outputs(env.scene, browser, node, Analysis(bare, analysis.registration, strain))
    try:
        frames = table_columns(outputs.frame_table)
        assert np.isnan(frames["LV volume (ml, pixel size unknown)"]).all()
        assert np.isnan(frames["LV area (mm2, pixel size unknown)"]).all()
        assert np.isnan(frames["time from ED (s, frame times unknown)"]).all()
        np.testing.assert_array_equal(frames["GLS endocardial (%)"], strain.gls_endo)
        summary = table_columns(outputs.summary_table)
        edv = summary["measure"].index("EDV")
        assert np.isnan(summary["value"][edv]) and summary["unit"][edv] == "ml, pixel size unknown"
        ef = summary["value"][summary["measure"].index("EF")]
        assert ef == pytest.approx(analysis.strain.ef, abs=1e-9) and np.isfinite(ef)
        series = outputs.chart.GetNthPlotSeriesNode(0)
        assert series.GetXColumnName() == "frame"
        assert outputs.chart.GetXAxisTitle() == "frame index (frame times unknown)"
    finally:
        remove_outputs(outputs)
