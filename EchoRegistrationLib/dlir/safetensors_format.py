"""The safetensors file format, read and written with torch alone (no pickle, no extra package).

Inside Slicer every package beyond its bundled ones must be installed on first use; this keeps the
weights format standard (files are exchangeable with the ``safetensors`` package) without needing
it. Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON (``{name: {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, padded with spaces to a
multiple of 8), then the little-endian tensor bytes, offsets relative to the end of the header
(tensors are copied as they lie in memory: a little-endian machine is assumed).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
CODES = {dtype: code for code, dtype in DTYPES.items()}
METADATA = "__metadata__"
MAX_HEADER_BYTES = 100 * 2**20


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write CPU ``tensors`` (any of :data:`DTYPES`) and string ``metadata`` to ``path``."""
    header: dict[str, object] = {}
    if metadata:
        header[METADATA] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        if tensor.dtype not in CODES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, which safetensors "
                             f"cannot store")
        blob = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        header[name] = {"dtype": CODES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for blob in blobs:
            handle.write(blob)


def _header(path: Path, data: bytes) -> tuple[dict, int]:
    """(parsed JSON header, offset of the tensor bytes) of the file content ``data``."""
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(f"{path}: not a safetensors file (header length {length} does not fit "
                         f"the {len(data)}-byte file)")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: corrupt safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header, 8 + length


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (reads the header only)."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        header, _ = _header(path, head + handle.read(min(length, MAX_HEADER_BYTES)))
    return dict(header.get(METADATA) or {})


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU.

    Raises:
        ValueError: a file that is not valid safetensors (the message names it and the problem).
    """
    path = Path(path)
    data = path.read_bytes()
    header, start = _header(path, data)
    tensors = {}
    for name, entry in header.items():
        if name == METADATA:
            continue
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = [int(v) for v in entry["shape"]]
            begin, end = (start + int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: corrupt safetensors entry {name!r}: {entry!r}") from None
        count = 1
        for size in shape:
            count *= size
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not start <= begin <= end <= len(data) or end - begin != count * itemsize:
            raise ValueError(f"{path}: safetensors entry {name!r} ({entry['dtype']} {shape}) does not "
                             f"fit its byte range {entry['data_offsets']}")
        raw = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8) if count else \
            torch.empty(0, dtype=torch.uint8)
        tensors[name] = raw.view(dtype).reshape(shape)
    return tensors
