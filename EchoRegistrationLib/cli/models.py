"""``echoreg models``: the installed models (registration and enhancement) with their terms."""

from __future__ import annotations

import argparse
from typing import Any

from ..dlir.shipped import CATALOG, MODELS_DIR, list_models


def _cmd_models(args: argparse.Namespace) -> int:
    print(f"models in {MODELS_DIR}")
    print("| name | kind | tracking | licence | training data |")
    print("|---|---|---|---|---|")
    for kind, about in CATALOG.items():
        for info in list_models(MODELS_DIR, kind=kind):
            default = " (default)" if info.name == about.default else ""
            print(f"| {info.name}{default} | {about.label} | {info.mode or '-'} | {info.licence} | "
                  f"{', '.join(info.training_data) or 'unknown'} |")
    return 0


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``models`` on the ``echoreg`` sub-parsers."""
    parser = subparsers.add_parser("models", help="list the installed models with their licences and data")
    parser.set_defaults(run=_cmd_models)
    return parser
