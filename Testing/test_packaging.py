"""The installable package (issue 14): a wheel built from the project carries the shipped DLIR models as
package data, and after installing it into a fresh virtual environment a shipped model registers by
its name (before, the wheel held no weights and ``register_sequence(seq, "dlir")`` failed)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from EchoRegistrationLib.dlir.shipped import list_models

REPO = Path(__file__).resolve().parents[1]

IN_THE_FRESH_ENVIRONMENT = textwrap.dedent("""
    import numpy as np
    import EchoRegistrationLib
    from EchoRegistrationLib import register_sequence
    from EchoRegistrationLib.dlir import list_models
    from EchoRegistrationLib.simulation import simulate_sequence

    print(EchoRegistrationLib.__file__)
    print(" ".join(f"{m.name}={m.path}" for m in list_models()))
    sim = simulate_sequence(seed=10_052, n_frames=3, image_size=(64, 64))
    result = register_sequence(sim.sequence, "dlir", model="echoreg-dlir-sim-sequential", device="cpu")
    error = np.linalg.norm(result.displacement[-1] - sim.displacement[-1], axis=-1)[sim.myocardium_ed].mean()
    motion = np.linalg.norm(sim.displacement[-1], axis=-1)[sim.myocardium_ed].mean()
    print(f"{error:.3f} {motion:.3f}")
""")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(folder), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    return next(folder.glob("echoregistration-*.whl"))


def test_the_wheel_carries_every_shipped_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for info in list_models():
        for file in ("model.safetensors", "model.json"):
            assert f"EchoRegistrationLib/Models/{info.name}/{file}" in names
    assert not any(name.startswith(("Testing/", "benchmarks/", "Resources/")) for name in names)


def test_a_fresh_install_registers_with_a_shipped_model_by_name(wheel, tmp_path):
    """The wheel goes into a new virtual environment whose other packages (torch, numpy, ...) come from
    this one's site-packages, without this checkout's editable install."""
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    site = next((fresh / "lib").glob("python3*/site-packages"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run = subprocess.run([str(fresh / "bin" / "python"), "-c", IN_THE_FRESH_ENVIRONMENT], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    module, models, numbers = run.stdout.strip().splitlines()
    assert Path(module).is_relative_to(site)
    installed = site / "EchoRegistrationLib" / "Models"
    assert models == " ".join(f"{m.name}={installed / m.name}" for m in list_models())
    error, motion = map(float, numbers.split())
    assert motion > 1.0 and error < 0.5 * motion, (error, motion)  # mm: it registers, not just loads
