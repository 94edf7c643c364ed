"""Slicer volume sequence files (.seq.nrrd): our reader/writer against real slicer-core MRML."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import nrrd
import numpy as np
import pytest

from input_files import edit_header, write_labelmap_sequence

from EchoRegistrationLib import EchoDataError, EchoSequence
from EchoRegistrationLib.io import attach_labels, read_label_map
from EchoRegistrationLib.io.seqnrrd import is_seq_nrrd, read_seq_nrrd, write_seq_nrrd

# Oblique, left-handed frame axes (as a depth axis pointing down gives): a 30 degree rotation about
# z with the row axis flipped.
_C, _S = math.cos(math.radians(30)), math.sin(math.radians(30))
DIRECTION = np.array([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, 1.0])
TIMES = np.array([0.1, 0.121, 0.14, 0.1625])  # irregular: must come from the index values


def make_sequence(**changes) -> EchoSequence:
    """4 frames of 6 rows x 7 columns, every pixel value distinct, non-trivial geometry."""
    frames = (np.arange(4 * 6 * 7, dtype=np.float32).reshape(4, 6, 7) * 1.5 - 40.25)
    fields = dict(frames=frames, spacing=(0.3, 0.45), frame_times=TIMES, origin=(10.0, -20.0, 30.5),
                  direction=DIRECTION, slice_spacing=0.7, metadata={"source": "synthetic"})
    fields.update(changes)
    return EchoSequence(**fields)


# --------------------------------------------------------------------------- slicer-core helpers
@pytest.fixture(scope="module")
def mrml():
    slicer = pytest.importorskip("slicer", reason="slicer-core (real Slicer MRML) is not installed")
    import slicer.util  # noqa: F401, F811  (array helpers)
    import vtk
    return slicer, vtk


def slicer_write(mrml, path: Path, frames: np.ndarray, ijk_to_ras: np.ndarray, index_values: list[str],
                 vtk_type: int, compress: bool, unit: str = "s", labelmap: bool = False) -> None:
    """Write frames (T, H, W[, C]) as a Slicer volume sequence with vtkMRMLVolumeSequenceStorageNode
    (of label map volumes with ``labelmap``)."""
    slicer, vtk = mrml
    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    sequence.SetIndexName("time")
    sequence.SetIndexUnit(unit)
    colour = frames.ndim == 4
    for frame, value in zip(frames, index_values):
        volume = (slicer.vtkMRMLVectorVolumeNode() if colour else slicer.vtkMRMLLabelMapVolumeNode()
                  if labelmap else slicer.vtkMRMLScalarVolumeNode())
        image = vtk.vtkImageData()
        image.SetDimensions(frame.shape[1], frame.shape[0], 1)
        image.AllocateScalars(vtk_type, frame.shape[2] if colour else 1)
        volume.SetAndObserveImageData(image)
        slicer.util.arrayFromVolume(volume)[0] = frame
        volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
        sequence.SetDataNodeAtValue(volume, value)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(path))
    storage.SetUseCompression(int(compress))
    assert storage.WriteData(sequence) == 1


def slicer_read(mrml, path: Path):
    """A vtkMRMLSequenceNode read from ``path`` by vtkMRMLVolumeSequenceStorageNode."""
    slicer, _ = mrml
    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(sequence) == 1
    return sequence


def ijk_to_ras_of(mrml, volume) -> np.ndarray:
    slicer, vtk = mrml
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


# --------------------------------------------------------------------------- (a) ours -> Slicer
@pytest.mark.parametrize("row_flip", [1.0, -1.0], ids=["left-handed", "right-handed"])
def test_slicer_reads_our_file(mrml, tmp_path, row_flip):
    slicer, _ = mrml
    seq = make_sequence(direction=DIRECTION @ np.diag([1.0, row_flip, 1.0]), ed_index=0, es_index=2)
    sequence = slicer_read(mrml, write_seq_nrrd(seq, tmp_path / "ours.seq.nrrd"))

    assert sequence.GetNumberOfDataNodes() == 4
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "s")
    assert sequence.GetIndexTypeAsString() == "numeric"
    assert [float(sequence.GetNthIndexValue(i)) for i in range(4)] == TIMES.tolist()
    # Slicer's reader makes every IJK frame right-handed: a left-handed frame gets its slice axis
    # negated, which for a single slice moves no pixel centre.
    slice_sign = np.sign(np.linalg.det(seq.direction))
    assert slice_sign == -row_flip
    expected = seq.ijk_to_ras() @ np.diag([1.0, 1.0, slice_sign, 1.0])
    for i in range(4):
        volume = sequence.GetNthDataNode(i)
        assert volume.IsA("vtkMRMLScalarVolumeNode")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), seq.frames[i][None])
        np.testing.assert_allclose(ijk_to_ras_of(mrml, volume), expected, atol=1e-12)
    # the matrix is oblique: the row axis runs along RAS (-sin, cos, 0) * row_flip * 0.45 mm
    np.testing.assert_allclose(expected[:3, 1], np.array([-_S, _C, 0.0]) * row_flip * 0.45, atol=1e-12)


def test_real_cine_through_slicer(mrml, shared_data, tmp_path):
    """A real apical 4-chamber cine (20 x 480 x 560) written by us is read by Slicer pixel-equal."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(shared_data / "echo_a4c" / "a4c_sequence.nii.gz"))
    seq = EchoSequence(frames=sitk.GetArrayFromImage(image), spacing=image.GetSpacing()[:2],
                       frame_times=np.arange(image.GetSize()[2]) * 0.04)
    sequence = slicer_read(mrml, write_seq_nrrd(seq, tmp_path / "a4c.seq.nrrd"))
    slicer, _ = mrml
    assert sequence.GetNumberOfDataNodes() == 20
    for i in (0, 7, 19):
        volume = sequence.GetNthDataNode(i)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume)[0], seq.frames[i])
        np.testing.assert_allclose(volume.GetSpacing(), (0.4, 0.4, 1.0), rtol=1e-7)
    assert float(sequence.GetNthIndexValue(19)) == 19 * 0.04


def test_header_mirrors_slicer_layout(tmp_path):
    path = write_seq_nrrd(make_sequence(), tmp_path / "ours.seq.nrrd")
    header = nrrd.read_header(str(path))
    assert header["sizes"].tolist() == [7, 6, 1, 4]
    assert header["kinds"] == ["domain", "domain", "domain", "list"]
    assert header["labels"] == ["", "", "", "time"] and header["units"] == ["", "", "", "s"]
    assert header["space"] == "left-posterior-superior" and header["encoding"] == "gzip"
    assert header["DataNodeClassName"] == "vtkMRMLScalarVolumeNode"
    assert header["axis 3 index type"] == "numeric"
    assert header["axis 3 index values"] == "0.1 0.121 0.14 0.1625"
    assert np.isnan(header["space directions"][3]).all()
    np.testing.assert_allclose(header["space directions"][:3].T, DIRECTION * [0.3, 0.45, 0.7], atol=1e-15)
    np.testing.assert_array_equal(header["space origin"], [10.0, -20.0, 30.5])


# --------------------------------------------------------------------------- (b) Slicer -> ours
@pytest.mark.parametrize("dtype, vtk_name, compress", [(np.int16, "VTK_SHORT", False),
                                                       (np.uint8, "VTK_UNSIGNED_CHAR", True)])
def test_we_read_slicer_file(mrml, tmp_path, dtype, vtk_name, compress):
    _, vtk = mrml
    expected = make_sequence()
    frames = (np.arange(4 * 6 * 7).reshape(4, 6, 7) * 3 % 251 - (100 if dtype == np.int16 else 0))
    path = tmp_path / "slicer.seq.nrrd"
    slicer_write(mrml, path, frames.astype(dtype), expected.ijk_to_ras(), [str(float(t)) for t in TIMES],
                 getattr(vtk, vtk_name), compress)

    assert is_seq_nrrd(path)
    seq = read_seq_nrrd(path)
    np.testing.assert_array_equal(seq.frames, frames.astype(np.float32))
    assert seq.metadata["pixel_type"] == np.dtype(dtype).name
    np.testing.assert_array_equal(seq.frame_times, TIMES)
    assert seq.frame_times_known and seq.spacing_known
    np.testing.assert_allclose(seq.ijk_to_ras(), expected.ijk_to_ras(), atol=1e-12)
    np.testing.assert_allclose(seq.spacing, (0.3, 0.45), rtol=1e-12)
    assert seq.slice_spacing == pytest.approx(0.7, rel=1e-12)
    np.testing.assert_allclose(seq.origin, (10.0, -20.0, 30.5), atol=1e-12)
    np.testing.assert_allclose(seq.direction, DIRECTION, atol=1e-12)


def test_slicer_colour_sequence_becomes_luma_and_ms_index_becomes_seconds(mrml, tmp_path):
    _, vtk = mrml
    rgb = np.zeros((2, 3, 4, 3), dtype=np.uint8)
    rgb[0, :, :] = (200, 100, 50)
    rgb[1, :, :] = (90, 90, 90)
    path = tmp_path / "colour.seq.nrrd"
    slicer_write(mrml, path, rgb, np.diag([-0.5, -0.5, 1.0, 1.0]), ["0", "33.3"],
                 vtk.VTK_UNSIGNED_CHAR, compress=True, unit="ms")

    seq = read_seq_nrrd(path)
    assert seq.frames.shape == (2, 3, 4)
    np.testing.assert_allclose(seq.frames[0], 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-6)
    np.testing.assert_array_equal(seq.frames[1], 90.0)
    np.testing.assert_allclose(seq.frame_times, [0.0, 0.0333], rtol=1e-12)
    assert "luma" in seq.metadata["note"]
    assert seq.spacing == (0.5, 0.5)


def test_slicer_transform_sequence_is_not_an_image_sequence(mrml, tmp_path):
    slicer, vtk = mrml
    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    for value in ("0", "0.02"):
        grid = vtk.vtkImageData()
        grid.SetDimensions(4, 3, 1)
        grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
        transform = slicer.vtkOrientedGridTransform()
        transform.SetDisplacementGridData(grid)
        node = slicer.vtkMRMLGridTransformNode()
        node.SetAndObserveTransformFromParent(transform)
        sequence.SetDataNodeAtValue(node, value)
    storage = scene.AddNewNodeByClass("vtkMRMLTransformSequenceStorageNode")
    storage.SetFileName(str(tmp_path / "motion.seq.nrrd"))
    assert storage.WriteData(sequence) == 1

    assert not is_seq_nrrd(tmp_path / "motion.seq.nrrd")
    with pytest.raises(EchoDataError, match=r"motion\.seq\.nrrd: is a transform"):
        read_seq_nrrd(tmp_path / "motion.seq.nrrd")


@pytest.mark.parametrize("kind, expected", [("RGB-color", "luma"), ("covariant-vector", "expected scalar")])
def test_multi_component_frames_need_a_colour_kind(tmp_path, kind, expected):
    rgb = np.zeros((3, 7, 6, 1, 2), np.uint8)  # (C, I, J, K, T)
    rgb[0], rgb[1], rgb[2] = 10, 20, 40
    path = tmp_path / "three.seq.nrrd"
    nrrd.write(str(path), rgb, {"space": "left-posterior-superior",
                                "kinds": [kind, "domain", "domain", "domain", "list"],
                                "space directions": np.vstack([np.full(3, np.nan), np.eye(3),
                                                               np.full(3, np.nan)])})
    if expected == "luma":
        seq = read_seq_nrrd(path)
        assert seq.frames.shape == (2, 6, 7)
        np.testing.assert_allclose(seq.frames, 0.299 * 10 + 0.587 * 20 + 0.114 * 40, rtol=1e-6)
        assert not seq.frame_times_known  # no index values in the file
    else:
        with pytest.raises(EchoDataError, match=r"three\.seq\.nrrd: frames hold 3-component 'covariant"):
            read_seq_nrrd(path)


# --------------------------------------------------------------------------- (c) our round trip
def test_round_trip_keeps_everything_it_stores(tmp_path):
    seq = make_sequence()
    back = read_seq_nrrd(write_seq_nrrd(seq, tmp_path / "a.seq.nrrd"))
    assert back.frames.dtype == np.float32
    np.testing.assert_array_equal(back.frames, seq.frames)
    np.testing.assert_array_equal(back.frame_times, seq.frame_times)
    np.testing.assert_allclose(back.spacing, seq.spacing, rtol=1e-15)
    assert back.slice_spacing == pytest.approx(0.7, rel=1e-15)
    np.testing.assert_allclose(back.origin, seq.origin, atol=1e-14)
    np.testing.assert_allclose(back.direction, seq.direction, atol=1e-15)
    assert back.metadata["source"] == str(tmp_path / "a.seq.nrrd")
    assert back.metadata["sequence_index"] == "time (s)"
    assert back.metadata["frame_times_source"] == "sequence index time (s)"  # as every reader records it
    assert back.frame_times_known and back.spacing_known and "note" not in back.metadata


def test_round_trip_keeps_end_diastole_and_end_systole(tmp_path):
    path = write_seq_nrrd(make_sequence(ed_index=0, es_index=2), tmp_path / "phases.seq.nrrd")
    header = nrrd.read_header(str(path))
    assert (header["EchoRegistration.EDFrame"], header["EchoRegistration.ESFrame"]) == ("0", "2")
    back = read_seq_nrrd(path)
    assert (back.ed_index, back.es_index) == (0, 2) and not back.es_set_by_user
    user = read_seq_nrrd(write_seq_nrrd(back.with_end_systole(3), tmp_path / "user.seq.nrrd"))
    assert (user.es_index, user.es_set_by_user, user.es_in_file) == (3, True, 2)  # the user's ES stays the user's
    none = read_seq_nrrd(write_seq_nrrd(make_sequence().with_end_systole(1), tmp_path / "user_only.seq.nrrd"))
    assert (none.es_index, none.es_set_by_user, none.es_in_file) == (1, True, None)
    unknown = read_seq_nrrd(write_seq_nrrd(make_sequence(), tmp_path / "none.seq.nrrd"))
    assert (unknown.ed_index, unknown.es_index) == (None, None)


@pytest.mark.parametrize(("view", "stored"), [("A2C", "A2C"), ("2CH", "2CH"), (None, None),
                                             ("A4C\nencoding: raw", None), ("vue apicale \u00e0 4", None)])
def test_round_trip_keeps_the_view_when_it_is_a_plain_name(tmp_path, view, stored):
    """The view (metadata["view"]: the registration's anatomy warning and strain's segment names read it)
    is kept in EchoRegistration.View; a text a header line cannot hold as it is (a line break, non-ASCII)
    is left out rather than written mangled."""
    seq = make_sequence()
    seq = dataclasses.replace(seq, metadata={**seq.metadata, **({"view": view} if view else {})})
    path = write_seq_nrrd(seq, tmp_path / "view.seq.nrrd")
    assert nrrd.read_header(str(path)).get("EchoRegistration.View") == stored
    assert read_seq_nrrd(path).metadata.get("view") == stored


@pytest.mark.parametrize("value", ["x", "9", "-1"])
def test_a_bad_end_systole_field_names_the_file_and_the_field(tmp_path, value):
    path = write_seq_nrrd(make_sequence(es_index=2), tmp_path / "bad.seq.nrrd")
    edit_header(path, "EchoRegistration.ESFrame:=2", f"EchoRegistration.ESFrame:={value}")
    problem = f"field EchoRegistration.ESFrame must be a frame index 0..3, got '{value}'"
    with pytest.raises(EchoDataError, match=problem) as error:
        read_seq_nrrd(path)
    assert str(path) in str(error.value)


def test_round_trip_of_unknown_times_and_spacing(tmp_path):
    seq = make_sequence(frame_times=None, metadata={"spacing_known": False})
    path = write_seq_nrrd(seq, tmp_path / "b.seq.nrrd")
    assert nrrd.read_header(str(path))["axis 3 index values"] == "0 1 2 3"
    back = read_seq_nrrd(path)
    assert not back.frame_times_known and not back.spacing_known
    assert "not a time" in back.metadata["note"]
    np.testing.assert_array_equal(back.frames, seq.frames)


# --------------------------------------------------------------------------- other layouts
def test_ras_space_is_converted_to_lps(tmp_path):
    seq = make_sequence()
    ijk_to_ras = seq.ijk_to_ras()
    path = tmp_path / "ras.seq.nrrd"
    nrrd.write(str(path), np.transpose(seq.frames, (2, 1, 0))[:, :, None, :],
               {"space": "right-anterior-superior",
                "space directions": np.vstack([ijk_to_ras[:3, :3].T, np.full(3, np.nan)]),
                "space origin": ijk_to_ras[:3, 3], "kinds": ["domain", "domain", "domain", "list"],
                "labels": ["", "", "", "time"], "units": ["", "", "", "s"],
                "axis 3 index type": "numeric", "axis 3 index values": "0.1 0.121 0.14 0.1625"})
    back = read_seq_nrrd(path)
    np.testing.assert_array_equal(back.frames, seq.frames)
    np.testing.assert_allclose(back.ijk_to_ras(), ijk_to_ras, atol=1e-12)
    np.testing.assert_allclose(back.origin, (10.0, -20.0, 30.5), atol=1e-12)


def test_old_slicer_layout_with_list_axis_first(tmp_path):
    """Slicer <= 5.8 wrote sizes T I J K with kinds 'list domain domain domain' and 'axis 0' keys."""
    seq = make_sequence()
    lps = seq.ijk_to_lps()
    data = np.transpose(seq.frames, (0, 2, 1))[..., None]  # (T, I, J, K) in F order
    header = {"space": "left-posterior-superior",
              "space directions": np.vstack([np.full(3, np.nan), lps[:3, :3].T]),
              "space origin": lps[:3, 3], "kinds": ["list", "domain", "domain", "domain"],
              "labels": ["time", "", "", ""], "units": ["ms", "", "", ""],
              "axis 0 index type": "numeric", "axis 0 index values": "100 121 140 162.5"}
    path = tmp_path / "old.seq.nrrd"
    nrrd.write(str(path), data, header)
    assert is_seq_nrrd(path)
    back = read_seq_nrrd(path)
    np.testing.assert_array_equal(back.frames, seq.frames)
    np.testing.assert_allclose(back.frame_times, TIMES, rtol=1e-12)
    np.testing.assert_allclose(back.ijk_to_ras(), seq.ijk_to_ras(), atol=1e-12)


@pytest.mark.parametrize("old, new, note", [
    ("axis 3 index values:=0.1 0.121 0.14 0.1625", "axis 3 index values:=ED mid%20systole ES late",
     "not numeric"),
    ("axis 3 index values:=0.1 0.121 0.14 0.1625", "axis 3 index values:=0.1 0.121 0.121 0.1625",
     "not strictly increasing"),
])
def test_unusable_index_gives_unknown_times_with_note(tmp_path, old, new, note):
    path = write_seq_nrrd(make_sequence(), tmp_path / "idx.seq.nrrd")
    edit_header(path, old, new)
    seq = read_seq_nrrd(path)
    assert not seq.frame_times_known and note in seq.metadata["note"]
    np.testing.assert_array_equal(seq.frame_times, np.arange(4.0))


def test_frame_rate_argument_sets_the_times(tmp_path):
    path = write_seq_nrrd(make_sequence(frame_times=None), tmp_path / "frames.seq.nrrd")
    seq = read_seq_nrrd(path, frame_rate=25.0)
    np.testing.assert_allclose(seq.frame_times, [0.0, 0.04, 0.08, 0.12], rtol=1e-12)
    assert seq.frame_times_known and "frame_rate argument" in seq.metadata["note"]
    assert seq.metadata["frame_times_source"] == "frame_rate argument (25 frames/s)"
    with pytest.raises(EchoDataError, match=r"frames\.seq\.nrrd: frame_rate must be a positive"):
        read_seq_nrrd(path, frame_rate=-5.0)


def test_frame_rate_over_a_time_index_is_refused(tmp_path):
    """The index is the file's own times: another rate over it was taken silently (the note called the
    real index 'not the index'); it is refused naming the index's rate, the same rate changes nothing."""
    path = write_seq_nrrd(make_sequence(frame_times=np.arange(4) / 49.38), tmp_path / "timed.seq.nrrd")
    with pytest.raises(EchoDataError, match=r"timed\.seq\.nrrd: frame rate 60 frames/s given .*records its frame "
                                            r"times \(sequence index time \(s\)\): 49\.38 frames/s"):
        read_seq_nrrd(path, frame_rate=60.0)
    same = read_seq_nrrd(path, frame_rate=49.38)
    np.testing.assert_allclose(same.frame_times, np.arange(4) / 49.38, rtol=1e-9)
    assert "agrees with the sequence index time (s)" in same.metadata["note"]


def test_is_seq_nrrd_tells_plain_nrrd_and_segmentation_apart(tmp_path):
    plain = tmp_path / "plain.nrrd"
    nrrd.write(str(plain), np.zeros((4, 3, 1), np.uint8),
               {"space": "left-posterior-superior", "space directions": np.eye(3)})
    layers = tmp_path / "layers.seg.nrrd"
    nrrd.write(str(layers), np.zeros((2, 4, 3, 1), np.uint8),
               {"space": "left-posterior-superior", "kinds": ["list", "domain", "domain", "domain"],
                "space directions": np.vstack([np.full(3, np.nan), np.eye(3)]),
                "Segment0_ID": "Segment_1"})
    text = tmp_path / "notes.seq.nrrd"
    text.write_text("hello")
    assert not is_seq_nrrd(plain) and not is_seq_nrrd(layers) and not is_seq_nrrd(text)
    assert not is_seq_nrrd(tmp_path / "missing.seq.nrrd")
    with pytest.raises(EchoDataError, match=r"plain\.nrrd: expected one 'list' \(sequence\) axis"):
        read_seq_nrrd(plain)


def test_volume_frames_are_refused(tmp_path):
    path = tmp_path / "vol.seq.nrrd"
    nrrd.write(str(path), np.zeros((4, 3, 2, 5), np.float32),
               {"space": "left-posterior-superior", "kinds": ["domain", "domain", "domain", "list"],
                "space directions": np.vstack([np.eye(3), np.full(3, np.nan)])})
    with pytest.raises(EchoDataError, match=r"vol\.seq\.nrrd: frames are 3D volumes with 2 slices"):
        read_seq_nrrd(path)


# --------------------------------------------------------------------------- (d) errors
def test_truncated_file_names_the_file(tmp_path):
    path = write_seq_nrrd(make_sequence(), tmp_path / "cut.seq.nrrd")
    path.write_bytes(path.read_bytes()[:-60])
    with pytest.raises(EchoDataError, match=r"^.*cut\.seq\.nrrd: not a readable NRRD file"):
        read_seq_nrrd(path)


@pytest.mark.parametrize("old, new", [("sizes: 7 6 1 4", "sizes: 7 six 1 4"),
                                      ("encoding: gzip", "encoding: raw")])
def test_garbled_file_names_the_file(tmp_path, old, new):
    path = write_seq_nrrd(make_sequence(), tmp_path / "bad.seq.nrrd")
    edit_header(path, old, new)
    with pytest.raises(EchoDataError) as error:
        read_seq_nrrd(path)
    assert error.value.source == str(path) and str(error.value).startswith(str(path))


def test_not_nrrd_and_missing_file(tmp_path):
    junk = tmp_path / "junk.seq.nrrd"
    junk.write_bytes(b"\x00\x01 not a nrrd header at all")
    with pytest.raises(EchoDataError, match=r"junk\.seq\.nrrd"):
        read_seq_nrrd(junk)
    with pytest.raises(FileNotFoundError, match=r"missing\.seq\.nrrd"):
        read_seq_nrrd(tmp_path / "missing.seq.nrrd")


def test_existing_file_is_not_overwritten(tmp_path):
    path = write_seq_nrrd(make_sequence(), tmp_path / "keep.seq.nrrd")
    before = path.read_bytes()
    other = make_sequence(frames=np.zeros((4, 6, 7)))
    with pytest.raises(FileExistsError, match=r"keep\.seq\.nrrd"):
        write_seq_nrrd(other, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.seq.nrrd"]  # no temp file left
    write_seq_nrrd(other, path, overwrite=True)
    np.testing.assert_array_equal(read_seq_nrrd(path).frames, 0.0)


def test_slicer_labelmap_sequence_is_a_label_map(mrml, tmp_path):
    _, vtk = mrml
    codes = (np.arange(4 * 6 * 7).reshape(4, 6, 7) % 4).astype(np.int16)  # CAMUS codes 0..3
    path = tmp_path / "labels.seq.nrrd"
    slicer_write(mrml, path, codes, make_sequence().ijk_to_ras(), [str(float(t)) for t in TIMES],
                 vtk.VTK_SHORT, True, labelmap=True)
    assert "vtkMRMLLabelMapVolumeNode" in path.read_bytes()[:2000].decode("latin-1")
    labels = read_label_map(path)
    assert labels.dtype == np.uint8 and np.array_equal(labels, codes)
    cine = make_sequence()
    attached = attach_labels(dataclasses.replace(cine, frames=np.zeros((4, 6, 7))), path)
    assert np.array_equal(attached.label_map(2), codes[2])


def test_labelmap_sequence_written_here_and_non_integer_codes(tmp_path):
    codes = np.zeros((4, 6, 7), np.float32)
    codes[:, 2:4, 3:6] = 2
    path = write_labelmap_sequence(make_sequence(frames=codes), tmp_path / "gt.seq.nrrd")
    assert np.array_equal(read_label_map(path), codes.astype(np.uint8))
    half = write_seq_nrrd(make_sequence(frames=codes + 0.5), tmp_path / "half.seq.nrrd")
    with pytest.raises(EchoDataError, match=r"half\.seq\.nrrd: label map holds non-integer values"):
        read_label_map(half)
