"""3D Slicer volume sequence files (``.seq.nrrd``, written by ``vtkMRMLVolumeSequenceStorageNode``).

Layout that Slicer 5.13 writes (and :func:`write_seq_nrrd` mirrors), for T frames of H x W pixels
stored as single-slice volumes::

    NRRD0004
    # Complete NRRD file format specification at:
    # http://teem.sourceforge.net/nrrd/format.html
    type: float
    dimension: 4
    space: left-posterior-superior
    sizes: W H 1 T
    space directions: (column vector) (row vector) (slice vector) none
    kinds: domain domain domain list
    labels: "" "" "" "time"
    units: "" "" "" "s"
    endian: little
    encoding: gzip
    space origin: (x,y,z)
    DataNodeClassName:=vtkMRMLScalarVolumeNode
    axis 3 index type:=numeric
    axis 3 index values:=0 0.02 0.04 ...

Index values are URL-encoded strings separated by spaces. Colour volumes add a leading
``vector`` axis (dimension 5) and keep the key ``axis 3 ...``; Slicer 5.8 and older wrote the
list axis first (``kinds: list domain domain domain``, ``axis 0 index values``). The reader
accepts all of these.
"""

from __future__ import annotations

import gzip
import os
import re
import urllib.parse
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..sequence import ES_IN_FILE, LPS_TO_RAS, EchoDataError, EchoSequence, geometry_from_ijk_to_ras
from .atomic import atomic_output
from .colour import rgb_to_luma
from .timing import checked_frame_rate, given_frame_rate

# Sign flips from a NRRD patient space to LPS (each a diagonal, applied to vectors and origin).
_SPACE_TO_LPS = {
    "left-posterior-superior": np.array([1.0, 1.0, 1.0]),
    "lps": np.array([1.0, 1.0, 1.0]),
    "right-anterior-superior": np.array([-1.0, -1.0, 1.0]),
    "ras": np.array([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.array([1.0, -1.0, 1.0]),
    "las": np.array([1.0, -1.0, 1.0]),
}
# Seconds per unit of a time index.
TIME_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
                      "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3}
_INDEX_KEY = re.compile(r"axis (\d+) index (values|type)")
_SLICER_KEYS = ("DataNodeClassName",)
_COLOUR_KINDS = ("rgb-color", "rgba-color", "3-color", "4-color")
# Custom field this project adds when the pixel spacing is a placeholder (Slicer keeps it as a
# sequence node attribute and writes it back).
SPACING_KNOWN_KEY = "EchoRegistration.SpacingKnown"
# Custom fields for the end-diastolic and end-systolic frame indices (0-based), when known, and, only
# when the user set ES (EchoSequence.with_end_systole), the ES the original file gave ("" for none):
# the Slicer bridge (mrml.sequences) keeps the same names as sequence-node attributes.
ED_FRAME_KEY, ES_FRAME_KEY = "EchoRegistration.EDFrame", "EchoRegistration.ESFrame"
ES_IN_FILE_KEY = "EchoRegistration.ESFrameInFile"
# Custom field for the echo view (``metadata["view"]``: "A4C", "A2C", CAMUS "2CH" ...), when known: the
# registration's warnings name it (registration.tracking.anatomy_view_warnings), strain names its segments;
# the Slicer bridge (mrml.sequences) keeps it as the sequence node's attribute of the same name.
VIEW_KEY = "EchoRegistration.View"
VIEW_TEXT = re.compile(r"[A-Za-z0-9 _.-]{1,32}")  # a plain name that a header line holds as it is
# gzip level 1: on a real CAMUS cine (13 MB float32) 2.5 MB in 0.2 s, level 9 1.85 MB in 7.8 s.
_GZIP_LEVEL = 1


def is_seq_nrrd(path: str | os.PathLike) -> bool:
    """True when ``path`` is a NRRD file whose header describes a volume sequence: it has Slicer's
    sequence keys (``axis N index values/type``, ``DataNodeClassName``), or a ``list`` axis beside three
    spatial axes and is not a segmentation (``.seg.nrrd`` layers also use a list axis).
    A plain 3D NRRD volume, a transform (displacement field) sequence, and any unreadable or
    non-NRRD file give False."""
    try:
        with open(path, "rb") as handle:
            if not handle.read(8).startswith(b"NRRD000"):
                return False
    except OSError:
        return False
    import nrrd  # here, not at import: 3D Slicer does not bundle pynrrd (nor needs this reader)

    try:
        header = nrrd.read_header(str(path))
    except (OSError, ValueError, KeyError, nrrd.NRRDError):
        return False
    if _is_transform_sequence(header):
        return False
    if any(_INDEX_KEY.fullmatch(key) or key in _SLICER_KEYS for key in header):
        return True
    if any(key.startswith("Segment") for key in header):
        return False
    try:
        _axis_roles(header, str(path))
    except EchoDataError:
        return False
    return True


def read_seq_nrrd(path: str | os.PathLike, *, frame_rate: float | None = None) -> EchoSequence:
    """Read a Slicer volume sequence of single-slice frames.

    Returns an :class:`EchoSequence` with frames (T, H, W) float32 (any integer or float pixel type
    is accepted; colour frames become BT.601 luma), spacing (sx, sy) mm from the column / row axes,
    ``slice_spacing`` from the slice axis, origin and direction in LPS (RAS files converted), and
    ``frame_times`` in seconds from the index values when the index unit is a time unit (s or ms)
    and the values are numeric and strictly increasing; otherwise ``frame_times`` is None and
    ``metadata["note"]`` says why. ``frame_rate`` (frames/s) is for a file whose index is not such
    a time: the times are then ``i / frame_rate``; over a time index it is refused unless it agrees
    with it (:mod:`.timing`, as every reader). ED and ES come from this
    project's :data:`ED_FRAME_KEY` / :data:`ES_FRAME_KEY` fields when the file has them, the view
    (``metadata["view"]``) from :data:`VIEW_KEY`.

    Raises:
        FileNotFoundError: no such file.
        EchoDataError: not a readable volume sequence of single-slice frames (message starts with
            the file name); ``frame_rate`` not positive, or contradicting the index's times (the
            message gives their rate); an ED / ES field that is not a frame index.
    """
    import nrrd  # here, not at import: 3D Slicer does not bundle pynrrd

    source = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{source}: no such file")
    checked_frame_rate(source, frame_rate)
    try:
        data, header = nrrd.read(source, index_order="F")
    except (nrrd.NRRDError, ValueError, KeyError, OSError, EOFError, zlib.error) as error:
        raise EchoDataError(source, f"not a readable NRRD file ({error})") from error
    if _is_transform_sequence(header):
        raise EchoDataError(source, "is a transform (displacement field) sequence, not an image sequence")
    list_axis, component_axis, spatial_axes = _axis_roles(header, source)

    order = [list_axis, *spatial_axes[::-1]] + ([component_axis] if component_axis is not None else [])
    volumes = np.transpose(data, order)  # (T, K, J, I[, C])
    if volumes.shape[1] != 1:
        raise EchoDataError(source, f"frames are 3D volumes with {volumes.shape[1]} slices; "
                                    "only single-slice (2D) frames are supported")
    frames = volumes[:, 0]
    metadata: dict[str, Any] = {"source": source, "pixel_type": data.dtype.name}
    notes = []
    if component_axis is not None:
        frames, colour_note = _gray_frames(frames, header, component_axis, source)
        notes.append(colour_note)

    geometry = geometry_from_ijk_to_ras(LPS_TO_RAS @ _ijk_to_lps(header, spatial_axes, source))
    times, time_note, index_description = _frame_times(header, list_axis, frames.shape[0], source)
    metadata["sequence_index"] = index_description
    recorded_by = f"sequence index {index_description}" if times is not None else \
        f"not stored in the file (sequence index {index_description})"
    timing = given_frame_rate(source, frames.shape[0], frame_rate, times, recorded_by)
    times = timing.times
    metadata["frame_times_source"] = timing.times_source
    notes += [note for note in (time_note, timing.note) if note]
    if str(header.get(SPACING_KNOWN_KEY, "true")).lower() == "false":
        metadata["spacing_known"] = False
    if notes:
        metadata["note"] = "; ".join(notes)
    phases, in_file = phase_fields(header, frames.shape[0], source)
    metadata.update(in_file)  # ES set by the user: the original file's kept apart from it
    view = str(header.get(VIEW_KEY, "")).strip()
    if view:
        metadata["view"] = view
    return EchoSequence(frames=frames, frame_times=times, metadata=metadata, **phases, **geometry)


def write_seq_nrrd(seq: EchoSequence, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``seq`` as a Slicer volume sequence (float32 single-slice frames, gzip, LPS).

    The index is ``time`` in ``s`` holding ``seq.frame_times``; a sequence whose frame times are
    unknown gets the index ``frame`` (no unit) holding 0..T-1, so reading it back gives unknown
    times again. ED and ES, when known, are stored in :data:`ED_FRAME_KEY` / :data:`ES_FRAME_KEY`
    (Slicer keeps such fields as attributes of the sequence node), an ES set by the user with the
    file's own in :data:`ES_IN_FILE_KEY`, and the view (``metadata["view"]``, a plain name such as "A2C")
    in :data:`VIEW_KEY`; labels and other metadata are not.

    Returns the written path. Raises FileExistsError when ``path`` exists and ``overwrite`` is False.
    """
    t, h, w = seq.frames.shape
    ijk_to_lps = seq.ijk_to_lps()
    if seq.frame_times_known:
        index_name, index_unit = "time", "s"
        index_values = " ".join(format_number(v) for v in seq.frame_times)
    else:
        index_name, index_unit = "frame", ""
        index_values = " ".join(str(i) for i in range(t))
    vectors = " ".join(_vector(ijk_to_lps[:3, axis]) for axis in range(3))
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "type: float",
        "dimension: 4",
        "space: left-posterior-superior",
        f"sizes: {w} {h} 1 {t}",
        f"space directions: {vectors} none",
        "kinds: domain domain domain list",
        f'labels: "" "" "" "{index_name}"',
        f'units: "" "" "" "{index_unit}"',
        "endian: little",
        "encoding: gzip",
        f"space origin: {_vector(ijk_to_lps[:3, 3])}",
        "DataNodeClassName:=vtkMRMLScalarVolumeNode",
        "axis 3 index type:=numeric",
        f"axis 3 index values:={index_values}",
    ]
    if not seq.spacing_known:
        lines.append(f"{SPACING_KNOWN_KEY}:=false")
    lines += [f"{key}:={index}" for key, index in ((ED_FRAME_KEY, seq.ed_index), (ES_FRAME_KEY, seq.es_index))
              if index is not None]
    if seq.es_set_by_user:
        lines.append(f"{ES_IN_FILE_KEY}:={'' if seq.es_in_file is None else seq.es_in_file}")
    view = str(seq.metadata.get("view") or "").strip()
    if VIEW_TEXT.fullmatch(view):  # any other text (a line break, non-ASCII) is left out, not mangled
        lines.append(f"{VIEW_KEY}:={view}")
    header = ("\n".join(lines) + "\n\n").encode("ascii")
    pixels = np.ascontiguousarray(seq.frames, dtype="<f4")  # C order (T, H, W) = NRRD W fastest
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(header)
            with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as stream:
                stream.write(memoryview(pixels).cast("B"))
    return Path(path)


# ---------------------------------------------------------------------------------- helpers
def phase_fields(fields: Mapping[str, object], n_frames: int,
                 source: str) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """ED and ES from the :data:`ED_FRAME_KEY` / :data:`ES_FRAME_KEY` / :data:`ES_IN_FILE_KEY` text
    fields (a NRRD header's custom fields, or a Slicer sequence node's attributes) of a sequence of
    ``n_frames`` frames: the ``ed_index`` / ``es_index`` arguments of :class:`EchoSequence` (None
    when absent or empty) and the metadata entries to add (``ES_IN_FILE`` only when the field is
    there: ES was set by the user).

    Raises:
        EchoDataError: a field that is not an integer in 0..n_frames-1 (names ``source`` and the field).
    """
    def frame_index(key: str) -> int | None:
        value = fields.get(key)
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        try:
            index = int(text)
        except ValueError:
            index = None
        if index is None or not 0 <= index < n_frames:
            raise EchoDataError(source, f"field {key} must be a frame index 0..{n_frames - 1}, got {text!r}")
        return index

    phases = {"ed_index": frame_index(ED_FRAME_KEY), "es_index": frame_index(ES_FRAME_KEY)}
    in_file = {ES_IN_FILE: frame_index(ES_IN_FILE_KEY)} if fields.get(ES_IN_FILE_KEY) is not None else {}
    return phases, in_file


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float64 ("0.02", "1e-05", "3" rather than "3.0")."""
    return repr(float(value)).removesuffix(".0")


def _vector(values: np.ndarray) -> str:
    return "(" + ",".join(format_number(v) for v in values) + ")"


def _axis_roles(header: dict[str, Any], source: str) -> tuple[int, int | None, list[int]]:
    """(list axis, component axis or None, [i, j, k] spatial axes) of a sequence NRRD header."""
    dimension = int(header.get("dimension", 0))
    directions = header.get("space directions")
    if directions is None:
        raise EchoDataError(source, "NRRD header has no 'space directions': not a Slicer volume sequence")
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim != 2 or directions.shape[0] != dimension:
        raise EchoDataError(source, f"'space directions' has {len(directions)} entries for "
                                    f"dimension {dimension}")
    spatial = [a for a in range(dimension) if np.isfinite(directions[a]).all()]
    others = [a for a in range(dimension) if a not in spatial]
    if len(spatial) != 3 or directions.shape[1] != 3:
        raise EchoDataError(source, f"expected 3 spatial axes in 3D space, the header has {len(spatial)} "
                                    f"(space directions {directions.tolist()})")
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    if kinds and len(kinds) != dimension:
        raise EchoDataError(source, f"'kinds' lists {len(kinds)} axes for dimension {dimension}")
    lists = [a for a in others if kinds[a] == "list"] if kinds else others[-1:]
    if len(lists) != 1 or len(others) > 2:
        raise EchoDataError(source, f"expected one 'list' (sequence) axis beside the 3 spatial axes, "
                                    f"got dimension {dimension} with kinds {kinds or 'missing'}")
    components = [a for a in others if a != lists[0]]
    return lists[0], (components[0] if components else None), spatial


def _ijk_to_lps(header: dict[str, Any], spatial_axes: list[int], source: str) -> np.ndarray:
    """(4, 4) matrix from (i, j, k) voxel indices to LPS mm."""
    space = str(header.get("space", "")).lower()
    if space not in _SPACE_TO_LPS:
        raise EchoDataError(source, f"unsupported or missing NRRD 'space' ({header.get('space')!r}); "
                                    "expected left-posterior-superior or right-anterior-superior")
    flip = _SPACE_TO_LPS[space]
    directions = np.asarray(header["space directions"], dtype=np.float64)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if origin.shape != (3,):
        raise EchoDataError(source, f"'space origin' must have 3 components, got {origin.tolist()}")
    matrix = np.eye(4)
    matrix[:3, :3] = flip[:, None] * directions[spatial_axes].T
    matrix[:3, 3] = flip * origin
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise EchoDataError(source, f"space directions are degenerate: {directions[spatial_axes].tolist()}")
    return matrix


def _is_transform_sequence(header: dict[str, Any]) -> bool:
    """Slicer's transform sequences (vtkMRMLTransformSequenceStorageNode) share the layout."""
    return "displacement field type" in header or "Transform" in str(header.get("DataNodeClassName", ""))


def _gray_frames(frames: np.ndarray, header: dict[str, Any], component_axis: int,
                 source: str) -> tuple[np.ndarray, str]:
    """(T, H, W) frames from (T, H, W, C) multi-component ones (colour becomes BT.601 luma), with a
    note for the metadata. Colour is a colour kind, or Slicer's vector volume of 3 or 4 components."""
    channels = frames.shape[-1]
    kind = str(header["kinds"][component_axis]).lower() if header.get("kinds") else "unknown"
    if channels == 1:
        return frames[..., 0], f"single-component '{kind}' axis dropped"
    colour = kind in _COLOUR_KINDS or (
        kind == "vector" and header.get("DataNodeClassName") == "vtkMRMLVectorVolumeNode")
    if not colour or channels not in (3, 4):
        raise EchoDataError(source, f"frames hold {channels}-component '{kind}' pixels; expected scalar "
                                    "or RGB/RGBA colour frames")
    return rgb_to_luma(frames[..., :3]), f"{channels}-component colour frames converted to BT.601 luma"


def _axis_text(header: dict[str, Any], field: str, axis: int) -> str:
    """The per-axis text field (labels, units) of ``axis``; '' when absent or not one per axis."""
    values = header.get(field) or []
    return str(values[axis]) if len(values) == int(header["dimension"]) else ""


def _frame_times(header: dict[str, Any], list_axis: int, n_frames: int,
                 source: str) -> tuple[np.ndarray | None, str, str]:
    """(frame times in s or None, note when None, "name (unit)" description) from the index."""
    name, unit = _axis_text(header, "labels", list_axis), _axis_text(header, "units", list_axis)
    description = f"{name or 'frame'} ({unit or 'no unit'})"
    raw = next((str(value).split() for key, value in header.items()
                if (match := _INDEX_KEY.fullmatch(key)) and match.group(2) == "values"), [])
    if not raw:
        return None, "the file has no sequence index values; frame times unknown", description
    if len(raw) != n_frames:
        raise EchoDataError(source, f"{len(raw)} sequence index values for {n_frames} frames")
    values = [urllib.parse.unquote(v) for v in raw]
    seconds_per_unit = TIME_UNIT_SECONDS.get(unit.strip().lower())
    if seconds_per_unit is None:
        return None, f"sequence index {description} is not a time; frame times unknown", description
    try:
        times = np.array([float(v) for v in values]) * seconds_per_unit
    except ValueError:
        return None, f"sequence index values are not numeric ({' '.join(values[:3])} ...); " \
                     "frame times unknown", description
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        return None, "sequence index times are not strictly increasing; frame times unknown", description
    return times, "", description
