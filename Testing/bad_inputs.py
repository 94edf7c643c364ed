"""A generated corpus of bad inputs for the ``echoreg`` command line (issue 13).

Each :class:`BadInput` builds its files in an empty folder and gives the command to run; the
corpus test (``test_bad_input_corpus.py``) runs it in-process and checks that it ends with the
expected exit status (2 for an error, 130 for Ctrl-C, 0 where the input is awkward but valid) and,
on failure, exactly one line on stderr that names the file (or option) and the problem, with no
traceback, no partial output and nothing changed in the folder.

To add a kind: append a ``BadInput`` to :data:`CASES` (e.g. a DICOM header declaring the wrong
frame count, a NIfTI with zero spacing); ``build`` writes whatever it needs under the given folder.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from EchoRegistrationLib import EchoSequence, save_sequence
from EchoRegistrationLib.dlir.shipped import shipped_model_path

Build = Callable[[Path], list[str]]
Patch = Callable[[pytest.MonkeyPatch], None]


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
    """

    name: str
    build: Build
    says: tuple[str, ...] = ()
    exit_status: int = 2
    patch: Patch | None = None
    changes: tuple[str, ...] = field(default_factory=tuple)


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


def full_disk_on_rerun(folder: Path) -> list[str]:
    """The disk fills while writing over an earlier run's complete output set (--overwrite)."""
    return [*existing_output(folder), "--overwrite"]


def strain_over_earlier_run(folder: Path) -> list[str]:
    """``strain`` (myocardium from landmarks) over an earlier run's output, with --overwrite."""
    (folder / "strain").mkdir()
    (folder / "strain" / "strain_frames.csv").write_text("earlier run\n")
    return ["strain", str(cine(folder)), "-o", str(folder / "strain"), "--landmarks", "4,14,9,2,14,14",
            "--wall-width", "2", "--method", "rigid", "--overwrite"]


def interrupt_strain_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the strain pictures are written, after a short registration."""
    from EchoRegistrationLib import registration

    full = registration.register_sequence
    monkeypatch.setattr("EchoRegistrationLib.registration.register_sequence",
                        lambda *args, **kwargs: full(*args, iterations=2, **kwargs))
    fail_write(KeyboardInterrupt(), "EchoRegistrationLib.strain.outputs.save_strain_map")(monkeypatch)


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
    # output locations
    BadInput("output-exists", existing_output, ("report.json", "already exists")),
    BadInput("output-below-a-file", below_a_file, ("notes.txt", "is a file")),
    BadInput("output-read-only", read_only_output, ("cannot write the outputs",)),
    BadInput("output-disk-full", lambda folder: register(folder), ("{dir}/out: no space left",),
             patch=fail_write(ENOSPC, "numpy.savez_compressed")),
    BadInput("output-disk-full-overwrite", full_disk_on_rerun, ("{dir}/out: no space left",),
             patch=fail_write(ENOSPC, "numpy.savez_compressed")),
    # Ctrl-C
    BadInput("interrupt-registering", lambda folder: register(folder), ("interrupted",), 130,
             patch=fail_write(KeyboardInterrupt(), "EchoRegistrationLib.registration.register_sequence")),
    BadInput("interrupt-mid-write", lambda folder: register(folder, "--itk-fields"), ("interrupted",), 130,
             patch=fail_write(KeyboardInterrupt(), "SimpleITK.WriteImage")),
    BadInput("interrupt-strain-mid-write", strain_over_earlier_run, ("interrupted",), 130,
             patch=interrupt_strain_figures),
    # awkward but valid: the right value
    BadInput("iterations-1", lambda folder: register(folder, "--iterations", "1"), exit_status=0,
             changes=("out",)),
]
