"""The DLIR model catalog: the pretrained models shipped in ``Resources/Models``, by name.

Shipped registration models (model cards: ``Resources/Models/<family>/README.md``):

* ``echoreg-dlir-camus`` (the default; **CC BY-NC-SA 4.0**, CAMUS's terms): a 128-row network trained on
  CAMUS train pairs, warped CAMUS templates and simulated sequences, its passes integrated as velocities
  (at most 0.01 % of pixels fold on real pairs), run twice and then corrected by a 192-row correction
  stage (:mod:`.correction`; since 2026-11-30), with an anatomy network whose LV, myocardium and LA maps
  guide the refinement (:mod:`.anatomy`; since 2026-12-01); level with the candidate below on real CAMUS pairs,
  behind it on the real-template family. Registering each frame
  directly to ED it misses motion along the wall on physics-simulated echo (the SIMUS family; its model
  card); through the systole anchor (the default where ES is known) it mostly follows it. It is the
  default until the candidate replaces it; its terms are shown wherever a model is chosen or reported;
* ``echoreg-dlir-camus-cv`` (**CC BY-NC-SA 4.0**, :data:`COST_VOLUME_MODEL`; since 2026-12-02): a cost-volume
  network (:class:`.networks.CostVolumeNet`, one pass, read as a velocity) trained on the same data, in front of
  ``echoreg-dlir-camus``'s correction stage and anatomy network (``scripts/attach_network.py``). Its network
  alone leads the default's on every validation set; held out, it is ahead on the real-template family (alone
  and refined), level on CAMUS valid and not distinguishable on 8 SIMUS cases; the network alone is 11-20 %
  slower; the candidate default (its model card);
* ``echoreg-dlir-sim`` (BSD-3-Clause, the project's simulated sequences only, :data:`SIM_MODEL`): for
  unrestricted use; the lowest error on the project's own simulator, far less accurate on real echo;
* ``echoreg-dlir-sim-sequential`` (BSD-3-Clause): ``echoreg-dlir-sim``'s network branched off before its
  last stage and trained on a 256-row grid and on neighbouring frames, whose fields it composes.

A model is a folder ``Resources/Models/<name>/`` (``EchoRegistrationLib/Models/<name>/`` in a wheel
install: :data:`MODELS_DIR`) holding ``model.safetensors`` and ``model.json``
(:mod:`.checkpoints`); its name is the folder's name. Everywhere a model is asked for (the API, the CLI,
the Slicer panel), a name of this catalog or a checkpoint path is accepted (:func:`resolve_model`).

The same folder holds echo enhancement generators (``kind`` "enhancer" in their config,
:mod:`..enhancement`): :func:`list_models` and :func:`resolve_model` take the kind of :data:`CATALOG`
to list or resolve, DLIR by default; a name of the other kind is refused with :class:`ModelKindError`
(an unknown name with FileNotFoundError). The shipped enhancer is :data:`SHIPPED_ENHANCER` (BSD-3-Clause,
trained on simulated sequences; experimental, off by default).
This module reads JSON only: it needs no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..sequence import EchoDataError


def _models_dir() -> Path:
    """``Resources/Models`` beside the package (a source checkout, the Slicer extension), else the copy
    that a wheel installs as package data, ``EchoRegistrationLib/Models`` (setup.py)."""
    package = Path(__file__).resolve().parents[1]
    beside = package.parent / "Resources" / "Models"
    return beside if beside.is_dir() else package / "Models"


MODELS_DIR = _models_dir()
CAMUS_MODEL = "echoreg-dlir-camus"  # trained on CAMUS too: CC BY-NC-SA 4.0 (its model card)
COST_VOLUME_MODEL = "echoreg-dlir-camus-cv"  # a cost-volume network in front of CAMUS_MODEL's stages: CC BY-NC-SA 4.0
SIM_MODEL = "echoreg-dlir-sim"  # the project's own data only: BSD-3-Clause
SEQUENTIAL_MODEL = "echoreg-dlir-sim-sequential"
SHIPPED_MODEL = CAMUS_MODEL  # the default DLIR model (COST_VOLUME_MODEL is the candidate: its model card)
MODEL_NAME = "model"  # a checkpoint folder holds MODEL_NAME.safetensors and MODEL_NAME.json
WEIGHTS = f"{MODEL_NAME}.safetensors"
PROJECT_LICENCE = "BSD-3-Clause"
DLIR_KIND = "dlir"  # the config's "kind" of a registration model (.checkpoints)
ENHANCER_KIND = "enhancer"  # ... of an enhancement generator (..enhancement.networks registers it)
SHIPPED_ENHANCER = "echoreg-enhancer-sim"


@dataclass(frozen=True)
class CatalogKind:
    """One kind of model the catalog holds.

    Attributes:
        label: what a model of this kind is, in messages ("registration (DLIR)").
        default: the default model's name, listed first.
        train: the command that trains one, for messages.
    """

    label: str
    default: str
    train: str


class ModelKindError(EchoDataError):
    """A model that exists but is of another kind than the one asked for (a registration (DLIR)
    model where an enhancement model is expected, or the reverse); an :class:`EchoDataError` (a
    ``ValueError``), so the command line and the Slicer panel report it as one line naming the
    model and the problem."""


CATALOG = {DLIR_KIND: CatalogKind("registration (DLIR)", SHIPPED_MODEL, "echoreg train dlir --help"),
           ENHANCER_KIND: CatalogKind("enhancement", SHIPPED_ENHANCER, "echoreg train enhancer --help")}


@dataclass(frozen=True)
class ModelInfo:
    """One model of the catalog.

    Attributes:
        name: the folder's name, by which the model is asked for.
        path: the checkpoint folder.
        mode: DLIR: the tracking it was trained for ("to_reference" or "sequential"); "" for other
            kinds.
        licence: the terms of the weights: ``licence`` in its config when the trainer wrote one, else
            the project's own (BSD-3-Clause) when every training source is the project's simulator,
            else "unknown (see the model card)".
        training_data: the training sources named in its config (e.g. "simulator", "camus"; an
            enhancer's low- and high-quality domains).
        kind: a key of :data:`CATALOG`.
        passes: DLIR: the network's applications per pair (``passes`` in its architecture, 1 when
            absent); 1 for other kinds.
        correction_rows: DLIR: rows of the model's fine-grid correction stage (:mod:`.correction`),
            None without one.
        anatomy_rows: DLIR: rows of the working grid of the model's anatomy network
            (:mod:`.anatomy`, whose maps guide the refinement), None without one.
        network: DLIR: its registration network and what it predicts, e.g. "U-Net, velocity" or
            "cost volume, displacement" (:func:`.networks.registration_network`), "affine + U-Net, velocity"
            behind an affine stage; "affine" for an affine stage alone; "" for other kinds.
    """

    name: str
    path: Path
    mode: str
    licence: str
    training_data: tuple[str, ...]
    kind: str = DLIR_KIND
    passes: int = 1
    correction_rows: int | None = None
    anatomy_rows: int | None = None
    network: str = ""


NETWORK_NAMES = {"unet": "U-Net", "cost_volume": "cost volume"}


def _network(architecture: dict) -> str:
    """The network column of a DLIR ``architecture``: its kind and whether it predicts a velocity, after
    "affine + " where an affine stage aligns the frames first."""
    unet, affine = architecture.get("unet"), architecture.get("affine")
    if not isinstance(unet, dict):
        return "affine" if affine else "unknown"
    kind = str(unet.get("kind", "unet"))
    reading = "velocity" if architecture.get("diffeomorphic") else "displacement"
    return f"{'affine + ' if affine else ''}{NETWORK_NAMES.get(kind, kind)}, {reading}"


def _licence(config: dict, sources: tuple[str, ...]) -> str:
    if config.get("licence"):
        return str(config["licence"])
    if sources and set(sources) == {"simulator"}:
        return PROJECT_LICENCE
    return "unknown (see the model card)"


def _sources(config: dict) -> tuple[str, ...]:
    """The training sources a config names: ``data.training`` (DLIR) or ``data.low`` and
    ``data.high`` (an enhancer), each one source or a list of them, then those of its ``base_model``
    (the config of the model a correction stage or an anatomy network was trained behind), in order."""
    data = config.get("data") or {}
    items = [data.get(key) or [] for key in ("training", "low", "high")]
    flat = [d for item in items for d in (item if isinstance(item, list) else [item])]
    own = tuple(str(d.get("source", "unknown")) for d in flat if isinstance(d, dict))
    base = config.get("base_model")
    return tuple(dict.fromkeys(own + (_sources(base) if isinstance(base, dict) else ())))


def _model_info(folder: Path) -> ModelInfo | None:
    """The catalog entry of ``folder``, or None when it holds no checkpoint of a :data:`CATALOG`
    kind (training also writes discriminator and VAE checkpoints, which are not models to use)."""
    config_path = folder / f"{MODEL_NAME}.json"
    if not ((folder / WEIGHTS).is_file() and config_path.is_file()):
        return None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("kind") not in CATALOG:
        return None
    kind, sources = config["kind"], _sources(config)
    architecture = (config.get("architecture") or {}) if kind == DLIR_KIND else {}
    mode = str(architecture.get("mode", "to_reference")) if kind == DLIR_KIND else ""
    correction, anatomy = architecture.get("correction"), architecture.get("anatomy")
    return ModelInfo(folder.name, folder, mode, _licence(config, sources), sources, kind,
                     int(architecture.get("passes", 1)),
                     int(correction["working_size"]) if isinstance(correction, dict) else None,
                     int(anatomy["working_size"]) if isinstance(anatomy, dict) else None,
                     _network(architecture) if kind == DLIR_KIND else "")


def list_models(folder: str | os.PathLike = MODELS_DIR, kind: str = DLIR_KIND) -> list[ModelInfo]:
    """The models of ``kind`` (a key of :data:`CATALOG`) installed in ``folder`` (its sub-folders
    holding such a checkpoint), the kind's default (:data:`SHIPPED_MODEL`, :data:`SHIPPED_ENHANCER`)
    first, then by name; empty when the folder is absent.

    Raises:
        ValueError: ``kind`` is not a catalog kind.
    """
    if kind not in CATALOG:
        raise ValueError(f"kind must be one of {tuple(CATALOG)}, got {kind!r}")
    root = Path(folder)
    found = [info for sub in sorted(root.iterdir()) if sub.is_dir()
             for info in [_model_info(sub)] if info is not None and info.kind == kind] if root.is_dir() else []
    return sorted(found, key=lambda info: (info.name != CATALOG[kind].default, info.name))


def resolve_model(model: str | os.PathLike, folder: str | os.PathLike = MODELS_DIR,
                  kind: str = DLIR_KIND) -> Path:
    """The checkpoint ``model`` stands for: an existing path as it is, else the folder of the installed
    model of that name and ``kind`` in ``folder``.

    Raises:
        ModelKindError: (a ``ValueError``) ``model`` is the name of an installed model of another
            kind; the message says which and lists the installed names of ``kind``.
        FileNotFoundError: neither a path nor the name of an installed model of any kind; the
            message lists the installed names of ``kind``.
        ValueError: ``kind`` is not a catalog kind.
    """
    if Path(model).exists():
        return Path(model)
    for info in list_models(folder, kind):
        if info.name == str(model):
            return info.path
    wanted = CATALOG[kind]
    names = ", ".join(info.name for info in list_models(folder, kind)) or f"none in {folder}"
    help_ = f"(installed: {names}; train one: {wanted.train})"
    other = _other_kind_label(model, folder, kind)
    if other is not None:
        article = "an" if wanted.label[0] in "aeiou" else "a"
        raise ModelKindError(str(model), f"an installed {other} model, not {article} {wanted.label} model {help_}")
    raise FileNotFoundError(f"{model}: no such checkpoint and no installed model of that name {help_}")


def _other_kind_label(model: str | os.PathLike, folder: str | os.PathLike, kind: str) -> str | None:
    """The label (:class:`CatalogKind`) of the kind other than ``kind`` whose installed model in
    ``folder`` is named ``model``; None when no model of another kind has that name."""
    return next((CATALOG[k].label for k in CATALOG if k != kind
                 for info in list_models(folder, k) if info.name == str(model)), None)


def licence_of(model: str | os.PathLike, kind: str = DLIR_KIND) -> str | None:
    """The terms of the weights of ``model`` (an installed name or a checkpoint folder / file), as
    :class:`ModelInfo` gives them; None when it is neither or its config cannot be read."""
    try:
        path = resolve_model(model, kind=kind)
    except (OSError, ValueError):  # not found, another kind, not a path at all
        return None
    info = _model_info(path if path.is_dir() else path.parent)
    return None if info is None else info.licence


def tracking_of(model: str | os.PathLike) -> str | None:
    """The tracking ("to_reference" or "sequential") the DLIR ``model`` (an installed name or a checkpoint
    folder / file) was trained for, read from its ``model.json`` without loading it (torch-free); None
    when it is not a DLIR checkpoint.

    Raises:
        as :func:`resolve_model`."""
    path = resolve_model(model)
    info = _model_info(path if path.is_dir() else path.parent)
    return info.mode if info is not None and info.kind == DLIR_KIND else None


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
