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
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..sequence import EchoDataError

# Per header size (348: NIfTI-1, 540: NIfTI-2): offsets and struct codes of dim[8], datatype,
# pixdim[8] and vox_offset.
_LAYOUT = {
    348: {"dim": (40, "8h"), "datatype": (70, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f")},
    540: {"dim": (16, "8q"), "datatype": (12, "h"), "pixdim": (104, "8d"), "vox_offset": (168, "q")},
}
# NIfTI datatype codes of the float voxel types that can hold NaN or infinity.
_FLOAT_TYPES = {16: "f4", 64: "f8"}
# Bytes per voxel of each NIfTI datatype code (nifti1.h: DT_UINT8 2 ... DT_RGBA32 2304).
_VOXEL_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                1536: 16, 1792: 16, 2048: 32, 2304: 4}


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


def _open(path: str | os.PathLike) -> BinaryIO:
    """The file for reading, decompressed on the fly when it is gzip."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


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
    (flat, file order, x fastest; None for other types); None when the file is not NIfTI-1/2.
    Only the header is read from other files. The voxels the header declares must all be there:
    ITK would read a truncated file as if its missing voxels were 0.

    Raises:
        EchoDataError: naming the file, when its (gzip) content cannot be read or its voxel data
            end before the header's dimensions say.
    """
    try:
        with _open(path) as handle:
            header = _parse_header(handle.read(max(_LAYOUT)))
            if header is None:
                return None
            size = _VOXEL_BYTES.get(header.datatype, 0)
            needed = int(np.prod(header.shape)) * size
            code = _FLOAT_TYPES.get(header.datatype)
            if code is not None:
                handle.seek(header.vox_offset)
                data = handle.read(needed)
                complete = len(data) == needed
            else:  # only the last voxel's byte is needed to know they are all there
                handle.seek(header.vox_offset + needed - 1)
                complete = needed == 0 or len(handle.read(1)) == 1
    except EOFError as err:
        raise EchoDataError(str(path), f"is truncated ({err})") from None
    except zlib.error as err:
        raise EchoDataError(str(path), f"cannot be read: its compressed data are corrupt ({err})") from None
    except OSError as err:
        raise EchoDataError(str(path), f"cannot be read ({err})") from None
    if not complete:
        shape, unit = " x ".join(map(str, header.shape)), "byte" if size == 1 else "bytes"
        raise EchoDataError(str(path), f"is truncated: its header declares {shape} voxels of {size} {unit} "
                                       f"from byte {header.vox_offset}, and the voxel data end early")
    return header, None if code is None else np.frombuffer(data, dtype=header.byte_order + code)
