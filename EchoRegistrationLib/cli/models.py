"""``echoreg models``: the installed models (registration and enhancement) with their terms."""

from __future__ import annotations

import argparse
from typing import Any

from ..dlir.shipped import CAMUS_MODEL, CATALOG, COST_VOLUME_MODEL, DLIR_KIND, MODELS_DIR, list_models


LICENCE_TERMS = {"BSD-3-Clause": "permissive, the project's own licence",
                 "CC BY-NC-SA 4.0": "non-commercial use only, derived work under the same terms, credit the "
                                    "dataset (CAMUS)"}


def _cmd_models(args: argparse.Namespace) -> int:
    print(f"models in {MODELS_DIR} (model cards: README.md in each family's folder)")
    print("| name | kind | network | tracking | passes | correction | anatomy maps (refinement) | licence | "
          "training data |")
    print("|---|---|---|---|---|---|---|---|---|")
    licences, camus_anatomy = set(), []
    for kind, about in CATALOG.items():
        for info in list_models(MODELS_DIR, kind=kind):
            default = " (default)" if kind == DLIR_KIND and info.name == about.default else ""
            passes = info.passes if kind == DLIR_KIND else "-"
            correction = f"{info.correction_rows} rows" if info.correction_rows else "-"
            anatomy = f"{info.anatomy_rows} rows" if info.anatomy_rows else "-"
            print(f"| {info.name}{default} | {about.label} | {info.network or '-'} | {info.mode or '-'} | {passes} | "
                  f"{correction} | {anatomy} | {info.licence} | {', '.join(info.training_data) or 'unknown'} |")
            licences.add(info.licence)
            # their anatomy network (one, the same): camus_ed_es, A4C frames only (the model card)
            if info.anatomy_rows and info.name in (CAMUS_MODEL, COST_VOLUME_MODEL):
                camus_anatomy.append(info.name)
    for licence in sorted(licences & set(LICENCE_TERMS)):
        print(f"{licence}: {LICENCE_TERMS[licence]}")
    for name in camus_anatomy:
        print(f"{name}: its anatomy network learnt CAMUS apical four-chamber (A4C) frames only; a refinement of "
              f"a sequence whose view is known to be another (recorded in the file or --apical-view) warns that "
              f"it compared them (--refine 0: the network alone)")
    print("enhancement is off unless asked for (--enhance MODEL, the panel's \"Enhance before registration\")")
    return 0


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``models`` on the ``echoreg`` sub-parsers."""
    parser = subparsers.add_parser("models", help="list the installed models with their licences and data")
    parser.set_defaults(run=_cmd_models)
    return parser
