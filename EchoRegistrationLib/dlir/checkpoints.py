"""Checkpoints without pickle: safetensors weights + a JSON config, and a weights-only training state.

The safetensors files are read and written by :mod:`.safetensors_format` (torch alone).

A model checkpoint is a pair of files in a folder, ``{name}.safetensors`` and ``{name}.json``. The
JSON holds ``kind`` (which class), ``architecture`` (its constructor arguments, enough to rebuild
it) and whatever the trainer adds: training settings, data, the history. The same JSON is stored in
the safetensors header (metadata key ``config``), so a weights file copied alone still loads.
:func:`load_model` rebuilds the model from either file or the folder.

Resuming needs the optimiser states too: ``training_state.pt`` holds tensors, numbers and strings
only, written by ``torch.save`` and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..io.atomic import atomic_output
from ..sequence import EchoDataError
from .discriminator import PatchDiscriminator
from .model import DLIRModel
from .safetensors_format import read_safetensors, read_safetensors_metadata, write_safetensors
from .shipped import DLIR_KIND, MODEL_NAME, resolve_model
from .vae import MaskVAE

FORMAT = "echoregistration-dlir/1"
# Checkpoint kind -> (model class, builder from the config's "architecture"). Other packages add their
# networks with register_kind (the enhancement generator and discriminator do), so this module does not
# depend on them.
KINDS: dict[str, tuple[type, Callable[[dict[str, Any]], nn.Module]]] = {}
TRAINING_STATE = "training_state.pt"


def register_kind(kind: str, cls: type, build: Callable[[dict[str, Any]], nn.Module] | None = None) -> None:
    """Make checkpoints of ``cls`` saveable and loadable as ``kind``; ``build`` rebuilds one from its
    architecture (default ``cls(**architecture)``)."""
    KINDS[kind] = (cls, build or (lambda architecture: cls(**architecture)))


register_kind(DLIR_KIND, DLIRModel, DLIRModel.from_architecture)
register_kind("vae", MaskVAE)
register_kind("discriminator", PatchDiscriminator)


def model_kind(model: nn.Module) -> str:
    """The checkpoint kind of ``model``."""
    for kind, (cls, _) in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"no checkpoint kind for {type(model).__name__}")


def save_model(model: nn.Module, folder: str | os.PathLike, name: str = MODEL_NAME,
               **config: Any) -> Path:
    """Write ``folder/{name}.safetensors`` and ``folder/{name}.json`` (atomically, replacing an
    earlier checkpoint); ``config`` entries (JSON-ready) are added to the JSON. Returns the
    weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "kind": model_kind(model),
                "architecture": model.architecture(), **config}
    text = json.dumps(document, indent=1)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = folder / f"{name}.safetensors"
    with atomic_output(weights, overwrite=True) as tmp:
        write_safetensors(tensors, tmp, metadata={"config": text})
    with atomic_output(folder / f"{name}.json", overwrite=True) as tmp:
        tmp.write_text(text + "\n")
    return weights


def weights_path(path: str | os.PathLike) -> Path:
    """The weights file of a checkpoint folder, ``.safetensors`` or ``.json`` path, or installed model
    name (:func:`.shipped.resolve_model`)."""
    path = resolve_model(path)
    if path.is_dir():
        path = path / f"{MODEL_NAME}.safetensors"
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected a folder holding "
                                f"{MODEL_NAME}.safetensors, or a .safetensors / .json file)")
    return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON config of a checkpoint (folder, ``.safetensors`` or ``.json``): the ``.json`` file
    beside the weights when present, else the copy in the weights' header."""
    weights = weights_path(path)
    sidecar = weights.with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    metadata = read_safetensors_metadata(weights)
    if "config" not in metadata:
        raise ValueError(f"{weights}: no config in the safetensors header and no {sidecar.name}")
    return json.loads(metadata["config"])


class CheckpointError(EchoDataError):
    """A model file that cannot be used (not safetensors, corrupt, a config that does not describe
    a model, weights that do not fit it); the message names the file and the problem."""


# What building a model from a damaged file can raise: a corrupt or foreign header or config.
_BAD_FILE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError,
                    OverflowError)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint (folder, ``.safetensors`` or ``.json``) in eval mode.

    Raises:
        FileNotFoundError: no checkpoint there.
        CheckpointError: (a ``ValueError``) not a usable checkpoint, naming the file at fault: a
            config (``.json``, or the weights' header) that is not JSON or not a DLIR checkpoint
            of a known format and kind, or describes no valid model; weights that are not
            safetensors (a pickle), are corrupt or truncated, or do not fit the architecture.
    """
    weights = weights_path(path)
    sidecar = weights.with_suffix(".json")
    config_file = sidecar if sidecar.is_file() else weights
    with _bad_file(config_file):
        config = read_config(weights)
        if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("kind") not in KINDS:
            found = config if not isinstance(config, dict) else \
                f"format {config.get('format')!r}, kind {config.get('kind')!r}"
            raise ValueError(f"not an EchoRegistration DLIR checkpoint ({found})"[:300])
        model = KINDS[config["kind"]][1](config["architecture"])
    with _bad_file(weights):
        try:
            model.load_state_dict(read_safetensors(weights))
        except RuntimeError as err:
            raise ValueError(f"weights do not match the architecture in {config_file.name}: {err}") from None
    return model.to(device).eval()


@contextlib.contextmanager
def _bad_file(path: Path) -> Iterator[None]:
    """Turn what reading a damaged checkpoint file can raise into a :class:`CheckpointError`
    naming ``path`` (its message without a repeated path prefix)."""
    try:
        yield
    except _BAD_FILE_ERRORS as err:
        problem = " ".join(str(err).split()).removeprefix(f"{path}: ")
        raise CheckpointError(str(path), f"not a usable model checkpoint: "
                                         f"{problem or type(err).__name__}") from None


def save_training_state(folder: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write the resumable state (optimiser state dicts, counters) to ``folder/training_state.pt``."""
    path = Path(folder) / TRAINING_STATE
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(folder: str | os.PathLike,
                        device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The state saved by :func:`save_training_state`, or None when there is none. Loaded with
    ``weights_only=True``: no code can run from the file."""
    path = Path(folder) / TRAINING_STATE
    if not path.is_file():
        return None
    return torch.load(path, map_location=device, weights_only=True)
