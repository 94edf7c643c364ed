"""The CAMUS dataset layout (Leclerc et al., IEEE TMI 2019), NIfTI release.

One folder per patient::

    patient0001/
        patient0001_2CH_half_sequence.nii.gz      ED -> ES frames, 2D+t, time as the third axis
        patient0001_2CH_half_sequence_gt.nii.gz   per-frame labels (optional)
        patient0001_2CH_ED.nii.gz, _ES.nii.gz     single frames
        patient0001_2CH_ED_gt.nii.gz, _ES_gt.nii.gz
        Info_2CH.cfg                              "key: value" lines: ED, ES, NbFrame, EF, FrameRate, ...
        (the same for 4CH)

Label codes: 1 LV cavity, 2 myocardium, 3 left atrium. ``ED`` and ``ES`` in ``Info_*.cfg`` are 1-based
frame numbers of the half sequence.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..sequence import EchoDataError, EchoSequence
from .atomic import atomic_output
from .itk import read_itk_image, read_itk_labels, write_itk_image
from .timing import FrameTiming, checked_frame_rate, given_frame_rate

VIEWS = {"2CH": "2CH", "4CH": "4CH", "A2C": "2CH", "A4C": "4CH"}


def camus_view(view: str) -> str:
    """Normalise a view name (``2CH``/``A2C``, ``4CH``/``A4C``) to CAMUS's ``2CH``/``4CH``."""
    key = str(view).upper()
    if key not in VIEWS:
        raise ValueError(f"unknown CAMUS view {view!r}: use one of {sorted(VIEWS)}")
    return VIEWS[key]


def read_camus_info(path: str | os.PathLike) -> dict[str, str | float]:
    """Parse an ``Info_{2CH,4CH}.cfg`` file: ``key: value`` lines, numbers converted to float."""
    path = Path(path)
    info: dict[str, str | float] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise EchoDataError(str(path), f"line {number} is not 'key: value': {line!r}")
        value = value.strip()
        try:
            info[key.strip()] = float(value)
        except ValueError:
            info[key.strip()] = value
    return info


def _frame_number(info: dict, key: str, n_frames: int, cfg: Path) -> int | None:
    """0-based index of the 1-based frame number ``info[key]``, checked against the sequence."""
    if key not in info:
        return None
    value = info[key]
    if not isinstance(value, float) or not value.is_integer() or not 1 <= value <= n_frames:
        raise EchoDataError(str(cfg), f"{key}={value!r} is not a frame number in 1..{n_frames}")
    return int(value) - 1


def available_views(folder: Path) -> list[str]:
    """The views (2CH, 4CH) a CAMUS patient folder holds."""
    return [v for v in ("2CH", "4CH")
            if any(_patient_files(folder, v)[k].exists() for k in ("sequence", "ed"))]


def _only_view(folder: Path) -> str:
    views = available_views(folder)
    if len(views) != 1:
        raise EchoDataError(str(folder), f"holds views {views}: choose one (--view 2CH or --view 4CH; view= in the API)"
                            if views else _no_images(folder))
    return views[0]


def _no_images(folder: Path) -> str:
    """Why ``folder`` is no CAMUS patient folder: none of its images, or, for a flat folder of several patients'
    files, what reads those."""
    patients = sorted({m[1] for p in folder.glob("patient*_ED.nii.gz") if (m := CamusPairFolder.PATTERN.match(p.name))})
    if len(patients) == 1:
        return (f"holds {patients[0]}'s files in a folder of another name: CAMUS names a patient's folder after it "
                f"(rename it {patients[0]})")
    if patients:
        return (f"holds the ED / ES files of {len(patients)} patients ({patients[0]}, ...), not one patient's folder: "
                f"give a folder of one patient's files, named after it, or read them all with "
                f"EchoRegistrationLib.io.CamusPairFolder")
    return "holds no CAMUS images (patientXXXX_{2CH,4CH}_half_sequence.nii.gz)"


def _patient_files(folder: Path, view: str, patient: str | None = None) -> dict[str, Path]:
    """The files of one patient view in ``folder`` (named after ``patient``, default the folder)."""
    stem = f"{patient or folder.name}_{view}"
    names = {"sequence": "half_sequence", "sequence_gt": "half_sequence_gt", "ed": "ED",
             "es": "ES", "ed_gt": "ED_gt", "es_gt": "ES_gt"}
    return {key: folder / f"{stem}_{suffix}.nii.gz" for key, suffix in names.items()} | {
        "info": folder / f"Info_{view}.cfg"}


def load_camus_patient(folder: str | os.PathLike, view: str | None = None, *,
                       with_labels: bool = True, patient: str | None = None,
                       frame_rate: float | None = None) -> EchoSequence:
    """Load one CAMUS patient view as an :class:`EchoSequence`.

    ``view`` may be left out when the folder holds a single view. ``patient`` names the files
    (``{patient}_{view}_ED.nii.gz`` ...) when they lie in a shared flat folder rather than in
    their own ``patientXXXX`` folder (:class:`CamusPairFolder`); an ``Info_{view}.cfg`` there is not
    this patient's alone and is not read.
    Frames come from the half sequence (ED -> ES), or, when it is absent, from the ED and ES frames as
    a 2-frame sequence. Frame times come from ``FrameRate`` in the Info file, else from ``frame_rate``
    (frames/s, :mod:`.timing`'s rule: refused where it contradicts ``FrameRate``), else they are unknown.
    The two frames of an ED + ES pair lie ``ES - ED`` frames apart (the Info file's 1-based numbers in
    the half sequence, kept in ``metadata["frame_positions"]``): without those numbers their interval,
    and so their times, stay unknown, and ``metadata["frame_times_remedy"]`` says so. ED/ES indices from
    ``ED``/``ES``. Labels: the per-frame ground truth when present, else the ED and ES label maps on
    their frames (``label_frames``).

    Raises:
        EchoDataError: missing files; an Info file that contradicts the images, numbers ED or ES outside
            its frames or ES not after ED, or gives a FrameRate that is not a positive finite number (naming
            the Info file); a ``frame_rate`` that contradicts FrameRate or cannot time an ED + ES pair whose
            frame numbers the Info file does not give.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EchoDataError(str(folder), "is not a CAMUS patient folder")
    view = camus_view(view) if view is not None else _only_view(folder)
    files = _patient_files(folder, view, patient)
    shared_info = patient is not None and patient != folder.name
    info = read_camus_info(files["info"]) if files["info"].exists() and not shared_info else {}
    checked_frame_rate(str(folder), frame_rate)
    cfg = files["info"]
    pair = not files["sequence"].exists()  # the ED and ES frames alone, without the half sequence
    if not pair:
        seq = read_itk_image(files["sequence"])
        frames = seq.frames
        n = frames.shape[0]
        if "NbFrame" in info and info["NbFrame"] != n:
            raise EchoDataError(str(cfg), f"NbFrame={info['NbFrame']:g} but the images have {n} frames")
        ed, es = _frame_number(info, "ED", n, cfg), _frame_number(info, "ES", n, cfg)
        positions, unnumbered = np.arange(n, dtype=float), None
    elif files["ed"].exists() and files["es"].exists():
        seq = read_itk_image(files["ed"])
        frames = np.concatenate([seq.frames, read_itk_image(files["es"]).frames])
        ed, es = 0, 1
        positions = _pair_positions(info, cfg)
        unnumbered = None if positions is not None else (
            f"{cfg.name} is shared by the patients of this folder and not read" if shared_info and cfg.exists()
            else f"{cfg.name} does not give both ED and ES" if info else f"there is no {cfg.name}")
    else:
        raise EchoDataError(str(folder), f"no {files['sequence'].name} nor {files['ed'].name} + "
                                         f"{files['es'].name} for view {view}")
    timing = _frame_times(folder, cfg, info, positions, unnumbered, frame_rate, pair)
    labels, label_frames = None, None
    if with_labels:
        labels, label_frames = _camus_labels(files, frames.shape[0], ed, es)
    metadata = {"source": str(folder if pair else files["sequence"]),
                "format": "CAMUS", "patient": patient or folder.name, "view": view,
                "frame_times_source": timing.times_source,
                **({"frame_times_note": timing.note} if timing.note else {}),
                **{f"camus_{k}": v for k, v in info.items()}}
    if positions is not None and pair:
        metadata["frame_positions"] = _pair_places(positions)
    if unnumbered is not None:
        metadata["frame_times_remedy"] = (f"an ED + ES pair without their frame numbers ({unnumbered}): a frame "
                                          f"rate cannot give their times")
    if isinstance(info.get("EF"), float):
        metadata["ef"] = info["EF"]
    return EchoSequence(frames=frames, spacing=seq.spacing, frame_times=timing.times, origin=seq.origin,
                        direction=seq.direction, labels=labels, label_frames=label_frames,
                        ed_index=ed, es_index=es, metadata=metadata)


def _pair_positions(info: dict, cfg: Path) -> np.ndarray | None:
    """(2,) the half-sequence frame numbers of an ED + ES pair from the Info file ``info`` (read from
    ``cfg``), or None where it does not give both.

    Raises:
        EchoDataError: naming ``cfg``: ED or ES not a frame number (1-based, within NbFrame when given), or
            ES not after ED.
    """
    if "ED" not in info or "ES" not in info:
        return None
    count = info.get("NbFrame")
    count = int(count) if isinstance(count, float) and count.is_integer() and count >= 2 else None
    for key in ("ED", "ES"):
        value = info[key]
        if not isinstance(value, float) or not value.is_integer() or value < 1 or (count and value > count):
            raise EchoDataError(str(cfg), f"{key}={value!r} is not a frame number in "
                                          f"{f'1..{count}' if count else '1, 2, ...'}")
    if info["ES"] <= info["ED"]:
        raise EchoDataError(str(cfg), f"ES={info['ES']:g} is not after ED={info['ED']:g} (the half sequence runs "
                                      "from ED to ES)")
    return np.array([info["ED"], info["ES"]])


def _frame_times(folder: Path, cfg: Path, info: dict, positions: np.ndarray | None, unnumbered: str | None,
                 frame_rate: float | None, pair: bool) -> FrameTiming:
    """The frames' times from the Info file's ``FrameRate`` and the caller's ``frame_rate``
    (:func:`.timing.given_frame_rate`), at the frames' ``positions`` in the half sequence (None: an ED +
    ES pair without its frame numbers, for the reason ``unnumbered``, whose times stay unknown). The times'
    source of an ED + ES ``pair`` says where its two frames lie.

    Raises:
        EchoDataError: naming ``cfg``: a FrameRate that is not a positive finite number, or one that
            ``frame_rate`` contradicts; naming ``folder``: a ``frame_rate`` for an unnumbered pair.
    """
    if positions is None:
        if frame_rate is not None:
            raise EchoDataError(str(folder), f"holds only the ED and ES frames, without their frame numbers "
                                             f"({unnumbered}): a frame rate cannot give their times")
        return FrameTiming(None, f"unknown: an ED + ES pair without their frame numbers ({unnumbered})")
    recorded, recorded_by = None, "not in Info file"
    if "FrameRate" in info:
        rate = info["FrameRate"]
        if not isinstance(rate, float) or not (math.isfinite(rate) and rate > 0):
            raise EchoDataError(str(cfg), f"FrameRate={rate!r} is not a positive, finite number of frames/s")
        recorded, recorded_by = (positions - positions[0]) / rate, f"Info FrameRate ({rate:g} frames/s)"
    timing = given_frame_rate(str(cfg if recorded is not None else folder), len(positions), frame_rate, recorded,
                              recorded_by, positions=positions)
    if pair:  # say where its interval comes from
        return dataclasses.replace(timing, times_source=f"{timing.times_source}, at {_pair_places(positions)}")
    return timing


def _pair_places(positions: np.ndarray) -> str:
    """Where an ED + ES pair's two frames lie, for the metadata and :meth:`EchoSequence.describe`."""
    return f"{positions[0]:g} (ED) and {positions[1]:g} (ES) of the half sequence (Info file)"


def _camus_labels(files: dict[str, Path], n: int, ed: int | None,
                  es: int | None) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
    if files["sequence_gt"].exists():
        labels = read_itk_labels(files["sequence_gt"])
        if labels.ndim == 2:
            labels = labels[None]
        if labels.shape[0] != n:
            raise EchoDataError(str(files["sequence_gt"]), f"{labels.shape[0]} label frames for {n} image frames")
        return labels, None
    annotated = [(i, files[key]) for i, key in ((ed, "ed_gt"), (es, "es_gt"))
                 if i is not None and files[key].exists()]
    if not annotated:
        return None, None
    maps = {i: read_itk_labels(path) for i, path in annotated}
    shape = next(iter(maps.values())).shape
    labels = np.zeros((n, *shape), dtype=np.uint8)
    for i, label_map in maps.items():
        if label_map.shape != shape:
            raise EchoDataError(str(dict(annotated)[i]), f"label map of shape {label_map.shape}, expected {shape}")
        labels[i] = label_map
    return labels, tuple(sorted(maps))


class CamusDataset(Sequence):
    """The patient views of a CAMUS root folder, loaded lazily: ``len()``, indexing and iteration give
    :class:`EchoSequence` objects (for training loops and evaluation).

    Args:
        root: folder holding ``patientXXXX`` folders.
        views: views to include (``2CH``, ``4CH``).
        patients: optional subset of patient folder names (e.g. a training split).
    """

    def __init__(self, root: str | os.PathLike, views: Sequence[str] = ("2CH", "4CH"),
                 patients: Sequence[str] | None = None, with_labels: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise EchoDataError(str(self.root), "CAMUS root folder does not exist")
        wanted = set(patients) if patients is not None else None
        self.with_labels = with_labels
        self.entries: list[tuple[Path, str]] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("patient")):
            if wanted is not None and folder.name not in wanted:
                continue
            present = available_views(folder)
            self.entries.extend((folder, v) for v in map(camus_view, views) if v in present)
        if not self.entries:
            raise EchoDataError(str(self.root), f"no CAMUS patient views {list(views)} found")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> EchoSequence:  # type: ignore[override]
        folder, view = self.entries[index]
        return load_camus_patient(folder, view, with_labels=self.with_labels)

    def __iter__(self) -> Iterator[EchoSequence]:
        return (self[i] for i in range(len(self)))


class CamusPairFolder(Sequence):
    """CAMUS ED / ES frames of many patients in one flat folder (``patientNNNN_4CH_ED.nii.gz``,
    ``_ES``, ``_ED_gt``, ``_ES_gt``; the layout of ``../shared/data/camus_ed_es/{train,valid}``),
    loaded lazily as 2-frame :class:`EchoSequence` objects: frame 0 ED, frame 1 ES, labels on both
    when the ``_gt`` files are there.

    Args:
        root: the folder.
        views: views to include (``2CH``, ``4CH``).

    Raises:
        EchoDataError: no ED / ES pair in the folder.
    """

    PATTERN = re.compile(r"^(patient\d+)_(2CH|4CH)_ED\.nii\.gz$")

    def __init__(self, root: str | os.PathLike, views: Sequence[str] = ("2CH", "4CH")):
        self.root = Path(root)
        wanted = {camus_view(v) for v in views}
        matches = [self.PATTERN.match(p.name) for p in sorted(self.root.glob("patient*_ED.nii.gz"))]
        self.entries = [(m[1], m[2]) for m in matches if m and m[2] in wanted
                        and (self.root / f"{m[1]}_{m[2]}_ES.nii.gz").exists()]
        if not self.entries:
            raise EchoDataError(str(self.root), "holds no CAMUS ED / ES pairs (patientNNNN_4CH_ED.nii.gz, _ES)")

    @classmethod
    def holds_pairs(cls, root: str | os.PathLike) -> bool:
        """Whether ``root`` holds CAMUS ED frames in the flat layout."""
        return any(cls.PATTERN.match(p.name) for p in Path(root).glob("patient*_ED.nii.gz"))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> EchoSequence:  # type: ignore[override]
        patient, view = self.entries[index]
        return load_camus_patient(self.root, view, patient=patient)

    def __iter__(self) -> Iterator[EchoSequence]:
        return (self[i] for i in range(len(self)))


def write_camus_patient(root: str | os.PathLike, patient_id: str, view: str, seq: EchoSequence, *,
                        overwrite: bool = False) -> Path:
    """Write ``seq`` as one CAMUS patient view under ``root/patient_id`` and return that folder.

    The half sequence is frames ``ed_index..es_index`` (both required, ED before ES); per-frame labels
    are written as ``*_half_sequence_gt`` when every frame is annotated, and ED/ES label maps whenever
    those frames are annotated. ``Info_{view}.cfg`` gets ED, ES, NbFrame, FrameRate and, when
    ``seq.metadata`` has them, EF and ImageQuality.
    """
    view = camus_view(view)
    if seq.ed_index is None or seq.es_index is None or seq.es_index <= seq.ed_index:
        raise ValueError(f"{seq.source}: CAMUS needs ed_index < es_index, got {seq.ed_index}, {seq.es_index}")
    folder = Path(root) / patient_id
    files = _patient_files(folder, view)
    half = seq.subsequence(slice(seq.ed_index, seq.es_index + 1))
    write_itk_image(half, files["sequence"], overwrite=overwrite)
    write_itk_image(half, files["ed"], overwrite=overwrite, array=half.frames[0])
    write_itk_image(half, files["es"], overwrite=overwrite, array=half.frames[-1])
    if half.labels is not None:
        if half.labels.ndim == 3 and len(half.label_frames) == half.n_frames:
            write_itk_image(half, files["sequence_gt"], overwrite=overwrite, array=half.labels)
        for key, index in (("ed_gt", 0), ("es_gt", half.n_frames - 1)):
            if index in half.label_frames:
                write_itk_image(half, files[key], overwrite=overwrite, array=half.label_map(index))
    lines = ["ED: 1", f"ES: {half.n_frames}", f"NbFrame: {half.n_frames}"]
    if half.frame_times_known:
        lines.append(f"FrameRate: {half.frame_rate:.6g}")
    for key, name in (("ef", "EF"), ("image_quality", "ImageQuality")):
        if key in seq.metadata:
            value = seq.metadata[key]
            lines.append(f"{name}: {value:.6g}" if isinstance(value, (int, float)) else f"{name}: {value}")
    with atomic_output(files["info"], overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return folder
