"""The pretrained DLIR model shipped in ``Resources/Models`` (trained by this project's own code on its
simulated sequences; ``Resources/Models/README.md`` is its model card)."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
SHIPPED_MODEL = "echoreg-dlir-sim"


def shipped_model_path() -> Path:
    """Folder of the shipped checkpoint (``model.safetensors`` + ``model.json``).

    Raises:
        FileNotFoundError: the weights are not there (a partial checkout or install), with what to do.
    """
    folder = MODELS_DIR / SHIPPED_MODEL
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: the shipped DLIR model is missing; reinstall EchoRegistration "
                                "or pass model=<checkpoint folder> (see `echoreg train dlir --help`)")
    return folder
