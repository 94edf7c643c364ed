"""What a MetaImage file (``.mha`` / ``.mhd``) declares before ITK interprets it.

ITK's MetaImage reader refuses a file whose pixel data are short or missing, but only says that it
"cannot be read" (with a stale "No such file or directory"). This module reads the text header
(``Key = Value`` lines up to ``ElementDataFile``, MetaIO's format) so that the loader can name the
problem: the data file that does not exist, or how many bytes the data hold against those the header
declares.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# Bytes per channel of MetaIO's element types (MET_LONG / MET_ULONG are left out: their size follows
# the platform that wrote the file).
_ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                  "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
_HEADER_BYTES = 65536  # a MetaImage header is a few hundred bytes of text


def read_metaimage_header(path: str | os.PathLike) -> tuple[dict[str, str], int] | None:
    """The header fields of a MetaImage file (keys as written, values stripped) and the byte offset
    just after its ``ElementDataFile`` line (where LOCAL data start); None when the file does not
    start as a MetaImage header (``ObjectType`` or ``NDims``)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_BYTES)
    if not head.lstrip().startswith((b"ObjectType", b"NDims")):
        return None
    fields: dict[str, str] = {}
    offset = 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        key, equals, value = line.decode("latin-1").partition("=")
        if equals:
            fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    return fields, offset


def metaimage_data_problem(path: str | os.PathLike) -> str | None:
    """Why the pixel data of a MetaImage file cannot be all there, or None: its header lacks
    ``DimSize``, ``ElementType`` or ``ElementDataFile`` (cut short), its ``ElementDataFile``
    does not exist, or it holds fewer bytes than ``DimSize`` x ``ElementNumberOfChannels`` x the
    element size. Compressed data, file lists and patterns, and unknown element types are left to
    ITK (None)."""
    header = read_metaimage_header(path)
    if header is None:
        return None
    fields, offset = header
    missing = [key for key in ("DimSize", "ElementType", "ElementDataFile") if key not in fields]
    if missing:
        return f"its header is incomplete: no {', '.join(missing)} (the file is cut short or not a MetaImage)"
    size = _ELEMENT_BYTES.get(fields.get("ElementType", ""))
    data_file = fields.get("ElementDataFile", "")
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if size is None or compressed or not data_file or data_file == "LIST" or "%" in data_file:
        return None
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        return None  # ITK names a malformed header itself
    needed = math.prod(dims) * channels * size
    if data_file == "LOCAL":
        held = os.path.getsize(path) - offset
    else:
        data_path = Path(path).parent / data_file
        if not data_path.is_file():
            return f"its data file {data_file} (ElementDataFile) does not exist beside it"
        skipped = int(fields.get("HeaderSize", "0") or 0)
        if skipped < 0:  # -1: the data are the file's last bytes
            return None
        held = os.path.getsize(data_path) - skipped
    if held < needed:
        shape = " x ".join(map(str, dims))
        return (f"is truncated: its header declares {shape} x {channels} {fields['ElementType']} "
                f"({needed} bytes), and its data hold {max(held, 0)}")
    return None
