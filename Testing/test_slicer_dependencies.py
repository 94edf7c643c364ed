"""Inside 3D Slicer only PyTorch is installed on first use (issue 6): everything the module's path
needs (MRML bridge, registration of every kind, DLIR with the shipped weights, strain) must come
from what Slicer bundles (numpy, SimpleITK, VTK) and torch. A fresh interpreter, in which the
packages Slicer lacks cannot be imported, runs the module's scenario on real MRML (slicer-core)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")

# Packages the library uses elsewhere (file readers, figures, training, the CLI) that Slicer's
# Python does not bundle, or bundles in another version (pydicom 2 in older Slicer releases).
NOT_IN_SLICER = ("cv2", "matplotlib", "contourpy", "nrrd", "safetensors", "tqdm", "pydicom",
                 "pylibjpeg", "libjpeg")

SCENARIO = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # any import of it raises ImportError
    import numpy as np
    import slicer
    from EchoRegistrationLib.mrml import (RegistrationSettings, add_outputs, analyse, browser_for,
                                          volume_sequence_node)
    from EchoRegistrationLib.mrml.headless import standalone_scene
    from EchoRegistrationLib.mrml.sequences import volume_node
    from EchoRegistrationLib.dlir.shipped import shipped_model_path
    from EchoRegistrationLib.simulation import simulate_sequence

    sim = simulate_sequence(view="A4C", n_frames=4, image_size=(96, 80), seed=3)
    env = standalone_scene()
    node = volume_sequence_node(env.scene, "echo", sim.sequence)
    browser = browser_for(env.scene, node)
    labelmap = env.scene.AddNode(volume_node(sim.sequence.labels[0], sim.sequence,
                                             slicer.vtkMRMLLabelMapVolumeNode()))
    model = str(shipped_model_path() / "model.safetensors")
    # the default (DLIR, the default model, refine 40), the optimiser, and a checkpoint path alone
    for settings in (RegistrationSettings(), RegistrationSettings(method="deformable"),
                     RegistrationSettings(method="dlir", model=model, refine=0)):
        analysis = analyse(node, settings, labelmap)
        outputs = add_outputs(env.scene, browser, node, analysis)
        assert len(outputs.nodes()) == 6 and np.isfinite(analysis.strain.gls_endo).all()
    print("ok", sorted(name for name in {blocked!r} if sys.modules.get(name) is not None))
""")


def test_the_slicer_path_needs_only_torch_and_what_slicer_bundles():
    root = Path(__file__).resolve().parents[1]
    script = SCENARIO.format(blocked=NOT_IN_SLICER)
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok []")


EXPORT_WITHOUT_TORCH = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # any import of it raises ImportError
    import numpy as np
    from EchoRegistrationLib.dlir.shipped import list_models
    from EchoRegistrationLib.io.atomic import check_writable
    from EchoRegistrationLib.mrml.gui_connection import ParameterGuiConnection
    from EchoRegistrationLib.mrml.headless import standalone_scene
    from EchoRegistrationLib.mrml.tables import read_table_csv, table_node, write_table_csv

    env = standalone_scene()
    columns = {{"frame": np.arange(3), "GLS endocardial (%)": np.array([0.0, -9.5, -18.25]),
               "segment": ["basal septal", "mid septal", "apical septal"]}}
    path = {folder!r} + "/echo frames.csv"
    check_writable(path, False)
    write_table_csv(table_node(env.scene, "echo frames", columns), path)
    back = read_table_csv(path)
    assert back["GLS endocardial (%)"].tolist() == [0.0, -9.5, -18.25] and back["segment"][2] == "apical septal"
    assert len(list_models()) == 4  # the registration models shipped
    print("ok")
""")


def test_the_panel_lists_models_and_exports_tables_without_torch(tmp_path):
    """A saved scene reopened before PyTorch is installed: the model list, the panel connection
    and Export CSV work (issue 17: the export said "Export failed")."""
    root = Path(__file__).resolve().parents[1]
    script = EXPORT_WITHOUT_TORCH.format(blocked=("torch", *NOT_IN_SLICER), folder=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "ok"
