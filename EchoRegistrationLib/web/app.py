"""The ``echoreg web`` page: trame (Vue 3 + Vuetify) over a :class:`~.session.WebSession`.

Left: open a cine (a path on the server, or an upload kept in the session's temporary folder),
method and model (with its licence), reference and ES frames, myocardium (three landmarks clicked in the
view, a labelmap, or none), Apply with progress and Cancel (the work runs in a worker thread, the
page stays live). Right: the slice view (rendered on the server by Slicer's displayable managers,
sent as PNG), frame slider and play, grid and strain overlays with opacity, the strain table, the
GLS and segment curves, the CSV download and the scene's nodes.

Served on 127.0.0.1 unless ``host`` says otherwise; one page (one scene) per server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dlir.shipped import SHIPPED_MODEL, list_models
from ..mrml import METHODS, RegistrationSettings
from ..registration import RegistrationCancelled
from ..registration.tracking import DEFAULT_REFINE_START, REFINE_STARTS
from ..sequence import EchoDataError
from ..strain.result import percent_text
from ..workflow import (DEFAULT_METHOD, DEFAULT_REFINE, FLOAT32_HINT, FLOAT32_LABEL, REFINE_START_HINT,
                        REFINE_START_LABEL, parse_frame_number)
from .session import MAX_UPLOAD_MB, MYOCARDIUM_SOURCES, Overlays, UploadRefused, WebSession

LOG = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
PLAY_INTERVAL_S = 0.1
# the settings Apply sends along
FORM = ("method", "model", "refine", "refine_start", "anchor", "float32", "reference", "es_frame", "myocardium")
# sent after FORM: how many cines had been opened when the page showed those settings, so that a form shown
# for one cine (its reference and ES frames) is not applied to the next
FORM_CINE = "cines_opened"
_POLL_S = 0.2
_ERRORS = (EchoDataError, FileNotFoundError, IsADirectoryError, UploadRefused, ValueError)


def _data_url(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


class EchoWebApp:
    """The page and its handlers over one :class:`WebSession` (created in ``folder``).

    Args:
        server: a trame server (``trame.app.get_server(client_type="vue3")``).
        folder: the session's temporary folder.
        max_upload_mb: largest upload accepted.
    """

    def __init__(self, server: Any, folder: Path, max_upload_mb: float = MAX_UPLOAD_MB) -> None:
        self.server, self.state = server, server.state
        self.session = WebSession(folder, max_upload_mb)
        self.models = {m.name: m for m in list_models()}
        self._play_task: asyncio.Task | None = None
        self._run_task: asyncio.Task | None = None
        state = self.state
        state.trame__title = "EchoRegistration"
        state.update({
            "cine_path": "", "cine_upload": None, "labels_path": "", "labels_upload": None,
            "status": "Open a cine: a path on this server, or upload a file.", "error": "",
            "method": DEFAULT_METHOD, "methods": list(METHODS), "model": SHIPPED_MODEL if SHIPPED_MODEL in self.models
            else next(iter(self.models), ""), "models": list(self.models), "licence": "", "refine": DEFAULT_REFINE,
            "refine_start": DEFAULT_REFINE_START, "refine_starts": list(REFINE_STARTS),
            "anchor": True, "float32": False, "reference": "", "es_frame": "", "myocardium": "landmarks", FORM_CINE: 0,
            "myocardium_sources": list(MYOCARDIUM_SOURCES),
            "landmarks": 0, "busy": False, "progress": 0, "has_cine": False, "has_results": False,
            "frame": 0, "last_frame": 0, "playing": False, "grid": True, "strain": True,
            "opacity": Overlays().opacity, "view_src": "", "table_headers": [], "table_rows": [],
            "curves_src": "", "csv_href": "", "csv_name": "frames.csv", "note_href": "",
            "note_name": "frames registration.txt", "registration": "", "scene_nodes": [],
        })
        self._model_licence()
        state.change("model")(lambda **_: self._model_licence())
        state.change("frame")(lambda frame, **_: self._show_frame(frame))
        state.change("grid", "strain", "opacity")(lambda **_: self._overlays())
        state.change("playing")(lambda playing, **_: self._play(playing))
        state.change("cine_upload")(lambda cine_upload, **_: self._upload(cine_upload, self.open_cine))
        state.change("labels_upload")(lambda labels_upload, **_: self._upload(labels_upload, self.open_labels))
        self._build_ui()

    # ------------------------------------------------------------------ actions
    def report(self, action: Callable[[], str]) -> None:
        """Run ``action``; its message, or the error's, goes to the status line."""
        try:
            self.state.status, self.state.error = action(), ""
        except _ERRORS as error:
            self.state.error = str(error)

    def _upload(self, files: Any, open_file: Callable[[Path], str]) -> None:
        if not files:
            return
        upload = files[0] if isinstance(files, list) else files
        content = upload.get("content")
        content = b"".join(content) if isinstance(content, list) else content

        def save_and_open() -> str:
            return open_file(self.session.save_upload(upload.get("name", ""), content or b""))
        self.report(save_and_open)

    def open_cine(self, path: Path | str | None = None) -> str:
        """Open the cine at ``path`` (default: the path field)."""
        path = Path(path or self.state.cine_path).expanduser()
        seq = self.session.open_cine(path)
        # frame numbers chosen on the last cine mean nothing on this one
        self.state.update({"has_cine": True, "has_results": False, "frame": 0, "last_frame": seq.n_frames - 1,
                           FORM_CINE: self.state[FORM_CINE] + 1, "reference": "", "es_frame": "", "landmarks": 0,
                           "table_headers": [], "table_rows": [], "curves_src": "", "csv_href": "",
                           "note_href": "", "registration": ""})
        self._refresh()
        return (f"Opened {path.name}: {seq.n_frames} frames of {seq.frame_shape[0]} x {seq.frame_shape[1]} "
                f"pixels. Click the mitral annulus, the apex and the other annulus point, or load labels.")

    def open_labels(self, path: Path | str | None = None) -> str:
        """Load a labelmap (CAMUS codes) at ``path`` (default: the labels path field)."""
        path = Path(path or self.state.labels_path).expanduser()
        self.session.open_labelmap(path)
        self.state.myocardium = "labelmap"
        self._refresh()
        return f"Labels {path.name} loaded: the myocardium comes from them."

    def on_view_click(self, column: float, row: float) -> None:
        """Place the next landmark where the view was clicked."""
        if not self.state.has_cine or self.state.busy or self.state.myocardium != "landmarks":
            return

        def place() -> str:
            n = self.session.add_landmark(column, row)
            self.state.landmarks = n
            self._refresh()
            return f"{n} of 3 landmarks placed." + (" Press Apply." if n == 3 else "")
        self.report(place)

    def clear_landmarks(self) -> None:
        """Remove the placed landmarks."""
        self.session.clear_landmarks()
        self.state.landmarks = 0
        self._refresh()

    def settings(self) -> RegistrationSettings:
        """The registration settings of the form.

        Raises:
            ValueError: a frame field that is neither empty nor a frame number, named by its label."""
        reference, es_frame = (parse_frame_number(getattr(self.state, key), label) for key, label in
                               (("reference", "Reference frame"), ("es_frame", "ES frame")))
        refine = DEFAULT_REFINE if self.state.refine in (None, "") else int(self.state.refine)  # cleared: default
        return RegistrationSettings(method=self.state.method, model=self.state.model,
                                    refine=refine if self.state.method == "dlir" else 0,
                                    anchor=None if self.state.anchor or self.state.method != "dlir" else 0,
                                    float32=bool(self.state.float32) and self.state.method == "dlir",
                                    reference=reference, es_frame=es_frame,
                                    options={"refine_start": self.state.refine_start}
                                    if self.state.method == "dlir" and refine else {})

    def apply(self, *form: Any) -> None:
        """Start :meth:`run` as a task of the server loop (awaiting it here would hold back the
        page's next messages, Cancel among them, until the run ends). ``form``: the page's values of
        :data:`FORM` at the click, so the run uses what the user saw even when a change made just
        before has not reached the server yet, then its :data:`FORM_CINE`: a form shown before another
        cine was opened is refused (its frame numbers belong to the last cine)."""
        *values, cines_opened = form
        if cines_opened != self.state[FORM_CINE]:
            self.state.error = ("Another cine was opened after these settings were shown: check them (the reference "
                                "and ES frames were cleared) and Apply again.")
            return
        self.state.update(dict(zip(FORM, values)))
        self._run_task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        """Register (and measure strain) in a worker thread, the progress bar following."""
        state = self.state
        if state.busy or not state.has_cine:
            return
        try:
            settings = self.settings()
        except ValueError as error:
            state.error = str(error)
            return
        with state:
            state.update({"busy": True, "progress": 0, "error": "", "playing": False,
                          "status": f"Registering with {settings.method}..."})
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(None, self.session.analyse, settings, state.myocardium)
        LOG.info("apply: %s started", settings.method)
        while not work.done():
            await asyncio.sleep(_POLL_S)
            done, total = self.session.progress
            with state:
                state.progress = round(100 * done / max(total, 1))
        with state:
            state.busy = False
            try:
                analysis = work.result()
            except RegistrationCancelled:
                LOG.info("apply: cancelled")
                state.status = "Cancelled: the scene is as it was."
                return
            except _ERRORS as error:
                state.error, state.status = str(error), "Not run."
                return
            except Exception as error:  # the page must not stay busy: say what failed, log the trace
                LOG.exception("apply failed")
                state.error, state.status = f"{type(error).__name__}: {error}", "Failed."
                return
            self.session.show(analysis)
            self._results()
            state.status = (f"Done: {state.registration} in {analysis.registration.seconds:.1f} s"
                            + ("" if analysis.strain is None else "; GLS at ES " + percent_text(
                                analysis.strain.peaks()["GLS endocardial"]["end_systolic_pct"])))

    def cancel(self) -> None:
        """Stop the run (the worker stops at its next step; nothing is added to the scene)."""
        LOG.info("cancel asked")
        self.session.cancel()
        self.state.status = "Cancelling..."

    # ------------------------------------------------------------------ view
    def _refresh(self) -> None:
        """Send the view and the scene's node list."""
        self.state.view_src = _data_url(self.session.png(), "image/png")
        self.state.scene_nodes = self.session.scene_nodes()

    def _show_frame(self, frame: Any) -> None:
        if self.state.has_cine:
            self.session.select_frame(int(frame))
            self._refresh()

    def _overlays(self) -> None:
        self.session.set_overlays(Overlays(bool(self.state.grid), bool(self.state.strain),
                                           float(self.state.opacity)))
        if self.state.has_cine:
            self._refresh()

    def _results(self) -> None:
        table = self.session.frame_table()
        self.state.table_headers = [{"title": name, "key": f"c{k}"} for k, name in enumerate(table)]
        self.state.table_rows = [{f"c{k}": (round(v, 2) if isinstance(v, float) else v)
                                  for k, v in enumerate(row)} for row in zip(*table.values())]
        csv, note = self.session.export_paths()
        self.state.csv_name, self.state.csv_href = csv.name, _data_url(csv.read_bytes(), "text/csv")
        self.state.note_name, self.state.note_href = note.name, _data_url(note.read_bytes(), "text/plain")
        self.state.registration = self.session.registration_line()
        curves = self.session.curves_path()
        self.state.curves_src = "" if curves is None else _data_url(curves.read_bytes(), "image/png")
        self.state.has_results = True
        self._refresh()

    def _model_licence(self) -> None:
        info = self.models.get(self.state.model)
        self.state.licence = "" if info is None else (
            f"{info.name}: {info.mode.replace('_', ' ')}, licence {info.licence}, "
            f"trained on {', '.join(info.training_data)}")

    def _play(self, playing: bool) -> None:
        if playing and (self._play_task is None or self._play_task.done()):
            self._play_task = asyncio.ensure_future(self._playback())

    async def _playback(self) -> None:
        while self.state.playing and self.state.has_cine:
            with self.state:
                self.state.frame = (int(self.state.frame) + 1) % (self.state.last_frame + 1)
            await asyncio.sleep(PLAY_INTERVAL_S)

    # ------------------------------------------------------------------ page
    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v

        with SinglePageWithDrawerLayout(self.server, width=360) as layout:
            layout.title.set_text("EchoRegistration")
            with layout.drawer, v.VContainer(classes="pa-3"):
                v.VTextField(v_model=("cine_path",), label="Cine on the server (path)", id="cine-path",
                             density="compact", hide_details=True)
                v.VBtn("Open", click=self._clicked(self.open_cine), id="open", size="small", classes="my-1")
                v.VFileInput(v_model=("cine_upload",), label="or upload a cine", id="cine-upload",
                             density="compact", hide_details=True, show_size=True)
                v.VDivider(classes="my-2")
                html.Div("Method", classes="text-caption")
                with v.VBtnToggle(v_model=("method",), mandatory=True, density="compact", id="method"):
                    for method in METHODS:
                        v.VBtn(method, value=method, size="small")
                v.VSelect(v_model=("model",), items=("models",), label="DLIR model", id="model",
                          density="compact", hide_details=True, disabled=("method !== 'dlir'",),
                          classes="mt-2")
                html.Div("{{ licence }}", classes="text-caption", id="licence")
                with v.VRow(dense=True, classes="mt-1"):
                    with v.VCol():
                        v.VTextField(v_model=("reference",), label="Reference frame", placeholder="ED / 0",
                                     id="reference", density="compact", hide_details=True)
                    with v.VCol():
                        v.VTextField(v_model=("es_frame",), label="ES frame", placeholder="file / detected",
                                     id="es_frame", density="compact", hide_details=True)
                    with v.VCol():
                        v.VTextField(v_model=("refine",), label="DLIR refine steps", type="number",
                                     density="compact", hide_details=True, disabled=("method !== 'dlir'",))
                v.VSelect(v_model=("refine_start",), items=("refine_starts",), label=REFINE_START_LABEL,
                          id="refine_start", density="compact", hide_details=True, title=REFINE_START_HINT,
                          disabled=("method !== 'dlir' || !(Number(refine) > 0)",), classes="mt-2")
                v.VCheckbox(v_model=("anchor",), label="Track through a systole anchor (when ES is known)",
                            id="anchor", density="compact", hide_details=True, disabled=("method !== 'dlir'",))
                v.VCheckbox(v_model=("float32",), label=FLOAT32_LABEL,
                            id="float32", density="compact", hide_details=True, disabled=("method !== 'dlir'",),
                            title=FLOAT32_HINT)
                html.Div("Myocardium", classes="text-caption mt-2")
                with v.VRadioGroup(v_model=("myocardium",), inline=True, density="compact", hide_details=True):
                    v.VRadio(label="three landmarks", value="landmarks")
                    v.VRadio(label="labelmap", value="labelmap")
                    v.VRadio(label="none", value="none")
                with html.Div(v_if="myocardium === 'landmarks'", classes="text-caption"):
                    html.Span("{{ landmarks }} of 3 placed (click in the view) ", id="landmark-count")
                    v.VBtn("Clear", click=self.clear_landmarks, size="x-small", variant="text")
                with html.Div(v_if="myocardium === 'labelmap'"):
                    v.VTextField(v_model=("labels_path",), label="Labels on the server (path)",
                                 density="compact", hide_details=True)
                    v.VBtn("Load", click=self._clicked(self.open_labels), size="small", classes="my-1")
                    v.VFileInput(v_model=("labels_upload",), label="or upload labels", density="compact",
                                 hide_details=True)
                v.VDivider(classes="my-2")
                with html.Div(classes="d-flex ga-2"):
                    v.VBtn("Apply", click=(self.apply, f"[{', '.join((*FORM, FORM_CINE))}]"), color="primary",
                           id="apply", disabled=("busy || !has_cine",))
                    v.VBtn("Cancel", click=self.cancel, id="cancel", disabled=("!busy",))
                v.VProgressLinear(model_value=("progress",), height=8, classes="my-2", id="progress",
                                  color="primary")
                html.Div("{{ status }}", id="status", classes="text-body-2")
                html.Div("{{ error }}", id="error", classes="text-body-2 text-error")
                v.VDivider(classes="my-2")
                html.Div("Scene", classes="text-caption")
                with html.Ul(id="scene-nodes", classes="text-caption"):
                    html.Li("{{ name }}", v_for="name in scene_nodes", key="name")
            with layout.content, v.VContainer(fluid=True, classes="pa-2"):
                with v.VRow(dense=True, classes="flex-nowrap"):
                    with v.VCol(cols="auto"):
                        html.Img(src=("view_src",), id="view", draggable="false",
                                 style="width: 560px; height: 480px; display: block; background: #000; "
                                       "cursor: crosshair",
                                 click=(self.on_view_click, "[$event.offsetX, $event.offsetY]"))
                        with html.Div(classes="d-flex align-center ga-2", style="width: 560px"):
                            v.VBtn(icon=("playing ? 'mdi-pause' : 'mdi-play'",), id="play", size="small",
                                   click="playing = !playing", disabled=("!has_cine",))
                            v.VSlider(v_model=("frame",), min=0, max=("last_frame",), step=1, id="frame",
                                      hide_details=True, disabled=("!has_cine",), thumb_label=True)
                            html.Span("frame {{ frame }}", id="frame-label", classes="text-caption")
                        with html.Div(classes="d-flex align-center ga-2", style="width: 560px"):
                            v.VCheckbox(v_model=("grid",), label="Deformation grid", id="grid",
                                        density="compact", hide_details=True)
                            v.VCheckbox(v_model=("strain",), label="Strain map", id="strain",
                                        density="compact", hide_details=True)
                            v.VSlider(v_model=("opacity",), min=0, max=1, step=0.05, id="opacity",
                                      label="opacity", hide_details=True, disabled=("!strain",))
                    with v.VCol(v_if="has_results", style="min-width: 0; overflow-x: auto"):
                        html.Img(src=("curves_src",), id="curves", style="max-width: 100%",
                                 v_if="curves_src")
                        html.A("Download the table (CSV)", href=("csv_href",), download=("csv_name",),
                               id="download-csv", classes="d-block my-2")
                        # the same line as a file, to keep beside the CSV (the Slicer module's Export CSV writes both)
                        html.A("Download how it was registered (TXT)", href=("note_href",), download=("note_name",),
                               id="download-note", classes="d-block my-2")
                        # beside the numbers, how they were made: the model's terms travel with a screenshot
                        html.Div("Registration: {{ registration }}", id="registration", classes="text-caption")
                        v.VDataTable(headers=("table_headers",), items=("table_rows",), density="compact",
                                     items_per_page=-1, id="strain-table", hide_default_footer=True)

    def _clicked(self, action: Callable[[], str]) -> Callable[[], None]:
        """A click handler running ``action`` through :meth:`report`."""
        return lambda: self.report(action)


def configure_logging() -> None:
    """The page's own messages (:data:`LOG`) at INFO, everything else, trame's and wslink's included, at
    WARNING: their INFO is a line per token of every widget (thousands at start)."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.WARNING)
    LOG.setLevel(logging.INFO)


def serve(host: str = DEFAULT_HOST, port: int = 8080, max_upload_mb: float = MAX_UPLOAD_MB,
          cine: str | None = None) -> None:
    """Serve the page until interrupted; the session folder is removed at the end.

    Args:
        host: address to bind (127.0.0.1: this machine only).
        port: TCP port (0: any free one; the address is printed).
        max_upload_mb: largest upload accepted.
        cine: a cine to open at start.
    """
    os.environ.setdefault("WSLINK_MAX_MSG_SIZE", str(int((max_upload_mb + 8) * 2**20)))  # before trame
    from trame.app import get_server

    configure_logging()
    server = get_server("echoreg-web", client_type="vue3")
    with tempfile.TemporaryDirectory(prefix="echoreg-web-") as folder:
        app = EchoWebApp(server, Path(folder), max_upload_mb)
        if cine:
            app.report(lambda: app.open_cine(cine))
        server.start(host=host, port=port, open_browser=False)
