"""The web page's session without a browser (issue 15): uploads stay in the session folder and
respect the size limit, landmarks and a labelmap give the myocardium, the analysis and its outputs go
through the Slicer module's bridge, the CSV holds the table at full precision."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")

from EchoRegistrationLib.io import save_sequence  # noqa: E402
from EchoRegistrationLib.mrml import RegistrationSettings, read_table_csv  # noqa: E402
from EchoRegistrationLib.registration import RegistrationCancelled  # noqa: E402
from EchoRegistrationLib.sequence import EchoDataError  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.web.session import Overlays, UploadRefused, WebSession  # noqa: E402
from EchoRegistrationLib.workflow import describe_registration  # noqa: E402

DLIR = RegistrationSettings(method="dlir", model="echoreg-dlir-sim", refine=0)  # the network alone: fast


@pytest.fixture(scope="module")
def cine(tmp_path_factory):
    sim = simulate_sequence(view="A4C", n_frames=6, image_size=(128, 112), seed=5)
    folder = tmp_path_factory.mktemp("cine")
    return sim, save_sequence(sim.sequence, folder / "small.seq.nrrd")


def test_uploads_stay_in_the_session_folder_and_respect_the_limit(tmp_path):
    session = WebSession(tmp_path / "session", max_upload_mb=1.0)
    path = session.save_upload("../../etc/evil name.seq.nrrd", b"x" * 10)
    assert path == tmp_path / "session" / "uploads" / "evil_name.seq.nrrd" and path.read_bytes() == b"x" * 10
    assert session.save_upload("..hidden", b"").name == "hidden"
    with pytest.raises(UploadRefused, match="limited to 1 MB"):
        session.save_upload("big.seq.nrrd", b"x" * (2**20 + 1))
    with pytest.raises(UploadRefused):
        session.save_upload("..", b"")
    assert sorted(p.name for p in (tmp_path / "session" / "uploads").iterdir()) == ["evil_name.seq.nrrd", "hidden"]


def test_landmarks_clicked_in_the_view_give_the_strain(cine, tmp_path):
    sim, path = cine
    session = WebSession(tmp_path)
    seq = session.open_cine(path)
    with pytest.raises(EchoDataError, match="expected 3 points"):
        session.analyse(DLIR, "landmarks")
    ras_to_xy = np.linalg.inv(slicer.util.arrayFromVTKMatrix(session.view.slice_node.GetXYToRAS()))
    for n, (x_mm, y_mm) in enumerate(sim.landmarks_ed, start=1):
        ras = seq.ijk_to_ras() @ [x_mm / seq.spacing[0], y_mm / seq.spacing[1], 0.0, 1.0]
        x, y = (ras_to_xy @ ras)[:2]
        assert session.add_landmark(x, session.view.size[1] - 1 - y) == n
        np.testing.assert_allclose(session.landmarks.GetNthControlPointPosition(n - 1), ras[:3], atol=0.5)
    with pytest.raises(EchoDataError, match="three landmarks"):
        session.add_landmark(10, 10)
    before = session.scene_nodes()
    session.cancel()  # asked before the run starts: the run stops at once
    with pytest.raises(RegistrationCancelled):
        session.analyse(DLIR, "landmarks")
    assert session.scene_nodes() == before
    analysis = session.analyse(DLIR, "landmarks")
    assert session.scene_nodes() == before  # analysing changes nothing
    assert session.progress == (seq.n_frames - 1, seq.n_frames - 1)
    session.show(analysis)
    assert set(session.scene_nodes()) - set(before) == {
        "small warped", "small deformation", "small longitudinal strain", "small frames",
        "small strain summary", "small strain curves"}
    print(f"GLS at ES {analysis.strain.gls_endo[-1]:.1f} % (true {sim.gls_endo[-1]:.1f} %)")
    assert analysis.strain.gls_endo[-1] == pytest.approx(sim.gls_endo[-1], abs=4.0)
    table, note = session.export_paths()
    columns = read_table_csv(table)
    np.testing.assert_array_equal(columns["GLS endocardial (%)"], analysis.strain.gls_endo)
    assert note.name == "small frames registration.txt"
    assert note.read_text() == describe_registration("dlir", analysis.registration.parameters) + "\n"
    assert session.curves_path().stat().st_size > 10_000
    session.set_overlays(Overlays(grid=False, strain=False))
    assert session.layers().foreground_opacity == 0.0
    assert not session.layers().grid.GetDisplayNode().GetVisibility2D()


def test_a_labelmap_gives_the_myocardium_and_must_match_the_frames(cine, tmp_path):
    import SimpleITK as sitk

    sim, path = cine
    session = WebSession(tmp_path)
    with pytest.raises(EchoDataError, match="open a cine first"):
        session.open_labelmap(path)
    session.open_cine(path)
    wrong = tmp_path / "wrong.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 5), np.uint8)), str(wrong))
    with pytest.raises(EchoDataError, match="do not match"):
        session.open_labelmap(wrong)
    labels = tmp_path / "labels.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(sim.sequence.labels[0].astype(np.uint8)), str(labels))
    session.open_labelmap(labels)
    analysis = session.analyse(DLIR, "labelmap")
    assert analysis.strain.myocardium.source.startswith("labels")
    np.testing.assert_array_equal(analysis.strain.myocardium.mask, sim.sequence.labels[0] == 2)


def test_opening_another_cine_removes_everything_of_the_first(cine, tmp_path):
    _, path = cine
    session = WebSession(tmp_path)
    session.open_cine(path)
    fresh = session.env.scene.GetNumberOfNodes()
    session.show(session.analyse(DLIR, "none"))
    assert session.env.scene.GetNumberOfNodes() > fresh
    session.open_cine(path)
    assert session.scene_nodes() == ["small", "landmarks"]
    assert session.env.scene.GetNodesByClass("vtkMRMLSequenceBrowserNode").GetNumberOfItems() == 1
    assert session.env.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 1  # its proxy
    assert session.env.scene.GetNumberOfNodes() == fresh + 1  # the strain colour table stays, for reuse
