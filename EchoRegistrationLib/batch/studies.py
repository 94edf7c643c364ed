"""The studies of a cohort: from a folder of files, a CAMUS root, or a CSV listing.

* a **CAMUS root** (a folder holding ``patientNNNN`` folders): one study per patient view
  (``patient0001_4CH``), with the CAMUS labels and ED / ES;
* a **folder of files**: one study per file (hidden files, ``*.csv``/``*.json``/``*.txt``/``*.md``
  and label sidecars skipped); a sidecar ``<stem>_labels.<ext>`` beside ``<stem>.<ext>`` gives that
  study's labels;
* a **CSV** with a header and the column ``input`` and optional ``id``, ``labels``, ``landmarks``
  (``x1,y1,x2,y2,x3,y3`` in mm, quoted), ``mask``, ``view``, ``frame_rate`` and ``es_frame`` (the
  end-systole frame, 0-based, over the file's: :attr:`..workflow.Study.es_frame`); relative paths are
  relative to the CSV's folder.

Study ids name the output folders: unique, made of the file name (without its suffixes) or the
CSV's ``id``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..sequence import EchoDataError
from ..workflow import Study, parse_frame_number, parse_landmarks

SKIPPED_SUFFIXES = (".csv", ".json", ".txt", ".md", ".cfg")
LABELS_SUFFIX = "_labels"
CSV_COLUMNS = ("id", "input", "labels", "landmarks", "mask", "view", "frame_rate", "es_frame")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CohortStudy:
    """One study of a cohort: its id (the output folder's name) and what to read."""

    id: str
    study: Study


def stem(path: Path) -> str:
    """The file name without its suffixes ("a.seq.nrrd" -> "a")."""
    return path.name.split(".")[0] if not path.name.startswith(".") else path.name


def _unique(studies: list[CohortStudy], source: str) -> list[CohortStudy]:
    seen: set[str] = set()
    for entry in studies:
        if not entry.id or entry.id.startswith(".") or _SAFE_ID.search(entry.id):
            raise EchoDataError(source, f"study id {entry.id!r} is not a folder name (letters, digits, . _ -)")
        if entry.id in seen:
            raise EchoDataError(source, f"two studies have the id {entry.id!r}; give each an id")
        seen.add(entry.id)
    if not studies:
        raise EchoDataError(source, "no studies found")
    return studies


def camus_studies(root: Path) -> list[CohortStudy]:
    """One study per patient view of a CAMUS root."""
    from ..io.camus import available_views

    studies = [CohortStudy(f"{folder.name}_{view}", Study(input=str(folder), view=view))
               for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient"))
               for view in available_views(folder)]
    return _unique(studies, str(root))


def folder_studies(folder: Path) -> list[CohortStudy]:
    """One study per input file of ``folder`` (sidecar labels attached; module docstring)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and not p.name.lower().endswith(SKIPPED_SUFFIXES))
    labels = {stem(p)[:-len(LABELS_SUFFIX)]: p for p in files if stem(p).endswith(LABELS_SUFFIX)}
    studies = [CohortStudy(stem(p), Study(input=str(p), labels=str(labels[stem(p)]) if stem(p) in labels else None))
               for p in files if not stem(p).endswith(LABELS_SUFFIX)]
    return _unique(studies, str(folder))


def csv_studies(path: Path) -> list[CohortStudy]:
    """The studies a CSV lists (module docstring).

    Raises:
        EchoDataError: no ``input`` column, an unknown column, a bad landmark or frame rate cell
            (naming the CSV and its line), or duplicate ids.
    """
    def resolved(cell: str | None) -> str | None:
        return None if not cell else str(path.parent / cell) if not os.path.isabs(cell) else cell

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if "input" not in columns or columns - set(CSV_COLUMNS):
            raise EchoDataError(str(path), f"expected the columns {', '.join(CSV_COLUMNS)} (input required), "
                                           f"got {', '.join(reader.fieldnames or ()) or 'none'}")
        studies = []
        for line, row in enumerate(reader, start=2):
            try:
                landmarks = parse_landmarks(row["landmarks"]) if row.get("landmarks") else None
                rate = float(row["frame_rate"]) if row.get("frame_rate") else None
                es_frame = parse_frame_number(row.get("es_frame"), "es_frame")
            except (ValueError, TypeError) as err:
                raise EchoDataError(f"{path}:{line}", str(err)) from None
            study = Study(input=resolved(row["input"]), labels=resolved(row.get("labels")),
                          mask=resolved(row.get("mask")), view=row.get("view") or None, frame_rate=rate,
                          landmarks=None if landmarks is None else tuple(map(tuple, landmarks)),
                          es_frame=es_frame, landmarks_source=f"{path}:{line} landmarks",
                          es_frame_source=f"{path}:{line} es_frame")
            studies.append(CohortStudy(row.get("id") or stem(Path(row["input"])), study))
    return _unique(studies, str(path))


def find_studies(source: str | os.PathLike, frame_rate: float | None = None) -> list[CohortStudy]:
    """The studies of ``source``: a CSV file, a CAMUS root or a folder of files.

    Args:
        frame_rate: frames/s for every study whose CSV row gives none (:attr:`..workflow.Study.frame_rate`:
            refused over times a study's file records, which fails that study, naming its file).

    Raises:
        EchoDataError: ``source`` does not exist, holds no studies, or lists bad ones.
    """
    source = Path(source)
    if source.is_file():
        studies = csv_studies(source)
    elif not source.is_dir():
        raise EchoDataError(str(source), "no such folder or CSV file")
    elif any(p.is_dir() and p.name.startswith("patient") for p in source.iterdir()):
        studies = camus_studies(source)
    else:
        studies = folder_studies(source)
    if frame_rate is None:
        return studies
    return [entry if entry.study.frame_rate is not None else
            dataclasses.replace(entry, study=dataclasses.replace(entry.study, frame_rate=float(frame_rate)))
            for entry in studies]
