"""Put another model's registration network in front of a DLIR model's correction stage and anatomy network.

A model such as ``echoreg-dlir-camus`` is a registration network followed by a fine-grid correction stage
(:mod:`EchoRegistrationLib.dlir.correction`: the residual after the network's field, learnt around fields
perturbed by random smooth fields) and an anatomy network (:mod:`EchoRegistrationLib.dlir.anatomy`: LV,
myocardium and LA maps of each frame, for the refinement). Neither stage reads the network's weights, so a
network trained apart (``echoreg train dlir --network cost_volume ...``) can take the place of the model's
own. The result takes the network, its passes and whether it predicts a velocity from ``--network``, keeps
the correction stage and the anatomy network of ``--model``, and records both configs (``base_model``: the
model's; ``network_model``: the network's). Its licence is CAMUS's (CC BY-NC-SA 4.0) when either part carries
it (:func:`EchoRegistrationLib.dlir.data.combined_licence`).

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
from EchoRegistrationLib.dlir.data import combined_licence  # noqa: E402
from EchoRegistrationLib.dlir.model import DLIRModel  # noqa: E402
from EchoRegistrationLib.dlir.shipped import resolve_model  # noqa: E402


def attach_network(model: str, network: str, output: str | Path) -> Path:
    """Write to ``output`` the DLIR ``model`` (installed name or checkpoint) with the registration network of
    ``network`` (a checkpoint) in front of its correction stage and anatomy network; returns the weights' path.

    Raises:
        FileNotFoundError: either checkpoint is missing.
        ValueError: either is not a DLIR model, or their networks work on grids of other sizes (``working_size``).
    """
    model_path, network_path = resolve_model(model), resolve_model(network)
    combined, other = load_model(model_path), load_model(network_path)
    for path, loaded in ((model_path, combined), (network_path, other)):
        if not isinstance(loaded, DLIRModel):
            raise ValueError(f"{path}: not a DLIR model")
    if other.working_size != combined.working_size:
        raise ValueError(f"{network_path}: its network works on {other.working_size} rows, the model's on "
                         f"{combined.working_size}")
    combined.net, combined.affine, combined.passes = other.net, other.affine, other.passes
    combined.diffeomorphic, combined.integration_steps = other.diffeomorphic, other.integration_steps
    config, network_config = read_config(model_path), read_config(network_path)
    licence = combined_licence(config.get("licence"), network_config.get("licence") or "unknown")
    return save_model(combined, output, training=config.get("training"), data=config.get("data"), licence=licence,
                      base_model=config.get("base_model", config), network_model=network_config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the DLIR model whose correction stage and anatomy stay")
    parser.add_argument("--network", required=True, help="the checkpoint whose registration network goes in front")
    parser.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    args = parser.parse_args(argv)
    print(attach_network(args.model, args.network, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
