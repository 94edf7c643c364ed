"""Strain over a cohort: every study once, into its own committed folder, then one cohort table.

Layout of the output folder::

    OUTPUT/studies/<id>/      one folder per study: the files of ``echoreg strain`` and study.json
    OUTPUT/batch.json         the settings every study ran with (a resumed run must use the same)
    OUTPUT/cohort.csv         the cohort table (:mod:`.cohort`), rebuilt from the study folders
    OUTPUT/cohort.parquet     the same, when pyarrow is installed

A study runs in a hidden temporary folder beside its final one and is committed by one rename
(atomic on one file system) after its ``study.json`` row is written: a kill at any moment leaves
committed studies and, at most, temporary folders that the next run removes. A study that fails is
committed as a folder holding only its ``study.json`` error row; the run goes on. Re-running skips
committed studies (``retry_failed`` runs failed ones again), so each study is analysed exactly once
and the table, rebuilt from the folders, has exactly one row per study.

Each study runs on one PyTorch thread: parallelism is over studies (``workers`` local processes,
or a Dask cluster), and the numbers do not depend on where a study ran, with one exception: DLIR's
networks run in bfloat16 on a node whose CPU has AMX and in float32 on others (the cohort table's
``network_precision`` says which); ``WorkflowSettings.float32`` (``--float32``) makes every node use
float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_output
from ..sequence import EchoDataError, EchoDataWarning, error_line
from ..workflow import WorkflowSettings
from .cohort import STUDY_JSON, error_row, read_row, study_row, write_cohort_table
from .studies import CohortStudy, find_studies

STUDIES = "studies"
SETTINGS_JSON = "batch.json"
PARTIAL = ".partial"
# Settings that change where and how fast a study runs, not its numbers.
RUN_SETTINGS = ("device", "chunk_size")
LOCK = ".batch.lock"


@dataclass
class BatchResult:
    """A finished batch: the cohort rows (study order), the table files, what this run did."""

    rows: list[dict[str, Any]]
    tables: list[Path]
    ran: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def run_study(entry: CohortStudy, settings: WorkflowSettings, studies_dir: str | os.PathLike) -> dict[str, Any]:
    """Analyse one study into ``studies_dir/<id>`` and commit it (module docstring); returns its row.
    A committed study is not run again: its row is returned. Errors of the study become its error
    row; only an interrupt (KeyboardInterrupt) propagates, leaving nothing committed."""
    import torch

    from ..workflow import run_strain

    final = Path(studies_dir) / entry.id
    committed = read_row(final)
    if committed is not None:
        return committed
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.id}.", suffix=PARTIAL, dir=studies_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        try:
            # the input's caveats go to the row's warnings; catch_warnings is process-wide, so this
            # needs one study at a time per process (the worker processes and Dask's --nthreads 1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                analysis = run_strain(entry.study, settings, tmp)
            caveats = [str(w.message) for w in caught if issubclass(w.category, EchoDataWarning)]
            row = study_row(entry.id, entry.study.input, analysis, settings, time.perf_counter() - start,
                            list(dict.fromkeys(caveats)))
        except Exception as err:  # noqa: BLE001  (a failing study is a row, never a stop)
            shutil.rmtree(tmp)
            tmp.mkdir()
            row = error_row(entry.id, entry.study.input, error_line(err), settings, time.perf_counter() - start)
        (tmp / STUDY_JSON).write_text(json.dumps(row, indent=1) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, final)  # the commit
        return row
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _locked(output: Path) -> Iterator[None]:
    """Hold ``output/.batch.lock``: one batch per output folder at a time.

    Raises:
        EchoDataError: another batch holds the lock."""
    with open(output / LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EchoDataError(str(output), "another echoreg batch is writing into this folder") from None
        yield


def settings_record(settings: WorkflowSettings) -> dict[str, Any]:
    """What the numbers of a study depend on: every setting but :data:`RUN_SETTINGS`, with the
    defaults resolved (the DLIR model's name, its refinement steps and start, the systole anchor for the
    tracking the model or the mode asks for), as JSON values."""
    from ..registration.tracking import CHAIN_KEY_SECONDS, DEFAULT_REFINE_START, REFINE_LEARNING_RATES, anchor_setting

    record = {key: value for key, value in dataclasses.asdict(settings).items() if key not in RUN_SETTINGS}
    record.update(model=settings.describe_model() or None, refine=settings.arguments().get("refine"))
    mode = settings.dlir_mode()  # None when not DLIR (reads the model's tracking: once)
    # not DLIR: no mode takes an anchor (0), the one "sequential" stands for all
    record["anchor"] = anchor_setting(settings.method, mode or "sequential", settings.anchor)
    # the refinement's start (registration.tracking.REFINE_STARTS), resolved: only DLIR refined to the reference
    # has one, the default unless the options set another
    options = dict(record["options"])
    start = options.pop("refine_start", DEFAULT_REFINE_START)
    start = start if record["refine"] and mode == "to_reference" else None
    # where the chain takes its fields from, and "best" compares the starts: the refinement's first level (since
    # the nineteenth session, registration.tracking._split_levels); both started from fully refined fields before
    record.update(options=options, refine_start=start,
                  refine_chain_level="first" if start in ("best", "chained") else None)
    record["refine_learning_rates"] = _learning_rates_record(record["refine"], options, REFINE_LEARNING_RATES)
    # the least time between the chain's key frames (since the twenty-first session; every frame before)
    record["refine_chain_key_seconds"] = CHAIN_KEY_SECONDS if start in ("best", "chained") else None
    return json.loads(json.dumps(record, default=str))


def _learning_rates_record(refine: int | None, options: dict[str, Any], rates: tuple[float, float]) -> list | None:
    """The Adam step sizes per level of a DLIR refinement of ``refine`` steps whose coarser levels take ``rates[0]``
    and whose finest of several ``rates[1]`` (registration.tracking.REFINE_LEARNING_RATES since the twentieth
    session): one per level where the settings fix the levels (``levels`` among the ``options``, or ``refine`` < 4:
    one), else ``rates`` (two levels or one, by the frames' size); None without a refinement or where the options
    set ``learning_rate`` themselves (recorded among them)."""
    from ..registration.tracking import refine_learning_rates

    if not refine or "learning_rate" in options:
        return None
    levels = options.get("levels", 1 if refine < 4 else None)
    return list(rates if levels is None else refine_learning_rates(int(levels), rates))


def _check_settings(settings: WorkflowSettings, output: Path) -> None:
    """Record the settings in ``output/batch.json`` on the first run; refuse a resumed run whose
    settings differ, so that one cohort table never mixes two analyses.

    Raises:
        EchoDataError: the folder's batch began with other settings (each difference named)."""
    from ..registration.tracking import REFINE_LEARNING_RATES

    path = output / SETTINGS_JSON
    current = settings_record(settings)
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        _check_unrecorded_rows(current, output / STUDIES)
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(current, indent=1) + "\n")
        return
    except json.JSONDecodeError as err:
        raise EchoDataError(str(path), f"unreadable batch settings ({err.msg})") from None
    recorded.setdefault("anchor", 0)  # batches begun before the systole anchor registered every frame directly
    # batches begun before the refinement had two starts (2026-12-02) refined from the direct one, where one applies
    recorded.setdefault("refine_start", None if current["refine_start"] is None else "direct")
    # batches begun before the two starts were compared after the first level (2026-12-02, the eighteenth
    # session) refined both, and the chain, at every level
    recorded.setdefault("refine_chain_level", "all" if recorded["refine_start"] in ("best", "chained") else None)
    if recorded["refine_chain_level"] == "all" and current["refine_chain_level"] == "first":
        raise EchoDataError(str(output), "this batch was begun by an earlier version, which refined both "
                                         "refinement starts (refine_start best or chained) at every level; this "
                                         "version compares them after the first level and cannot resume it: write "
                                         "into a new folder")
    # batches begun before the twentieth session (2026-12-02) refined with register_pair's default step, 0.5 pixel
    # at every level: the same steps as this version's where their settings fix one level or set the step, not
    # where the frames may give two levels (refused then, even where they gave one)
    if "refine_learning_rates" not in recorded:
        refine, options = recorded.get("refine"), recorded.get("options", {})
        recorded["refine_learning_rates"] = _learning_rates_record(refine, options, (0.5, 0.5))
        if recorded["refine_learning_rates"] != _learning_rates_record(refine, options, REFINE_LEARNING_RATES):
            raise EchoDataError(str(output), "this batch was begun by an earlier version, whose refinement took "
                                             "steps of 0.5 pixel at every level (this version takes 0.25 at the "
                                             "full level of two); it cannot be resumed: write into a new folder")
    # batches begun before the twenty-first session (2026-12-02) chained through every frame: the same only where
    # the frames are at least CHAIN_KEY_SECONDS apart (or their times unknown), which the settings cannot tell
    if "refine_chain_key_seconds" not in recorded:
        if recorded["refine_start"] in ("best", "chained") and current["refine_chain_key_seconds"] is not None:
            raise EchoDataError(str(output), "this batch was begun by an earlier version, whose chained refinement "
                                             "start went through every frame (this version hops between frames at "
                                             f"least {current['refine_chain_key_seconds']} s apart); it cannot be "
                                             "resumed: write into a new folder")
        recorded["refine_chain_key_seconds"] = None
    if recorded["anchor"] is None:  # recorded unresolved (2026-11-30, one commit): the default of these settings
        recorded["anchor"] = settings_record(dataclasses.replace(settings, anchor=None))["anchor"]
    changed = [f"{key} {recorded.get(key)!r} -> {current.get(key)!r}"
               for key in sorted(set(recorded) | set(current)) if recorded.get(key) != current.get(key)]
    if changed:
        raise EchoDataError(str(output), "this batch began with other settings (" + "; ".join(changed)
                            + "): resume it with its settings, or write into a new folder")


def _check_unrecorded_rows(current: dict[str, Any], studies_dir: Path) -> None:
    """A folder without ``batch.json`` but with committed studies (a batch of an earlier version, which
    recorded no settings): refuse when a study's row names another method, model or refinement than
    ``current`` (:func:`settings_record`), the part of the settings a row records.

    Raises:
        EchoDataError: a committed study ran with other settings (the first one found is named)."""
    for folder in sorted(studies_dir.iterdir()) if studies_dir.is_dir() else ():
        row = read_row(folder) if not folder.name.startswith(".") else None
        if row is None:
            continue
        ran = {"method": row.get("method"), "model": row.get("model") or None, "refine": row.get("refine")}
        wanted = {key: current.get(key) for key in ran}
        if "refine" not in row:  # rows of that version did not record it
            ran.pop("refine"), wanted.pop("refine")
        if ran != wanted:
            raise EchoDataError(str(studies_dir.parent), f"study {folder.name} ran with {ran}, not {wanted} (a batch "
                                "that recorded no settings): resume it with its settings, or write into a new folder")


def _prepare(studies: Sequence[CohortStudy], studies_dir: Path, retry_failed: bool) -> list[CohortStudy]:
    """Remove temporary folders of killed runs (and, with ``retry_failed``, failed studies);
    return the studies still to run."""
    for partial in studies_dir.glob(f".*{PARTIAL}"):
        shutil.rmtree(partial, ignore_errors=True)
    todo = []
    for entry in studies:
        row = read_row(studies_dir / entry.id)
        if row is not None and retry_failed and row["status"] == "error":
            shutil.rmtree(studies_dir / entry.id)
            row = None
        if row is None:
            todo.append(entry)
    return todo


def _local_results(todo: list[CohortStudy], settings: WorkflowSettings, studies_dir: Path,
                   workers: int) -> Iterator[dict[str, Any]]:
    """Rows of ``todo`` run here (``workers`` = 1) or in local processes, as they finish."""
    if workers == 1:
        for entry in todo:
            yield run_study(entry, settings, studies_dir)
        return
    context = multiprocessing.get_context("spawn")  # no forked PyTorch state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_study, entry, settings, studies_dir) for entry in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _dask_results(todo: list[CohortStudy], settings: WorkflowSettings, studies_dir: Path,
                  scheduler: str) -> Iterator[dict[str, Any]]:
    """Rows of ``todo`` run on the Dask cluster at ``scheduler``, as they finish.

    Raises:
        EchoDataError: Dask distributed is not installed (pip install "echoregistration[batch]")."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise EchoDataError("--scheduler", 'needs Dask distributed: pip install "echoregistration[batch]"') from None
    with Client(scheduler) as client:
        futures = [client.submit(run_study, entry, settings, str(studies_dir), pure=False) for entry in todo]
        try:
            for future in dask_completed(futures):
                yield future.result()
        except BaseException:
            client.cancel(futures)
            raise


def batch(source: str | os.PathLike | Sequence[CohortStudy], output: str | os.PathLike,
          settings: WorkflowSettings | None = None, *, workers: int = 1, scheduler: str | None = None,
          retry_failed: bool = False,
          progress: Callable[[dict[str, Any], int, int], None] | None = None) -> BatchResult:
    """Strain over a cohort into ``output`` (layout: module docstring); resumable.

    Args:
        source: a folder of files, a CAMUS root, a CSV listing (:func:`.studies.find_studies`) or
            the studies themselves.
        output: the batch folder (created when missing); its committed studies are not run again.
        settings: the workflow settings of every study (default: :class:`~..workflow.WorkflowSettings`'s,
            the default DLIR model refined by DEFAULT_REFINE (24) steps, myocardium from each study's
            labels or landmarks).
        workers: local processes (1: in this process).
        scheduler: address of a Dask distributed scheduler ("tcp://host:8786"); then ``workers``
            is ignored and the studies run on the cluster's workers (which must see ``output``).
        retry_failed: run studies that failed in an earlier run again.
        progress: called as ``progress(row, done, total)`` after each study of this run.

    Returns:
        :class:`BatchResult`; the table is also written (:func:`.cohort.write_cohort_table`).

    Raises:
        EchoDataError: no studies, a bad listing, another batch running in ``output``, or one
            that began there with other settings (:func:`_check_settings`).
    """
    studies = list(source) if isinstance(source, Sequence) and not isinstance(source, str) else find_studies(source)
    settings = settings or WorkflowSettings()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    output = Path(output)
    studies_dir = output / STUDIES
    studies_dir.mkdir(parents=True, exist_ok=True)
    with _locked(output):
        _check_settings(settings, output)
        todo = _prepare(studies, studies_dir, retry_failed)
        done = len(studies) - len(todo)
        result = BatchResult(rows=[], tables=[], skipped=done)
        rows = (_dask_results(todo, settings, studies_dir, scheduler) if scheduler
                else _local_results(todo, settings, studies_dir, workers))
        for row in rows:
            done += 1
            result.ran += 1
            if row["status"] != "ok":
                result.failed.append(row["study"])
            if progress is not None:
                progress(row, done, len(studies))
        result.rows = [read_row(studies_dir / entry.id) for entry in studies]
        result.tables = write_cohort_table(result.rows, output)
    return result
