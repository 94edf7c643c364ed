"""Put another model's registration network in front of a DLIR model's correction stage and anatomy network.

A model such as ``echoreg-dlir-camus`` is a registration network followed by a fine-grid correction stage
(:mod:`EchoRegistrationLib.dlir.correction`: the residual after the network's field, learnt around that
network's own fields perturbed by random smooth fields, so tuned to its errors) and an anatomy network
(:mod:`EchoRegistrationLib.dlir.anatomy`: LV, myocardium and LA maps of each frame, for the refinement).
Neither stage reads the network's weights, so a network trained apart (``echoreg train dlir --network
cost_volume ...``) can take the place of the model's own. The result takes the network, its affine stage,
passes, tracking mode and whether it predicts a velocity from ``--network``, keeps the correction stage and
the anatomy network of ``--model`` with the model's own records (``training`` and ``data``: the last stage
trained, its anatomy network; ``base_model``: the records of the stages before), and adds the network's
(``network_model``). Its licence is CAMUS's (CC BY-NC-SA 4.0) when either part carries it, the project's
(BSD-3-Clause) when both do, else unknown (:func:`EchoRegistrationLib.dlir.data.combined_licence`).

Usage (repository root)::

    .venv/bin/python scripts/attach_network.py --model echoreg-dlir-camus --network runs/s24/cvv3 \\
        -o runs/s24/cvv3_hybrid
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from EchoRegistrationLib.dlir.checkpoints import load_model, read_config, save_model  # noqa: E402
from EchoRegistrationLib.dlir.data import CAMUS_LICENCE, combined_licence  # noqa: E402
from EchoRegistrationLib.dlir.model import DLIRModel  # noqa: E402
from EchoRegistrationLib.dlir.shipped import PROJECT_LICENCE, WEIGHTS, resolve_model  # noqa: E402
from EchoRegistrationLib.sequence import EchoDataError  # noqa: E402

KNOWN_TERMS = (CAMUS_LICENCE, PROJECT_LICENCE)


def attach_network(model: str, network: str, output: str | Path, overwrite: bool = False) -> Path:
    """Write to ``output`` the DLIR ``model`` (installed name or checkpoint) with the registration network of
    ``network`` (an installed name or a checkpoint) in front of its correction stage and anatomy network;
    returns the weights' path.

    Raises:
        FileNotFoundError: either checkpoint is missing.
        FileExistsError: ``output`` holds a checkpoint and ``overwrite`` is False.
        ValueError: either is not a DLIR model, ``model`` has neither a correction stage nor an anatomy
            network (nothing to keep), or their networks work on grids of other sizes (``working_size``).
    """
    model_path, network_path = resolve_model(model), resolve_model(network)
    if (Path(output) / WEIGHTS).exists() and not overwrite:
        raise FileExistsError(f"{output}: holds a checkpoint already (--overwrite to replace it)")
    combined, other = load_model(model_path), load_model(network_path)
    for path, loaded in ((model_path, combined), (network_path, other)):
        if not isinstance(loaded, DLIRModel):
            raise ValueError(f"{path}: not a DLIR model")
    if combined.correction is None and combined.anatomy is None:
        raise ValueError(f"{model_path}: has neither a correction stage nor an anatomy network to keep")
    if other.working_size != combined.working_size:
        raise ValueError(f"{network_path}: its network works on {other.working_size} rows, the model's on "
                         f"{combined.working_size}")
    combined.net, combined.affine, combined.passes, combined.mode = other.net, other.affine, other.passes, other.mode
    combined.diffeomorphic, combined.integration_steps = other.diffeomorphic, other.integration_steps
    config, network_config = read_config(model_path), read_config(network_path)
    terms = [config.get("licence"), network_config.get("licence")]
    licence = combined_licence(*terms) if all(t in KNOWN_TERMS for t in terms) else "unknown (see the model card)"
    return save_model(combined, output, training=config.get("training"), data=config.get("data"), licence=licence,
                      base_model=config.get("base_model"), network_model=network_config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the DLIR model whose correction stage and anatomy stay")
    parser.add_argument("--network", required=True, help="the checkpoint whose registration network goes in front")
    parser.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --output")
    args = parser.parse_args(argv)
    try:
        print(attach_network(args.model, args.network, args.output, args.overwrite))
    except (OSError, ValueError, EchoDataError) as err:
        print(f"attach_network: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
