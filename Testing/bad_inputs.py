"""A generated corpus of bad inputs for the ``echoreg`` command line (issue 13).

Each :class:`BadInput` builds its files in an empty folder and gives the command to run; the
corpus test (``test_bad_input_corpus.py``) runs it in-process and checks that it ends with the
expected exit status (2 for an error, 130 for Ctrl-C, 0 where the input is awkward but valid) and,
on failure, exactly one line on stderr that names the file (or option) and the problem, with no
traceback, no partial output and nothing changed in the folder. A case that ends with exit 0 has a
``check`` of the right value (the frames read, the spacing, the warning line, blank volume cells).

To add a kind: append a ``BadInput`` to :data:`CASES`; ``build`` writes whatever it needs under the
given folder (small files, from the writers of ``input_files.py``).
"""

from __future__ import annotations

import csv
import errno
import functools
import json
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from input_files import (
    moving_texture,
    region,
    started_at,
    with_header,
    write_compressed_us,
    write_labelmap_sequence,
    write_mjpg,
    write_us,
    write_ybr_full_422,
    written_nifti,
)
from pydicom.uid import RLELossless

from EchoRegistrationLib import EchoSequence, load_sequence, save_sequence
from EchoRegistrationLib.dlir.shipped import shipped_model_path

Build = Callable[[Path], list[str]]
Patch = Callable[[pytest.MonkeyPatch], None]
Check = Callable[[Path, str, str], None]
"""Asserts the right value of a case that ends with exit 0, given the case folder (outputs under
it), the console's stdout and its stderr."""


@dataclass(frozen=True)
class BadInput:
    """One corpus entry.

    Attributes:
        name: test id.
        build: writes the case's files under a folder and returns the ``echoreg`` arguments.
        says: text the one error line must contain (the file or option, and the problem), with
            ``{dir}`` replaced by the case folder.
        exit_status: 2 (error), 130 (interrupted) or 0 (valid).
        patch: optional fault injection (a full disk, Ctrl-C at a given step).
        changes: paths (relative to the case folder) the command may create; default none.
        check: for exit 0, asserts the right value (see :data:`Check`).
    """

    name: str
    build: Build
    says: tuple[str, ...] = ()
    exit_status: int = 2
    patch: Patch | None = None
    changes: tuple[str, ...] = field(default_factory=tuple)
    check: Check | None = None


def cine(folder: Path, name: str = "cine.seq.nrrd") -> Path:
    """A 3-frame 40 x 36 texture cine moving one column per frame."""
    texture = np.random.default_rng(0).uniform(0, 255, (40, 36)).astype(np.float32)
    frames = np.stack([np.roll(texture, shift, axis=1) for shift in (0, 1, 2)])
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.4), frame_times=[0.0, 0.02, 0.04])
    return save_sequence(seq, folder / name)


def register(folder: Path, *options: str, output: str = "out") -> list[str]:
    """``register`` of the corpus cine (rigid, few steps: the cases are about failing cleanly)."""
    return ["register", str(cine(folder)), "-o", str(folder / output), "--method", "rigid",
            "--iterations", "3", *options]


def dlir_with_model(model: Callable[[Path], Path]) -> Build:
    """A ``register --method dlir --model M`` case, ``model`` writing the model file(s)."""
    def build(folder: Path) -> list[str]:
        return ["register", str(cine(folder)), "-o", str(folder / "out"), "--method", "dlir",
                "--model", str(model(folder))]
    return build


def shipped_copy(folder: Path) -> Path:
    """A copy of the shipped model's folder (weights + model.json) under ``folder``."""
    return Path(shutil.copytree(shipped_model_path(), folder / "model"))


def pickle_model(folder: Path) -> Path:
    path = folder / "model.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return path


def truncated_weights(folder: Path) -> Path:
    model = shipped_copy(folder)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:len(data) // 2])
    return model


def garbage_header(folder: Path) -> Path:
    model = shipped_copy(folder)
    data = bytearray((model / "model.safetensors").read_bytes())
    data[8:40] = b"\xff" * 32  # the JSON header is no longer text
    (model / "model.safetensors").write_bytes(bytes(data))
    return model


def with_config(text: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        model = shipped_copy(folder)
        (model / "model.json").write_text(text)
        return model
    return write


def wrong_architecture(folder: Path) -> Path:
    model = shipped_copy(folder)
    config = json.loads((model / "model.json").read_text())
    config["architecture"]["unet"]["encoder"] = [8, 8]  # not the network these weights are for
    (model / "model.json").write_text(json.dumps(config))
    return model


def vae_model(folder: Path) -> Path:
    from EchoRegistrationLib.dlir import MaskVAE, save_model

    save_model(MaskVAE(label=1, latent_size=4, channels=[4, 8], input_size=16), folder / "vae")
    return folder / "vae"


def fail_write(error: BaseException, target: str) -> Patch:
    """Fault injection: ``target`` (``module.function``) raises ``error`` when called."""
    module, name = target.rsplit(".", 1)

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def broken(*args, **kwargs):
            raise error
        monkeypatch.setattr(f"{module}.{name}", broken)
    return patch


def existing_output(folder: Path) -> list[str]:
    """An earlier run's report.json in the output folder: not to be replaced without --overwrite."""
    (folder / "out").mkdir()
    (folder / "out" / "report.json").write_text("earlier run\n")
    return register(folder)


def below_a_file(folder: Path) -> list[str]:
    (folder / "notes.txt").write_text("a file, not a folder\n")
    return register(folder, output="notes.txt/out")


def read_only_output(folder: Path) -> list[str]:
    """An output folder that cannot be written: a read-only folder, or (as root, whom permissions
    do not stop) a place in /sys, where nobody may create folders."""
    if os.geteuid() == 0:
        args = register(folder)
        args[args.index("-o") + 1] = "/sys/echoreg-corpus-out"
        return args
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return register(folder, output="locked/out")


def convert_into_read_only(name: str) -> Build:
    """``convert`` into a folder that cannot be written (as :func:`read_only_output`): the error
    names the file asked for, not the temporary file beside it."""
    def build(folder: Path) -> list[str]:
        registering = read_only_output(folder)  # writes the corpus cine; its output's folder exists
        return ["convert", registering[1], str(Path(registering[3]).parent / name)]
    return build


def short_nifti_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: ITK's NIfTI writer stops part-way (a full disk, ``ulimit -f``) and, as it
    does, only prints its error."""
    write = sitk.WriteImage

    def short(image, name, *args, **kwargs):
        write(image, name, *args, **kwargs)
        whole = Path(name).read_bytes()
        Path(name).write_bytes(whole[:len(whole) // 2])
    monkeypatch.setattr(sitk, "WriteImage", short)


def train_into_read_only(folder: Path) -> list[str]:
    """``train dlir`` into a folder that cannot be written (as :func:`read_only_output`)."""
    output = read_only_output(folder)[3]
    return ["train", "dlir", "--data", "sim:0-2", "-o", f"{output}/run", "--scales", "16", "--iterations", "2",
            "--device", "cpu"]


def full_disk_on_rerun(folder: Path) -> list[str]:
    """The disk fills while writing over an earlier run's complete output set (--overwrite)."""
    return [*existing_output(folder), "--overwrite"]


def strain_over_earlier_run(folder: Path) -> list[str]:
    """``strain`` (myocardium from landmarks) over an earlier run's output, with --overwrite."""
    (folder / "strain").mkdir()
    (folder / "strain" / "strain_frames.csv").write_text("earlier run\n")
    return ["strain", str(cine(folder)), "-o", str(folder / "strain"), "--landmarks", "4,14,9,2,14,14",
            "--wall-width", "2", "--method", "rigid", "--overwrite"]


def few_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration with 2 optimiser steps (``strain`` has no --iterations; its cases here are
    about failing cleanly or about units, not about motion)."""
    from EchoRegistrationLib import registration

    full = registration.register_sequence
    monkeypatch.setattr("EchoRegistrationLib.registration.register_sequence",
                        lambda *args, **kwargs: full(*args, iterations=2, **kwargs))


def interrupt_strain_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the strain pictures are written, after a short registration."""
    few_iterations(monkeypatch)
    fail_write(KeyboardInterrupt(), "EchoRegistrationLib.strain.outputs.save_strain_map")(monkeypatch)


# ---------------------------------------------------------------------------- awkward inputs (issue 13)
FRAMES = np.random.default_rng(13).integers(0, 256, size=(5, 12, 16), dtype=np.uint8)
"""The frames of the small DICOM / NIfTI cases: 5 frames of 12 rows x 16 columns, distinct values."""


def converted(make_input: Callable[[Path], Path], *options: str) -> Build:
    """``convert INPUT out.seq.nrrd``: the frames the tool read come back in a file the check can open, one that
    holds all the reader establishes (an unknown pixel size too: another format adds a warning that it does not)."""
    def build(folder: Path) -> list[str]:
        return ["convert", str(make_input(folder)), str(folder / "out.seq.nrrd"), *options]
    return build


def info(make_input: Callable[[Path], Path], *options: str) -> Build:
    """``info INPUT``: what the tool establishes about the input, on stdout."""
    def build(folder: Path) -> list[str]:
        return ["info", str(make_input(folder)), *options]
    return build


def reads(expected: np.ndarray, spacing: tuple[float, float] | None = None, warning: str | None = None,
          atol: float = 0.0) -> Check:
    """Check: ``out.seq.nrrd`` holds exactly ``expected`` (the frames that exist: none invented, none
    lost), with ``spacing`` when given, and stderr is that one warning (or nothing)."""
    def check(folder: Path, out: str, err: str) -> None:
        seq = load_sequence(folder / "out.seq.nrrd")
        assert seq.frames.shape == expected.shape, seq.frames.shape
        np.testing.assert_allclose(seq.frames, expected, atol=atol)
        if spacing is not None:
            assert seq.spacing == pytest.approx(spacing, rel=1e-6)
        assert_one_warning(err, warning)
    return check


def says(*texts: str, warning: str | None = None) -> Check:
    """Check: stdout contains each of ``texts`` and stderr is that one warning (or nothing)."""
    def check(folder: Path, out: str, err: str) -> None:
        for text in texts:
            assert text in out, out
        assert_one_warning(err, warning)
    return check


def assert_one_warning(err: str, warning: str | None) -> None:
    """stderr is one ``echoreg: warning:`` line containing ``warning``, or empty when None."""
    lines = [line for line in err.splitlines() if line.strip()]
    if warning is None:
        assert not lines, err
    else:
        assert len(lines) == 1 and lines[0].startswith("echoreg: warning: ") and warning in lines[0], err


def rle_declaring_more(folder: Path) -> Path:
    """RLE multi-frame holding 5 frames, declaring 7 (the issue's example declared 12 of 10)."""
    return write_compressed_us(folder / "rle.dcm", FRAMES, RLELossless, 7, offsets=False, FrameTime=20)


def native_declaring_fewer(folder: Path) -> Path:
    """Native multi-frame holding 5 frames, declaring 3."""
    return with_header(write_us(folder / "native.dcm", FRAMES), NumberOfFrames=3)


YBR = np.concatenate([FRAMES[:3, ..., None], np.full((3, 12, 16, 2), 128, np.uint8)], axis=-1)
"""3 frames of Y, Cb, Cr samples with neutral chroma: gray pixels whose luma is Y."""


def signed_deltas(folder: Path) -> Path:
    """A region with PhysicalDeltaX +0.04 cm, PhysicalDeltaY -0.02 cm (the sign is the direction)."""
    return write_us(folder / "signed.dcm", FRAMES, regions=[region(0, 0, 15, 11, delta_cm=(0.04, -0.02))])


def malformed_uid(folder: Path) -> Path:
    """A SOP instance UID with a component that starts with 0 (breaks the UI value rules; pydicom
    warns and reads on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's own, on setting it: made on purpose
        return with_header(write_us(folder / "uid.dcm", FRAMES), SOPInstanceUID="1.2.03.4")


def huge_header(folder: Path) -> Path:
    """A header declaring 60000 x 60000 pixels in 5000 frames over 960 bytes of pixel data."""
    return with_header(write_us(folder / "huge.dcm", FRAMES), Rows=60000, Columns=60000, NumberOfFrames=5000)


def with_nan(name: str, value: float) -> Callable[[Path], Path]:
    """``FRAMES`` as float32 in ``name`` with ``value`` at frame 1, row 2, column 3 and frame 4, row 0, column 0."""
    def write(folder: Path) -> Path:
        frames = FRAMES.astype(np.float32)
        frames[1, 2, 3] = frames[4, 0, 0] = value
        sitk.WriteImage(sitk.GetImageFromArray(frames), str(folder / name))
        return folder / name
    return write


def with_spacing(spacing: tuple[float, float]) -> Callable[[Path], Path]:
    """``FRAMES`` in a MetaImage of pixel size ``spacing`` mm."""
    def write(folder: Path) -> Path:
        image = sitk.GetImageFromArray(FRAMES.astype(np.float32))
        image.SetSpacing((*spacing, 1.0))
        sitk.WriteImage(image, str(folder / "odd.mha"))
        return folder / "odd.mha"
    return write


def nifti_with_pixdim(pixdim: tuple[float, float]) -> Callable[[Path], Path]:
    """``FRAMES`` as NIfTI (X, Y, T) declaring pixel size ``pixdim`` (pixdim[1:3])."""
    return lambda folder: written_nifti(folder / "pixdim.nii", FRAMES, pixdim)


def truncated_nifti(name: str) -> Callable[[Path], Path]:
    """A uint8 NIfTI cine (``.nii`` or ``.nii.gz``) cut before its last frame ends: ITK reads the
    missing voxels as 0."""
    def make(folder: Path) -> Path:
        whole = written_nifti(folder / f"whole_{name}", FRAMES, dtype=np.uint8).read_bytes()
        (folder / f"whole_{name}").unlink()
        path = folder / name
        path.write_bytes(whole[:len(whole) - 40 if name.endswith(".nii") else len(whole) // 2])
        return path
    return make


def frames_file(path: Path) -> Path:
    """``FRAMES`` as float32 at 0.3 x 0.4 mm, saved as ``path`` (its suffix picks the format)."""
    return save_sequence(EchoSequence(frames=FRAMES.astype(np.float32), spacing=(0.3, 0.4)), path)


def metaimage_without_data(folder: Path) -> Path:
    """A .mhd header whose data file (cine.raw) is gone."""
    header = frames_file(folder / "cine.mhd")
    (folder / "cine.raw").unlink()
    return header


def truncated_metaimage(folder: Path) -> Path:
    """A .mha whose local pixel data lose their last 40 bytes."""
    path = frames_file(folder / "cut.mha")
    path.write_bytes(path.read_bytes()[:-40])
    return path


def metaimage_header_cut(folder: Path) -> Path:
    """A .mha cut inside its text header, before ElementDataFile (ITK printed five lines of its own)."""
    path = frames_file(folder / "head.mha")
    whole = path.read_bytes()
    path.write_bytes(whole[:whole.index(b"ElementDataFile")])
    return path


def nifti_x_y_1_t(folder: Path) -> Path:
    """``FRAMES`` as a NIfTI of size (16, 12, 1, 5): a singleton third axis, time on the fourth."""
    image = sitk.GetImageFromArray(FRAMES.reshape(5, 1, 12, 16), isVector=False)
    image.SetSpacing((0.3, 0.25, 1.0, 0.04))
    sitk.WriteImage(image, str(folder / "xy1t.nii.gz"))
    return folder / "xy1t.nii.gz"


CODES = np.zeros((3, 40, 36), np.uint8)
CODES[:, 10:30, 8:28] = 2
CODES[:, 14:26, 12:24] = 1
"""CAMUS codes (1 cavity, 2 myocardium) on the corpus cine's grid, on every frame."""


def with_labels(save_labels: Callable[[EchoSequence, Path], Path], name: str, option: str = "--labels",
                codes: np.ndarray = CODES) -> Build:
    """``info`` of the corpus cine with ``codes`` written by ``save_labels`` to ``name`` and passed as ``option``."""
    def build(folder: Path) -> list[str]:
        labels = save_labels(EchoSequence(frames=codes, spacing=(0.5, 0.4)), folder / name)
        return ["info", str(cine(folder)), option, str(labels)]
    return build


def save(seq: EchoSequence, path: Path) -> Path:
    """:func:`save_sequence` in the argument order of the label writers."""
    return save_sequence(seq, path)


def strain_of(make_input: Callable[[Path], Path], *landmarks: float) -> Build:
    """``strain`` (rigid: these cases are about units, not motion) from three landmarks."""
    def build(folder: Path) -> list[str]:
        return ["strain", str(make_input(folder)), "-o", str(folder / "strain"), "--method", "rigid",
                "--landmarks", ",".join(map(str, landmarks)), "--wall-width", "2"]
    return build


def strain_csv(folder: Path) -> list[list[str]]:
    """The rows of ``strain/strain_frames.csv``."""
    with open(folder / "strain" / "strain_frames.csv", newline="") as f:
        return list(csv.reader(f))


def strain_json(folder: Path) -> dict:
    """``strain/strain_summary.json``."""
    return json.loads((folder / "strain" / "strain_summary.json").read_text())


def volumes_unmeasured(folder: Path, out: str, err: str) -> None:
    """Check: no pixel size: EDV / ESV / areas blank (CSV cells, JSON null), said on the console,
    no number in ml printed; EF and strain (ratios) reported."""
    assert "EDV, ESV not measured: pixel size unknown" in out and " ml" not in out, out
    assert "--landmarks read in pixels (column, row)" in err and "pixel size unknown" in err, err
    rows = strain_csv(folder)
    assert rows[0][-2:] == ["LV area (mm2, pixel size unknown)", "LV volume (ml, pixel size unknown)"]
    assert all(row[-2:] == ["", ""] for row in rows[1:])
    report = strain_json(folder)
    assert report["spacing_known"] is False and report["volumes"]["edv_ml"] is None
    assert report["volumes"]["ef_pct"] is not None


def times_unknown(folder: Path, out: str, err: str) -> None:
    """Check: no frame times: the peak is given by its frame, times are blank, no ms invented."""
    assert "frame times unknown)" in out and " ms" not in out, out
    rows = strain_csv(folder)
    assert rows[0][1:3] == ["time (s, frame times unknown)", "time from ED (s, frame times unknown)"]
    assert all(row[1:3] == ["", ""] for row in rows[1:])
    report = strain_json(folder)
    assert report["frame_times_known"] is False and report["gls_endocardial"]["time_to_peak_s"] is None


def video(folder: Path) -> Path:
    """The corpus texture as a 50 /s MJPG video (no pixel size)."""
    return write_mjpg(folder / "cine.avi", np.stack([np.roll(FRAMES[0].repeat(3, 0).repeat(3, 1), s, 1)
                                                     for s in range(4)]))


def nifti(folder: Path) -> Path:
    """The corpus texture as NIfTI (X, Y, T) at 0.3 x 0.4 mm: no frame times."""
    return written_nifti(folder / "cine.nii", np.stack([np.roll(FRAMES[0].repeat(3, 0).repeat(3, 1), s, 1)
                                                        for s in range(4)]))


@functools.cache
def beat() -> tuple[EchoSequence, np.ndarray, np.ndarray]:
    """A simulated A4C beat (11 frames of 64 x 64 at 25 /s) played from its ES on, as a file without
    ED / ES gives it: the cine, its exact fields from frame 0 and the original frame of each frame."""
    from EchoRegistrationLib.simulation import simulate_sequence

    sim = simulate_sequence(view="A4C", cycle="full", n_frames=11, image_size=(64, 64), frame_rate=25.0,
                            seed=7)
    cine_, registration, order, _ = started_at(sim, sim.sequence.es_index)
    return cine_, registration.displacement, order


def starting_at_es(folder: Path) -> list[str]:
    """``strain`` of the beat starting at ES, the myocardium from frame 0's labels; the exact
    fields wait beside the cine for :func:`exact_tracking`."""
    seq, fields, _ = beat()
    save_sequence(EchoSequence(frames=seq.frames, spacing=seq.spacing, frame_times=seq.frame_times),
                  folder / "beat.seq.nrrd")
    save_sequence(EchoSequence(frames=seq.labels[None], spacing=seq.spacing), folder / "beat_labels.nii.gz")
    np.save(folder / "beat_fields.npy", fields)
    return ["strain", str(folder / "beat.seq.nrrd"), "--labels", str(folder / "beat_labels.nii.gz"),
            "-o", str(folder / "strain"), "--apical-view", "A4C"]


def exact_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration replaced by the exact fields saved beside the cine (the case is about the reference frame)."""
    from EchoRegistrationLib.strain import result_from_displacement

    monkeypatch.setattr("EchoRegistrationLib.registration.register_sequence",
                        lambda seq, *args, reference, **kwargs: result_from_displacement(
                            seq, np.load(Path(seq.source).parent / "beat_fields.npy"), reference))


def ed_detected(folder: Path, out: str, err: str) -> None:
    """Check: ED is found at the original ED (the frame where the beat wraps), said on the console
    and in the JSON, and strain relative to it shortens (negative peak GLS)."""
    ed = int(np.flatnonzero(beat()[2] == 0)[0])  # 4 of 10
    report = strain_json(folder)
    assert report["ed_frame"] == ed and report["es_frame"] == 0
    assert report["ed_frame_source"].startswith("detected")
    assert f"echoreg: warning: ED not given by the file: frame {ed} was detected as ED" in err, err
    assert report["gls_endocardial"]["peak_pct"] < -5.0


def blank_frame(folder: Path) -> list[str]:
    """Texture moving 1 column (0.5 mm) left per frame, frame 2 entirely 0 (the optimiser, few steps)."""
    frames = moving_texture()
    frames[2] = 0
    path = save_sequence(EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(5) / 50),
                         folder / "gap.seq.nrrd")
    return ["register", str(path), "-o", str(folder / "out"), "--method", "deformable", "--iterations", "10"]


def bridged(folder: Path, out: str, err: str) -> None:
    """Check: frame 2 named, bridged by interpolation, and the motion right across it."""
    assert "echoreg: warning: frame 2: no signal" in err and "interpolated in time from frame(s) 1 and 3" in err
    with np.load(folder / "out" / "displacement.npz") as npz:
        ux = npz["displacement"][:, 4:-4, np.r_[4:22, 42:60], 0].mean(axis=(1, 2))
        assert npz["no_signal"].tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(ux, [0, -0.5, -1.0, -1.5, -2.0], atol=0.1)


def iterations_recorded(folder: Path, out: str, err: str) -> None:
    """Check: the 3 frames registered with the one step asked for, recorded in report.json."""
    report = json.loads((folder / "out" / "report.json").read_text())
    assert len(report["frames"]) == 3 and report["parameters"]["iterations"] == 1


CUDA = "cuda:99" if torch.cuda.is_available() else "cuda"
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as zipfile raises it: no file name

CASES: list[BadInput] = [
    # bad model files
    BadInput("model-pickle", dlir_with_model(pickle_model), ("model.pt", "not a usable model checkpoint")),
    BadInput("model-truncated-safetensors", dlir_with_model(truncated_weights),
             ("model.safetensors", "not a usable model checkpoint")),
    BadInput("model-garbage-header", dlir_with_model(garbage_header), ("model.safetensors", "corrupt")),
    BadInput("model-json-invalid", dlir_with_model(with_config("{not json")),
             ("model.json: not a usable model checkpoint", "Expecting property name")),
    BadInput("model-json-list", dlir_with_model(with_config("[1, 2]")),
             ("model.json", "not an EchoRegistration DLIR checkpoint")),
    BadInput("model-json-wrong-kind", dlir_with_model(with_config('{"format": "x", "kind": "y"}')),
             ("model.json", "format 'x', kind 'y'")),
    BadInput("model-json-wrong-architecture", dlir_with_model(wrong_architecture),
             ("model.json: not a usable model checkpoint", "decoder levels")),
    BadInput("model-vae-not-registration", dlir_with_model(vae_model), ("vae", "not a registration model")),
    BadInput("model-missing", dlir_with_model(lambda folder: folder / "nowhere"),
             ("nowhere", "no such checkpoint")),
    # bad options
    BadInput("reference-999", lambda folder: register(folder, "--reference", "999"),
             ("cine.seq.nrrd", "reference frame 999 is outside 0..2")),
    BadInput("reference-negative", lambda folder: register(folder, "--reference", "-1"),
             ("cine.seq.nrrd", "reference frame -1 is outside 0..2")),
    BadInput("device-cuda-unavailable", lambda folder: register(folder, "--device", CUDA),
             ("--device", "CUDA")),
    BadInput("device-unknown", lambda folder: register(folder, "--device", "gpu0"),
             ("--device", "not a device name")),
    BadInput("control-spacing-0", lambda folder: register(folder, "--control-spacing", "0"),
             ("--control-spacing", "positive number")),
    BadInput("control-spacing-nan", lambda folder: register(folder, "--control-spacing", "nan"),
             ("--control-spacing", "positive number")),
    BadInput("iterations-negative", lambda folder: register(folder, "--iterations", "-3"),
             ("--iterations", ">= 1, got -3")),
    BadInput("iterations-text", lambda folder: register(folder, "--iterations", "many"),
             ("--iterations", "whole number")),
    BadInput("refine-negative", lambda folder: register(folder, "--refine", "-1"), ("--refine", ">= 0")),
    # optimiser options with the default method (DLIR + refine): --iterations is not its steps
    BadInput("iterations-with-dlir",
             lambda folder: ["register", str(cine(folder)), "-o", str(folder / "out"), "--iterations", "5"],
             ("--iterations", "the method is dlir, whose refinement steps are --refine N (default 24")),
    BadInput("loss-without-refinement",
             lambda folder: ["register", str(cine(folder)), "-o", str(folder / "out"), "--refine", "0",
                             "--loss", "ncc"],
             ("--refine", "0: the network alone, no optimisation for --loss or --control-spacing")),
    # output locations
    BadInput("output-exists", existing_output, ("report.json", "already exists")),
    BadInput("output-below-a-file", below_a_file, ("notes.txt", "is a file")),
    BadInput("output-read-only", read_only_output, ("cannot write the outputs",)),
    BadInput("convert-read-only", convert_into_read_only("x.seq.nrrd"), ("/x.seq.nrrd: ",)),
    BadInput("convert-read-only-metaimage", convert_into_read_only("x.mhd"), ("/x.mhd: ",)),
    BadInput("convert-itk-write-fails", lambda folder: ["convert", str(cine(folder)), str(folder / "out.mha")],
             ("{dir}/out.mha: cannot be written (File too large)",),
             patch=fail_write(RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute: x.cxx:1:\n"
                                           "ITK ERROR: MetaImageIO(0x5f): File too large"), "SimpleITK.WriteImage")),
    BadInput("convert-nifti-written-short", lambda folder: ["convert", str(cine(folder)), str(folder / "out.nii")],
             ("{dir}/out.nii: was written incompletely (is truncated: its header declares",),
             patch=short_nifti_write),
    BadInput("train-output-read-only", train_into_read_only, ("/run: cannot write the outputs",),  # before any step
             patch=fail_write(AssertionError("trained first"), "EchoRegistrationLib.dlir.training._Run.loop")),
    BadInput("output-disk-full", lambda folder: register(folder), ("{dir}/out: no space left",),
             patch=fail_write(ENOSPC, "numpy.savez_compressed")),
    BadInput("output-disk-full-overwrite", full_disk_on_rerun, ("{dir}/out: no space left",),
             patch=fail_write(ENOSPC, "numpy.savez_compressed")),
    # Ctrl-C
    BadInput("interrupt-registering", lambda folder: register(folder), ("interrupted; no outputs were written",), 130,
             patch=fail_write(KeyboardInterrupt(), "EchoRegistrationLib.registration.register_sequence")),
    BadInput("interrupt-mid-write", lambda folder: register(folder, "--itk-fields"),
             ("interrupted; no outputs were written",), 130,
             patch=fail_write(KeyboardInterrupt(), "SimpleITK.WriteImage")),
    BadInput("interrupt-strain-mid-write", strain_over_earlier_run, ("interrupted; no outputs were written",), 130,
             patch=interrupt_strain_figures),
    # DICOM frames and geometry
    BadInput("dicom-declares-more-frames", converted(rle_declaring_more), exit_status=0,
             changes=("out.seq.nrrd",),
             check=reads(FRAMES, warning="rle.dcm: NumberOfFrames is 7 but the pixel data (5 fragments) hold 5 "
                                         "frames: the 5 frames that exist were read")),
    BadInput("dicom-declares-fewer-frames", converted(native_declaring_fewer), exit_status=0,
             changes=("out.seq.nrrd",), check=reads(FRAMES, warning="native.dcm: NumberOfFrames is 3 but the "
                                                                    "pixel data (960 bytes, 192 per frame) hold 5 "
                                                                    "frames")),
    BadInput("dicom-native-ybr-full-422", converted(lambda folder: write_ybr_full_422(folder / "ybr.dcm", YBR)),
             exit_status=0, changes=("out.seq.nrrd",), check=reads(YBR[..., 0], atol=1.0)),
    BadInput("dicom-signed-physical-delta", converted(signed_deltas), exit_status=0,
             changes=("out.seq.nrrd",),
             check=reads(FRAMES, spacing=(0.4, 0.2))),
    BadInput("dicom-malformed-uid", converted(malformed_uid), exit_status=0, changes=("out.seq.nrrd",),
             check=reads(FRAMES, warning="uid.dcm: DICOM header: Invalid value for VR UI: '1.2.03.4' (read anyway)")),
    BadInput("dicom-huge-header", info(huge_header),
             ("huge.dcm", "hold no whole frame of 60000 x 60000 pixels (NumberOfFrames 5000)")),
    # pixel values and declared geometry
    BadInput("nifti-truncated", info(truncated_nifti("cut.nii")),
             ("cut.nii: is truncated: its header declares 16 x 12 x 5 voxels of 1 byte from byte 352, "
              "and the voxel data end early",)),
    BadInput("nifti-gz-truncated", info(truncated_nifti("cut.nii.gz")), ("cut.nii.gz: is truncated",)),
    BadInput("metaimage-without-data", info(metaimage_without_data),
             ("cine.mhd: its data file cine.raw (ElementDataFile) does not exist beside it",)),
    BadInput("metaimage-truncated", info(truncated_metaimage),
             ("cut.mha: is truncated: its header declares 16 x 12 x 5 x 1 MET_FLOAT (3840 bytes), and its data "
              "hold 3800",)),
    BadInput("metaimage-header-cut", info(metaimage_header_cut),
             ("head.mha: its header is incomplete: no ElementDataFile (the file is cut short or not a MetaImage)",)),
    BadInput("nifti-nan-pixels", info(with_nan("nan.nii.gz", np.nan)),
             ("nan.nii.gz", "2 pixel values are NaN or infinite (the first at frame 1, row 2, column 3)")),
    BadInput("metaimage-infinite-pixels",
             lambda folder: ["register", str(with_nan("inf.mha", np.inf)(folder)), "-o", str(folder / "out")],
             ("inf.mha", "NaN or infinite")),
    BadInput("nifti-zero-pixdim", strain_of(nifti_with_pixdim((0.0, 0.3)), 5, 11, 8, 1, 11, 11),
             exit_status=0, patch=few_iterations, changes=("strain",), check=volumes_unmeasured),
    BadInput("nifti-negative-pixdim", converted(nifti_with_pixdim((-0.3, 0.25))), exit_status=0,
             changes=("out.seq.nrrd",), check=reads(FRAMES, spacing=(0.3, 0.25), warning="pixdim.nii: the file "
                                                "declares a negative pixel size (-0.3, 0.25) mm (pixdim)")),
    BadInput("frame-rate-implausible", info(nifti_with_pixdim((0.3, 0.3)), "--frame-rate", "1e9"),
             ("pixdim.nii", "frame interval 1e-09 s (1e+09 frames/s) between frames 0 and 1 is outside")),
    BadInput("frame-rate-zero", info(nifti_with_pixdim((0.3, 0.3)), "--frame-rate", "0"),
             ("--frame-rate", "expected a positive number, got '0'")),
    BadInput("pixel-size-implausible", info(with_spacing((2e4, 2e4))),
             ("odd.mha", "pixel spacing (20000.0, 20000.0) mm is outside the plausible range")),
    BadInput("pixel-size-in-metres", info(with_spacing((3e-4, 3e-4))),
             ("odd.mha", "pixel spacing (0.0003, 0.0003) mm")),
    # layouts, label maps and masks
    BadInput("nifti-x-y-1-t", converted(nifti_x_y_1_t, "--frame-rate", "25"), exit_status=0,
             changes=("out.seq.nrrd",),
             check=reads(FRAMES, spacing=(0.3, 0.25))),
    BadInput("labels-slicer-labelmap-sequence", with_labels(write_labelmap_sequence, "gt.seq.nrrd"),
             exit_status=0, check=says("labels:       codes [0, 1, 2] on frames [0, 1, 2]")),
    BadInput("labels-other-grid", with_labels(save, "half.nii.gz", codes=CODES[:, :20]),
             ("half.nii.gz", "labels of shape (3, 20, 36) do not match frames of shape (3, 40, 36)")),
    BadInput("mask-sector", with_labels(save, "mask.nii.gz", "--mask"), exit_status=0,
             check=says(f"mask:         {(CODES[0] > 0).mean():.1%} of pixels inside")),
    BadInput("mask-empty", with_labels(save, "empty.mha", "--mask", codes=np.zeros((1, 40, 36), np.uint8)),
             ("empty.mha", "mask is empty")),
    BadInput("convert-to-a-video", lambda folder: ["convert", str(cine(folder)), str(folder / "out.avi")],
             ("out.avi", "cannot write this format; use .seq.nrrd")),
    # unknown basis, reference frame, frames without signal
    BadInput("strain-video-without-pixel-size", strain_of(video, 14, 34, 24, 2, 34, 34), exit_status=0,
             patch=few_iterations, changes=("strain",), check=volumes_unmeasured),
    BadInput("strain-nifti-without-frame-times", strain_of(nifti, 4, 12, 7, 1, 10, 12), exit_status=0,
             patch=few_iterations, changes=("strain",), check=times_unknown),
    BadInput("strain-cine-starting-at-es", starting_at_es, exit_status=0, patch=exact_tracking,
             changes=("strain",), check=ed_detected),
    BadInput("register-frame-without-signal", blank_frame, exit_status=0, changes=("out",), check=bridged),
    # awkward but valid: the right value
    BadInput("iterations-1", lambda folder: register(folder, "--iterations", "1"), exit_status=0,
             changes=("out",), check=iterations_recorded),
]
