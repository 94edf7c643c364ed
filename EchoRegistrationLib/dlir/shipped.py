"""The DLIR model catalog: the pretrained models shipped in ``Resources/Models``, by name.

Shipped models (trained by this project's own code on its simulated sequences;
``Resources/Models/echoreg-dlir-sim/README.md`` is their model card):

* ``echoreg-dlir-sim`` (the default): a 128-row working grid, every frame registered directly to the
  reference; 0.19 s for 20 CAMUS-size frames on 2 CPU cores; the lowest end-point error and GLS error of
  all methods on the simulated benchmarks;
* ``echoreg-dlir-sim-sequential``: the same network branched off before the default's last stage and
  trained on a 256-row grid and on neighbouring frames, whose fields it composes; less accurate than
  the default on simulated data, four times the time, no folding on the real CAMUS cine.

A model is a folder ``Resources/Models/<name>/`` (``EchoRegistrationLib/Models/<name>/`` in a wheel
install: :data:`MODELS_DIR`) holding ``model.safetensors`` and ``model.json``
(:mod:`.checkpoints`); its name is the folder's name. Everywhere a model is asked for (the API, the CLI,
the Slicer panel), a name of this catalog or a checkpoint path is accepted (:func:`resolve_model`).
This module reads JSON only: it needs no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def _models_dir() -> Path:
    """``Resources/Models`` beside the package (a source checkout, the Slicer extension), else the copy
    that a wheel installs as package data, ``EchoRegistrationLib/Models`` (setup.py)."""
    package = Path(__file__).resolve().parents[1]
    beside = package.parent / "Resources" / "Models"
    return beside if beside.is_dir() else package / "Models"


MODELS_DIR = _models_dir()
SHIPPED_MODEL = "echoreg-dlir-sim"
SEQUENTIAL_MODEL = "echoreg-dlir-sim-sequential"
MODEL_NAME = "model"  # a checkpoint folder holds MODEL_NAME.safetensors and MODEL_NAME.json
WEIGHTS = f"{MODEL_NAME}.safetensors"
PROJECT_LICENCE = "BSD-3-Clause"


@dataclass(frozen=True)
class ModelInfo:
    """One registration model of the catalog.

    Attributes:
        name: the folder's name, by which the model is asked for.
        path: the checkpoint folder.
        mode: the tracking it was trained for ("to_reference" or "sequential").
        licence: the terms of the weights: ``licence`` in its config when the trainer wrote one, else
            the project's own (BSD-3-Clause) when every training source is the project's simulator,
            else "unknown (see the model card)".
        training_data: the training sources named in its config (e.g. "simulator", "camus").
    """

    name: str
    path: Path
    mode: str
    licence: str
    training_data: tuple[str, ...]


def _licence(config: dict, sources: tuple[str, ...]) -> str:
    if config.get("licence"):
        return str(config["licence"])
    if sources and set(sources) == {"simulator"}:
        return PROJECT_LICENCE
    return "unknown (see the model card)"


def _model_info(folder: Path) -> ModelInfo | None:
    """The catalog entry of ``folder``, or None when it holds no registration checkpoint (training
    also writes discriminator and VAE checkpoints, which are not registration models)."""
    config_path = folder / f"{MODEL_NAME}.json"
    if not ((folder / WEIGHTS).is_file() and config_path.is_file()):
        return None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("kind") != "dlir":
        return None
    training = (config.get("data") or {}).get("training") or []
    training = [training] if isinstance(training, dict) else training  # one source, or several
    sources = tuple(dict.fromkeys(str(item.get("source", "unknown")) for item in training
                                  if isinstance(item, dict)))
    mode = str((config.get("architecture") or {}).get("mode", "to_reference"))
    return ModelInfo(folder.name, folder, mode, _licence(config, sources), sources)


def list_models(folder: str | os.PathLike = MODELS_DIR) -> list[ModelInfo]:
    """The registration models installed in ``folder`` (its sub-folders holding a ``dlir`` checkpoint),
    the default :data:`SHIPPED_MODEL` first, then by name; empty when the folder is absent."""
    root = Path(folder)
    found = [info for sub in sorted(root.iterdir()) if sub.is_dir()
             for info in [_model_info(sub)] if info is not None] if root.is_dir() else []
    return sorted(found, key=lambda info: (info.name != SHIPPED_MODEL, info.name))


def resolve_model(model: str | os.PathLike, folder: str | os.PathLike = MODELS_DIR) -> Path:
    """The checkpoint ``model`` stands for: an existing path as it is, else the folder of the installed
    model of that name in ``folder``.

    Raises:
        FileNotFoundError: neither a path nor an installed model's name; the message lists the
            installed names.
    """
    if Path(model).exists():
        return Path(model)
    for info in list_models(folder):
        if info.name == str(model):
            return info.path
    names = ", ".join(info.name for info in list_models(folder)) or f"none in {folder}"
    raise FileNotFoundError(f"{model}: no such checkpoint and no installed model of that name "
                            f"(installed: {names})")


def installed_model_name(model: str, folder: str | os.PathLike = MODELS_DIR) -> str | None:
    """The installed model's name that ``model`` refers to: the name itself, or a path into another
    installation's models folder (``.../Models/<name>/model.safetensors`` or ``.../Models/<name>``, as
    a scene saved by another Slicer revision holds); None when no installed model matches."""
    names = {info.name for info in list_models(folder)}
    path = Path(model)
    candidates = (str(model), path.parent.name if path.stem == MODEL_NAME else path.name)
    return next((name for name in candidates if name in names), None)


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path:
    """Folder of a shipped checkpoint (``model.safetensors`` + ``model.json``), by default
    :data:`SHIPPED_MODEL`.

    Raises:
        FileNotFoundError: the weights are not there (a partial checkout or install), with what to do.
    """
    folder = MODELS_DIR / name
    if not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"{folder}: the shipped DLIR model is missing; reinstall EchoRegistration "
                                "or pass model=<checkpoint folder> (see `echoreg train dlir --help`)")
    return folder
