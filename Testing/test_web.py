"""``echoreg web`` in a real browser (Debian's chromium driven by Playwright): the page started on a
free loopback port, the simulated demo cine uploaded, three landmarks clicked in the view, DLIR
run, scrubbed to ES, overlays toggled, the CSV downloaded; asserted on the page, the scene's node
list, the CSV's numbers and the pixels of the view (issue 15). A second test cancels a run and finds
the scene unchanged. Screenshots go to the artefacts folder (``web/``)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
pytest.importorskip("trame", reason="needs the [web] extra (trame)")
playwright = pytest.importorskip("playwright.sync_api", reason="needs the [web] extra (playwright)")
CHROMIUM = os.environ.get("ECHOREG_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True)

from EchoRegistrationLib.demo import DEMO_SEED  # noqa: E402
from EchoRegistrationLib.io import save_sequence  # noqa: E402
from EchoRegistrationLib.simulation import simulate_sequence  # noqa: E402
from EchoRegistrationLib.web.session import WebSession  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Flags that behave on closed networks (no background connections, no host look-ups at start).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
N_FRAMES = 10
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's simulated A4C cine (its seed, fewer frames) as .seq.nrrd, with the true motion."""
    sim = simulate_sequence(view="A4C", cycle="half", n_frames=N_FRAMES, seed=DEMO_SEED)
    return sim, save_sequence(sim.sequence, tmp_path_factory.mktemp("demo") / "simulated_a4c.seq.nrrd")


@pytest.fixture(scope="module")
def server(artefacts):
    """``echoreg web`` on a free loopback port; its address. Stopped at the end; its output is in
    ``web/server.log`` of the artefacts folder."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (artefacts / "web").mkdir(exist_ok=True)
    log_path = artefacts / "web" / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "EchoRegistrationLib.cli", "web", "--port", str(port)],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("echoreg web did not start:\n" + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server, artefacts):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)
        page.goto(server)
        page.locator("#status").wait_for()
        yield page
        browser.close()


def view_pixels(page) -> np.ndarray:
    """(H, W, 3) int RGB of the slice view as the page shows it."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB")).astype(int)


def after_view_update(page, action) -> np.ndarray:
    """Do ``action`` and wait for the server's new picture of the view; its pixels."""
    before = page.locator("#view").get_attribute("src")
    action()
    page.wait_for_function("s => document.querySelector('#view').getAttribute('src') !== s", arg=before)
    page.wait_for_timeout(200)  # decoded and painted
    return view_pixels(page)


def coloured(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(-1) - rgb.min(-1) > 40


def landmark_clicks(sim, path: Path, tmp_path: Path) -> list[tuple[float, float]]:
    """View pixels of the simulator's ED landmarks (annulus, apex, annulus): where the same view
    (same code, same size) draws them."""
    import slicer

    session = WebSession(tmp_path)
    seq = session.open_cine(path)
    ras_to_xy = np.linalg.inv(slicer.util.arrayFromVTKMatrix(session.view.slice_node.GetXYToRAS()))
    clicks = []
    for x_mm, y_mm in sim.landmarks_ed:
        x, y = (ras_to_xy @ seq.ijk_to_ras() @ [x_mm / seq.spacing[0], y_mm / seq.spacing[1], 0.0, 1.0])[:2]
        clicks.append((float(x), float(session.view.size[1] - 1 - y)))
    session.view.close()
    return clicks


def test_the_page_runs_dlir_on_the_demo_cine_with_landmarks(page, demo, artefacts, tmp_path):
    sim, path = demo
    folder = artefacts / "web"
    page.locator("#cine-upload").set_input_files(str(path))
    playwright.expect(page.locator("#status")).to_contain_text(f"{N_FRAMES} frames", timeout=TIMEOUT_MS)
    playwright.expect(page.locator("#licence")).to_contain_text("licence CC BY-NC-SA 4.0")
    for n, (x, y) in enumerate(landmark_clicks(sim, path, tmp_path), start=1):
        shown = after_view_update(page, lambda: page.locator("#view").click(position={"x": x, "y": y}))
        playwright.expect(page.locator("#landmark-count")).to_contain_text(f"{n} of 3")
        marker = coloured(shown)[max(int(y) - 6, 0):int(y) + 7, max(int(x) - 6, 0):int(x) + 7]
        assert marker.mean() > 0.3  # a landmark drawn by Slicer's markups manager where clicked
    assert 0 < coloured(shown).mean() < 0.02  # the three landmarks and their names, nothing else

    page.get_by_role("button", name="dlir", exact=True).click()  # the default method, refined by default
    playwright.expect(page.get_by_label("DLIR refine steps")).to_have_value("24")
    playwright.expect(page.locator("#refine_start")).to_be_enabled()  # refined: where it starts can be chosen
    playwright.expect(page.locator(".v-select").filter(has_text="Refinement start")).to_contain_text("best")
    playwright.expect(page.locator("#float32")).not_to_be_checked()  # bfloat16 where the CPU has AMX
    page.locator("#apply").click()
    playwright.expect(page.locator("#status")).to_contain_text("Done", timeout=TIMEOUT_MS)
    # the status says how: the model and its licence, the networks' precision, the refinement
    playwright.expect(page.locator("#status")).to_contain_text(
        re.compile(r"Done: DLIR \(echoreg-dlir-camus, licence CC BY-NC-SA 4\.0, networks in (bfloat16|float32)\) "
                   r"\+ refine 24 on the images and anatomy maps .*; GLS at ES -\d+\.\d %"))
    assert page.locator("#error").inner_text().strip() == ""
    assert page.locator("#progress").get_attribute("aria-valuenow") == "100"

    both = after_view_update(page, lambda: page.get_by_role("slider").first.press("End"))  # scrub to ES
    playwright.expect(page.locator("#frame-label")).to_have_text(f"frame {N_FRAMES - 1}")
    strain_only = after_view_update(page, lambda: page.get_by_label("Deformation grid").uncheck())
    plain = after_view_update(page, lambda: page.get_by_label("Strain map").uncheck())
    page.screenshot(path=str(folder / "overlays_off.png"))
    print(f"coloured pixels: {coloured(both).mean():.3f} grid + strain, {coloured(strain_only).mean():.3f} "
          f"strain, {coloured(plain).mean():.3f} none (landmarks)")
    assert coloured(both).mean() > coloured(strain_only).mean() + 0.05  # the grid covers the frame
    assert coloured(strain_only).mean() > coloured(plain).mean() + 0.02  # the strain map the wall
    overlay = np.abs(strain_only - plain).sum(-1) > 20
    assert (strain_only[..., 0] - strain_only[..., 2] > 20)[overlay].mean() > 0.7  # red: shortening at ES
    after_view_update(page, lambda: page.get_by_label("Deformation grid").check())
    after_view_update(page, lambda: page.get_by_label("Strain map").check())

    nodes = page.locator("#scene-nodes li").all_inner_texts()
    assert {"simulated_a4c", "simulated_a4c warped", "simulated_a4c deformation",
            "simulated_a4c longitudinal strain", "simulated_a4c frames", "simulated_a4c strain summary",
            "simulated_a4c strain curves", "landmarks"} == set(nodes)
    assert page.locator("#strain-table tbody tr").count() == N_FRAMES
    playwright.expect(page.locator("#registration")).to_contain_text(
        "Registration: DLIR (echoreg-dlir-camus, licence CC BY-NC-SA 4.0, networks in ")
    assert page.locator("#curves").get_attribute("src").startswith("data:image/png;base64,")
    with page.expect_download() as download:
        page.locator("#download-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES))
    gls = float(rows[-1]["GLS endocardial (%)"])
    print(f"GLS at ES {gls:.1f} % (true {sim.gls_endo[-1]:.1f} %)")
    assert gls == pytest.approx(sim.gls_endo[-1], abs=4.0)
    with page.expect_download() as download:
        page.locator("#download-note").click()
    assert download.value.suggested_filename == "simulated_a4c frames registration.txt"
    note = Path(download.value.path()).read_text().strip()
    assert page.locator("#registration").inner_text() == f"Registration: {note}"
    page.mouse.wheel(0, -5000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(folder / "echoreg_web.png"))
    page.locator("#play").click()  # play: the frames advance (from ES round to 0, 1, ...)
    playwright.expect(page.locator("#frame-label")).not_to_have_text(f"frame {N_FRAMES - 1}")
    page.locator("#play").click()
    log = (folder / "server.log").read_text(errors="replace")
    assert "apply: dlir started" in log  # the page's own messages are logged
    assert "trame_server" not in log and len(log.splitlines()) < 100  # trame's INFO is not (a line per token)


def test_cancel_leaves_the_scene_unchanged(page):
    nodes = page.locator("#scene-nodes li").all_inner_texts()
    assert page.locator("#status").inner_text().startswith(("Done", "Opened"))
    page.get_by_role("button", name="deformable", exact=True).click()
    page.locator("#apply").click()
    playwright.expect(page.locator("#status")).to_contain_text("Registering with deformable")
    playwright.expect(page.locator("#cancel")).to_be_enabled()
    page.wait_for_timeout(1000)
    page.locator("#cancel").click()
    playwright.expect(page.locator("#status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    assert page.locator("#scene-nodes li").all_inner_texts() == nodes
    playwright.expect(page.locator("#apply")).to_be_enabled()
