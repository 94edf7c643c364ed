"""The MRML bridge on real MRML (slicer-core): sequence nodes <-> EchoSequence, grid transforms,
tables and CSV, the ED myocardium from segmentation / labelmap / markups nodes (issue 6)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")

from EchoRegistrationLib.io.seqnrrd import read_seq_nrrd  # noqa: E402
from EchoRegistrationLib.mrml import (browser_for, echo_sequence_from_node,  # noqa: E402
                                      field_from_transform_node, grid_transform_node,
                                      myocardium_from_node, read_table_csv, table_columns,
                                      transform_sequence_node, volume_sequence_node,
                                      write_table_csv)
from EchoRegistrationLib.mrml.headless import standalone_scene  # noqa: E402
from EchoRegistrationLib.mrml.myocardium import labels_from_labelmap, labels_from_segmentation  # noqa: E402
from EchoRegistrationLib.mrml.display import show_deformation_grid, show_strain_map, strain_colour_table  # noqa: E402
from EchoRegistrationLib.mrml.sequences import ED_ATTRIBUTE, image_data, volume_node  # noqa: E402
from EchoRegistrationLib.mrml.tables import table_node  # noqa: E402
from EchoRegistrationLib.mrml.transforms import ras_vectors  # noqa: E402
from EchoRegistrationLib.registration.export import displacement_to_itk  # noqa: E402
from EchoRegistrationLib.sequence import EchoDataError  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.strain import myocardium_from_labels  # noqa: E402

# An oblique frame plane: in-plane axes not aligned with the patient axes, a non-zero origin, and
# left-handed (Slicer's .seq.nrrd reader flips the slice axis of such frames).
OBLIQUE = np.array([[0.8, 0.0, -0.6], [0.0, 1.0, 0.0], [-0.6, 0.0, -0.8]])


@pytest.fixture(scope="module")
def sim():
    sim = simulate_sequence(view="A2C", n_frames=5, image_size=(72, 64), seed=5)
    seq = dataclasses.replace(sim.sequence, origin=[12.5, -40.0, 7.0], direction=OBLIQUE,
                              slice_spacing=0.7)
    return dataclasses.replace(sim, sequence=seq)


@pytest.fixture
def env():
    return standalone_scene()


def snapshot(scene):
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_sequence_node_round_trip_keeps_frames_geometry_times_and_ed_es(env, sim):
    seq = sim.sequence
    node = volume_sequence_node(env.scene, "cine", seq)
    assert node.GetNumberOfDataNodes() == 5 and node.GetIndexUnit() == "s"
    back = echo_sequence_from_node(node)
    np.testing.assert_array_equal(back.frames, seq.frames)
    np.testing.assert_array_equal(back.frame_times, seq.frame_times)
    assert back.spacing == pytest.approx(seq.spacing, abs=1e-12)
    assert back.slice_spacing == pytest.approx(0.7)
    np.testing.assert_allclose(back.origin, seq.origin, atol=1e-12)
    np.testing.assert_allclose(back.direction, OBLIQUE, atol=1e-12)
    assert (back.ed_index, back.es_index, back.metadata["view"]) == (0, 4, "A2C")
    np.testing.assert_allclose(back.ijk_to_ras(), seq.ijk_to_ras(), atol=1e-12)
    # a browser's master sequence reads the same
    browser = browser_for(env.scene, node)
    assert browser_for(env.scene, node) is browser
    np.testing.assert_array_equal(echo_sequence_from_node(browser).frames, seq.frames)


def test_unknown_times_colour_frames_and_bad_sequences(env, sim):
    seq = dataclasses.replace(sim.sequence, frame_times=None)
    node = volume_sequence_node(env.scene, "no times", seq)
    assert (node.GetIndexName(), node.GetIndexUnit()) == ("frame", "")
    back = echo_sequence_from_node(node)
    assert not back.frame_times_known and "not a time" in back.metadata["note"]

    colour = env.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "colour")
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = np.stack([gray, gray, gray], axis=-1)
    rgb[0, 0] = (255, 0, 0)
    for t in range(2):
        volume = slicer.vtkMRMLVectorVolumeNode()
        volume_node(np.zeros((3, 4), np.float32), sim.sequence, volume)
        volume.SetAndObserveImageData(image_data(rgb))
        colour.SetDataNodeAtValue(volume, str(40 * t))
    colour.SetIndexUnit("ms")
    frames = echo_sequence_from_node(colour)
    assert frames.frames[1, 2, 3] == pytest.approx(11.0)  # gray stays gray
    assert frames.frames[0, 0, 0] == pytest.approx(0.299 * 255)  # red -> BT.601 luma
    np.testing.assert_allclose(frames.frame_times, [0.0, 0.04])

    with pytest.raises(EchoDataError, match="SequenceNode 'empty': the sequence is empty"):
        echo_sequence_from_node(env.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "empty"))
    moved = volume_sequence_node(env.scene, "moved", sim.sequence)
    shifted = moved.GetNthDataNode(2)
    shifted.SetOrigin(*(np.array(shifted.GetOrigin()) + 1.0))
    with pytest.raises(EchoDataError, match="frame 2 is placed differently"):
        echo_sequence_from_node(moved)
    thick = env.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "3d")
    volume = slicer.vtkMRMLScalarVolumeNode()
    slicer.util.updateVolumeFromArray(volume, np.zeros((2, 3, 4), np.float32))
    thick.SetDataNodeAtValue(volume, "0")
    with pytest.raises(EchoDataError, match="3D volumes with 2 slices"):
        echo_sequence_from_node(thick)
    for value in ("five", "5", "-1"):  # a user-edited ED attribute: not an index of the 5 frames
        broken = volume_sequence_node(env.scene, f"ed {value}", sim.sequence)
        broken.SetAttribute(ED_ATTRIBUTE, value)
        with pytest.raises(EchoDataError, match=f"SequenceNode 'ed {value}': field EchoRegistration.EDFrame "
                                                f"must be a frame index 0..4, got '{value}'"):
            echo_sequence_from_node(broken)
    broken.SetAttribute(ED_ATTRIBUTE, "")  # empty reads as not set
    assert echo_sequence_from_node(broken).ed_index is None


def test_grid_transform_moves_points_where_the_displacement_says(env, sim):
    seq = sim.sequence
    field = sim.displacement[-1]  # ED -> ES, up to about 10 mm
    node = env.scene.AddNode(grid_transform_node(field, seq))
    from_parent = node.GetTransformFromParent()
    ijk_to_ras = seq.ijk_to_ras()
    rows, cols = np.nonzero(seq.labels[0] == 2)
    assert np.abs(field[rows, cols]).max() > 3.0
    for i, j in list(zip(rows, cols))[::40]:
        p = (ijk_to_ras @ [j, i, 0.0, 1.0])[:3]
        moved = np.array(from_parent.TransformPoint(p))
        np.testing.assert_allclose(moved, p + ras_vectors(field[i, j], seq), atol=1e-5)
        # the same point through the ITK field we export (LPS): one convention everywhere
        itk = sitk.DisplacementFieldTransform(displacement_to_itk(field, seq))
        lps = np.diag([-1.0, -1.0, 1.0])
        np.testing.assert_allclose(lps @ itk.TransformPoint(tuple(lps @ p)), moved, atol=1e-5)
        # in-plane result in frame mm coordinates
        expected_mm = np.array([j * seq.spacing[0], i * seq.spacing[1]]) + field[i, j]
        moved_ijk = np.linalg.inv(ijk_to_ras) @ [*moved, 1.0]
        np.testing.assert_allclose(moved_ijk[:2] * seq.spacing, expected_mm, atol=1e-5)
    np.testing.assert_allclose(field_from_transform_node(node, seq), field, atol=1e-5)


def test_volume_and_transform_sequences_saved_as_seq_nrrd_read_back_equal(env, sim, tmp_path):
    seq = sim.sequence
    volumes = volume_sequence_node(env.scene, "cine", seq)
    transforms = transform_sequence_node(env.scene, "fields", sim.displacement, seq, like=volumes)
    assert [transforms.GetNthIndexValue(i) for i in range(5)] == \
        [volumes.GetNthIndexValue(i) for i in range(5)]
    for node, storage_class, name in ((volumes, "vtkMRMLVolumeSequenceStorageNode", "cine.seq.nrrd"),
                                      (transforms, "vtkMRMLTransformSequenceStorageNode", "fields.seq.nrrd")):
        storage = env.scene.AddNewNodeByClass(storage_class)
        storage.SetFileName(str(tmp_path / name))
        assert storage.WriteData(node) == 1

    volumes_back = env.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine back")
    storage = env.scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(tmp_path / "cine.seq.nrrd"))
    assert storage.ReadData(volumes_back) == 1
    for back in (echo_sequence_from_node(volumes_back), read_seq_nrrd(tmp_path / "cine.seq.nrrd")):
        np.testing.assert_array_equal(back.frames, seq.frames)
        np.testing.assert_array_equal(back.frame_times, seq.frame_times)
        np.testing.assert_allclose(back.ijk_to_ras()[:3, [0, 1, 3]], seq.ijk_to_ras()[:3, [0, 1, 3]],
                                   atol=1e-9)
    assert echo_sequence_from_node(volumes_back).ed_index == 0

    fields_back = env.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "fields back")
    storage = env.scene.AddNewNodeByClass("vtkMRMLTransformSequenceStorageNode")
    storage.SetFileName(str(tmp_path / "fields.seq.nrrd"))
    assert storage.ReadData(fields_back) == 1
    assert fields_back.GetNumberOfDataNodes() == 5
    for t in range(5):
        np.testing.assert_allclose(field_from_transform_node(fields_back.GetNthDataNode(t), seq),
                                   sim.displacement[t], atol=1e-5)


def test_table_nodes_and_csv_read_back_equal(env, tmp_path):
    columns = {"frame": np.arange(4), "time (s)": np.array([0.0, 1 / 30, 2 / 30, 0.1]),
               "GLS (%)": np.array([0.0, -3.3333333333333335, -1.2345678901234567e-7, -19.98]),
               "region": ["LV", "basal inferoseptal", "a, b", "x"]}
    node = table_node(env.scene, "strain", columns)
    assert node.GetNumberOfRows() == 4 and node.GetNumberOfColumns() == 4
    read = table_columns(node)
    assert read["frame"].dtype.kind == "i" and read["region"] == columns["region"]
    np.testing.assert_array_equal(read["GLS (%)"], columns["GLS (%)"])
    path = write_table_csv(node, tmp_path / "strain.csv")
    back = read_table_csv(path)
    assert list(back) == list(columns)
    np.testing.assert_array_equal(back["frame"], columns["frame"])
    np.testing.assert_array_equal(back["time (s)"], columns["time (s)"])  # exact, not 6 digits
    np.testing.assert_array_equal(back["GLS (%)"], columns["GLS (%)"])
    assert back["region"] == columns["region"]
    with pytest.raises(FileExistsError):
        write_table_csv(node, path)
    with pytest.raises(ValueError, match="different lengths"):
        table_node(env.scene, "bad", {"a": [1, 2], "b": [1.0]})


def test_myocardium_from_labelmap_segmentation_and_markups(env, sim):
    seq = sim.sequence
    expected = myocardium_from_labels(seq.labels[0], seq.spacing)

    labelmap = env.scene.AddNode(volume_node(seq.labels[0], seq,
                                             slicer.vtkMRMLLabelMapVolumeNode()))
    np.testing.assert_array_equal(labels_from_labelmap(labelmap, seq), seq.labels[0])
    from_labelmap = myocardium_from_node(labelmap, seq)
    np.testing.assert_array_equal(from_labelmap.mask, expected.mask)
    np.testing.assert_allclose(from_labelmap.endo, expected.endo)

    segmentation = env.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ED")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    before = snapshot(env.scene)
    np.testing.assert_array_equal(labels_from_segmentation(segmentation, seq), seq.labels[0])
    assert snapshot(env.scene) == before  # temporary nodes removed
    # names decide over label values: call the label-1 segment "myocardium" and label 2 "LV cavity"
    content = segmentation.GetSegmentation()
    for i, name in enumerate(("Myocardium", "LV cavity", "Left atrium")):
        content.GetNthSegment(i).SetName(name)
    swapped = np.array([0, 2, 1, 3], dtype=np.uint8)[seq.labels[0]]
    np.testing.assert_array_equal(labels_from_segmentation(segmentation, seq), swapped)
    for i, name in enumerate(("LV blood pool", "Myocardium", "LA")):
        content.GetNthSegment(i).SetName(name)
    np.testing.assert_allclose(myocardium_from_node(segmentation, seq).endo, expected.endo)

    # a labelmap on another grid (coarser, shifted) is resampled onto the frame grid
    coarse = dataclasses.replace(seq, frames=seq.frames[:, ::2, ::2],
                                 spacing=(2 * seq.spacing[0], 2 * seq.spacing[1]),
                                 labels=seq.labels[:, ::2, ::2])
    other = env.scene.AddNode(volume_node(coarse.labels[0], coarse,
                                          slicer.vtkMRMLLabelMapVolumeNode()))
    resampled = labels_from_labelmap(other, seq)
    assert resampled.shape == seq.frame_shape
    assert np.mean(resampled[::2, ::2] == coarse.labels[0]) > 0.97

    markups = env.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "landmarks")
    for x, y in sim.landmarks_ed:
        markups.AddControlPoint(*(seq.ijk_to_ras() @ [x / seq.spacing[0], y / seq.spacing[1], 0.0, 1.0])[:3])
    from_points = myocardium_from_node(markups, seq, wall_width=8.0)
    assert from_points.source == "landmarks"
    np.testing.assert_allclose(from_points.landmarks, sim.landmarks_ed, atol=1e-9)
    markups.RemoveNthControlPoint(2)
    with pytest.raises(EchoDataError, match="expected 3 points .* got 2"):
        myocardium_from_node(markups, seq)
    content.RemoveSegment(content.GetNthSegmentID(1))
    with pytest.raises(EchoDataError, match="no myocardium segment"):
        myocardium_from_node(segmentation, seq)


def test_strain_map_display_is_diverging_red_to_blue_with_nan_transparent(env):
    """Through the display node's own image pipeline (what the slice views draw)."""
    volume = env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "strain")
    slicer.util.updateVolumeFromArray(volume, np.array([[[np.nan, -30.0, 0.0, 30.0, -100.0]]], np.float32))
    display = show_strain_map(volume, strain_colour_table(env.scene))
    assert strain_colour_table(env.scene) is display.GetColorNode()  # one table per scene
    display.SetInputImageDataConnection(volume.GetImageDataConnection())
    display.UpdateImageDataPipeline()
    connection = display.GetImageDataConnection()
    connection.GetProducer().Update()
    image = connection.GetProducer().GetOutputDataObject(connection.GetIndex())
    rgba = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    assert rgba[0, 3] == 0  # no strain outside the myocardium: transparent
    np.testing.assert_array_equal(rgba[1:, 3], 255)
    np.testing.assert_allclose(rgba[1, :3], [0x67, 0x00, 0x1F], atol=2)  # -30 %: dark red
    np.testing.assert_allclose(rgba[2, :3], [0xF7, 0xF7, 0xF7], atol=2)  # 0 %: white
    np.testing.assert_allclose(rgba[3, :3], [0x05, 0x30, 0x61], atol=2)  # +30 %: dark blue
    np.testing.assert_array_equal(rgba[4], rgba[1])  # beyond the range: clamped


def test_deformation_grid_is_drawn_in_the_frame_plane(env, sim):
    """The polylines Slicer draws in a slice view through the frame (its transform logic's 2D
    visualisation of the display node we configure)."""
    seq = sim.sequence
    field = np.zeros((*seq.frame_shape, 2))
    field[..., 0] = 2.0  # 2 mm along the columns everywhere
    node = env.scene.AddNode(grid_transform_node(field, seq))
    display = show_deformation_grid(node, spacing_mm=5.0)
    assert display.GetVisibility2D() and display.GetVisualizationMode() == display.VIS_MODE_GRID
    ijk_to_ras = seq.ijk_to_ras()
    slice_to_ras = np.eye(4)
    slice_to_ras[:3, :3] = ijk_to_ras[:3, :3] / [*seq.spacing, seq.slice_spacing]
    slice_to_ras[:3, 3] = (ijk_to_ras @ [32, 36, 0.0, 1.0])[:3]  # the view centred on the frame
    grid = vtk.vtkPolyData()
    assert slicer.vtkSlicerTransformLogic.GetVisualization2d(
        grid, display, slicer.util.vtkMatrixFromArray(slice_to_ras), [0.0, 0.0, 0.0], [40.0, 40.0, 0.0])
    assert grid.GetNumberOfLines() > 10
    magnitude = numpy_support.vtk_to_numpy(grid.GetPointData().GetArray("DisplacementMagnitude"))
    np.testing.assert_allclose(magnitude, 2.0, atol=1e-5)
