"""The pretrained DLIR models shipped in ``Resources/Models`` (trained by this project's own code on
its simulated sequences; ``Resources/Models/echoreg-dlir-sim/README.md`` is their model card):

* ``echoreg-dlir-sim`` (the default): a 128-row working grid, every frame registered directly to the
  reference; 0.19 s for 20 CAMUS-size frames on 2 CPU cores; the lowest end-point error and GLS error of
  all methods on the simulated benchmarks;
* ``echoreg-dlir-sim-sequential``: the same network branched off before the default's last stage and
  trained on a 256-row grid and on neighbouring frames, whose fields it composes; less accurate than
  the default on simulated data, four times the time, no folding on the real CAMUS cine.
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
SHIPPED_MODEL = "echoreg-dlir-sim"
SEQUENTIAL_MODEL = "echoreg-dlir-sim-sequential"


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path:
    """Folder of a shipped checkpoint (``model.safetensors`` + ``model.json``), by default
    :data:`SHIPPED_MODEL`.

    Raises:
        FileNotFoundError: the weights are not there (a partial checkout or install), with what to do.
    """
    folder = MODELS_DIR / name
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: the shipped DLIR model is missing; reinstall EchoRegistration "
                                "or pass model=<checkpoint folder> (see `echoreg train dlir --help`)")
    return folder
