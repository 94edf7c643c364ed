"""``echoreg batch``: the strain workflow over a cohort, resumable, with one cohort table.

    echoreg batch SOURCE -o OUTDIR [--workers N | --scheduler tcp://host:8786] [strain options]

SOURCE is a folder of files, a CAMUS root or a CSV listing (:mod:`..batch.studies`). Each study
gets ``OUTDIR/studies/<id>/`` as ``echoreg strain`` writes it; ``OUTDIR/cohort.csv`` (and
``cohort.parquet`` with pyarrow) holds one row per study. A failing study is a row with its error;
re-running skips finished studies (:mod:`..batch.runner`).
"""

from __future__ import annotations

import argparse
import sys

from .common import (add_myocardium_options, add_registration_options, count, describe_model_use,
                     positive_number, settings_from_args)

NAMED_STUDIES = 10  # studies with warnings named on the last line; the others are counted


def add_batch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``batch`` subcommand on the ``echoreg`` sub-parsers; returns its parser."""
    parser = subparsers.add_parser(
        "batch", help="strain over a cohort (folder, CAMUS root or CSV) with one cohort table",
        description=__doc__.splitlines()[0])
    parser.add_argument("source", help="folder of input files, CAMUS root, or CSV with columns id, input, "
                                       "labels, landmarks, mask, view, frame_rate")
    parser.add_argument("-o", "--output", required=True, help="batch folder (re-run to resume)")
    parser.add_argument("--workers", type=count(1), default=1, help="local processes (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask distributed cluster (tcp://host:8786) instead of locally")
    parser.add_argument("--retry-failed", action="store_true", help="run studies that failed before again")
    parser.add_argument("--frame-rate", type=positive_number,
                        help="frames per second for the studies whose files do not record time and whose CSV row "
                             "gives none (a study whose file records other times fails, naming it; studies "
                             "finished before keep theirs)")
    add_myocardium_options(parser, one_input=False)
    add_registration_options(parser)
    parser.set_defaults(run=run_batch_command)
    return parser


def run_batch_command(args: argparse.Namespace) -> int:
    """The ``echoreg batch`` command; exit status 0 when every study succeeded, 1 when some failed."""
    from tqdm import tqdm

    from ..batch import batch, find_studies

    studies = find_studies(args.source, frame_rate=args.frame_rate)
    settings = settings_from_args(args, myocardium="auto")
    model = settings.describe_model()
    if model:
        from ..dlir.shipped import licence_of

        use = {"model": model, "licence": licence_of(model), "refine": settings.arguments().get("refine")}
        print(f"{len(studies)} studies, DLIR {describe_model_use(use)}")
    else:
        print(f"{len(studies)} studies, method {settings.method} (optimisation)")
    with tqdm(total=len(studies), unit="study", desc="batch") as bar:
        failed = []

        def progress(row: dict, done: int, total: int) -> None:
            if row["status"] != "ok":
                failed.append(row["study"])
                tqdm.write(f"echoreg: {row['study']}: error: {row['error']}", file=sys.stderr)
            bar.n = done
            bar.set_postfix(failed=len(failed), refresh=False)
            bar.update(0)

        try:
            result = batch(studies, args.output, settings, workers=args.workers, scheduler=args.scheduler,
                           retry_failed=args.retry_failed, progress=progress)
        except KeyboardInterrupt:  # each study is committed whole or not at all (batch.runner.run_study)
            raise KeyboardInterrupt(f"the studies finished in {args.output} stay; the same command resumes the "
                                    "batch") from None
    errors = [row["study"] for row in result.rows if row["status"] != "ok"]
    warned = [row["study"] for row in result.rows if row.get("warnings")]
    print(f"{len(result.rows)} studies: {result.ran} run now, {result.skipped} done before, "
          f"{len(errors)} failed{': ' + ', '.join(errors) if errors else ''}")
    if warned:
        named = ", ".join(warned[:NAMED_STUDIES]) + (f" and {len(warned) - NAMED_STUDIES} more"
                                                      if len(warned) > NAMED_STUDIES else "")
        print(f"{len(warned)} with warnings to read before their numbers (the table's warnings column): {named}")
    print(f"wrote {', '.join(str(p) for p in result.tables)}")
    return 1 if errors else 0
