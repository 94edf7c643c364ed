"""What a NIfTI file declares before ITK interprets it.

ITK's NIfTI reader (SimpleITK 2.5) silently turns a zero pixel size (``pixdim``) into 1 mm, a
negative one into its magnitude, and NaN / infinite float pixels into 0. The loader must see the
file's own values to report them, so this module reads the header fields and the raw float voxels
of a single-file NIfTI-1 / NIfTI-2 image (``.nii``, ``.nii.gz``) following the NIfTI standard.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass

import numpy as np

# Per header size (348: NIfTI-1, 540: NIfTI-2): offsets and struct codes of dim[8], datatype,
# pixdim[8] and vox_offset.
_LAYOUT = {
    348: {"dim": (40, "8h"), "datatype": (70, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f")},
    540: {"dim": (16, "8q"), "datatype": (12, "h"), "pixdim": (104, "8d"), "vox_offset": (168, "q")},
}
# NIfTI datatype codes of the float voxel types that can hold NaN or infinity.
_FLOAT_TYPES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI header this project checks.

    Attributes:
        shape: voxels along each axis, x (columns) first, as ``dim[1:dim[0] + 1]``.
        pixdim: ``pixdim[1:dim[0] + 1]``: voxel size along each axis (mm in-plane), as written.
        datatype: the NIfTI datatype code.
        vox_offset: byte offset of the voxels in the file.
        byte_order: "<" or ">".
    """

    shape: tuple[int, ...]
    pixdim: tuple[float, ...]
    datatype: int
    vox_offset: int
    byte_order: str


def _file_bytes(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _parse_header(data: bytes) -> NiftiHeader | None:
    """The header of NIfTI bytes, or None when they do not start with a NIfTI-1/2 header."""
    for order in "<>":
        if len(data) < 4:
            return None
        size = struct.unpack(order + "i", data[:4])[0]
        if size in _LAYOUT and len(data) >= size:
            fields = {name: struct.unpack_from(order + code, data, offset)
                      for name, (offset, code) in _LAYOUT[size].items()}
            rank = int(fields["dim"][0])
            if not 1 <= rank <= 7:
                return None
            return NiftiHeader(shape=tuple(int(n) for n in fields["dim"][1:rank + 1]),
                               pixdim=tuple(float(v) for v in fields["pixdim"][1:rank + 1]),
                               datatype=int(fields["datatype"][0]),
                               vox_offset=int(fields["vox_offset"][0]), byte_order=order)
    return None


def read_nifti(path: str | os.PathLike) -> tuple[NiftiHeader, np.ndarray | None] | None:
    """The header of a single-file NIfTI image and its voxels as written when they are float
    (flat, file order, x fastest; None for integer types or a short file); None when the file is
    not NIfTI-1/2."""
    data = _file_bytes(path)
    header = _parse_header(data)
    if header is None:
        return None
    code = _FLOAT_TYPES.get(header.datatype)
    count = int(np.prod(header.shape))
    if code is None or header.vox_offset + count * int(code[1]) > len(data):
        return header, None
    return header, np.frombuffer(data, dtype=header.byte_order + code, count=count, offset=header.vox_offset)
