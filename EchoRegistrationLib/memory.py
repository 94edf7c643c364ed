"""Freed memory kept for reuse on Linux (glibc), so that large CPU tensors do not page-fault anew on
every call.

glibc's ``malloc`` serves blocks above a threshold (128 kB, raised as such blocks are freed, to 32 MB at
most) with ``mmap`` and gives them back to the system when they are freed; the next block of that size
comes back as fresh pages, and the kernel zero-fills each page on first touch. A registration allocates and
frees such blocks over and over (a 20-frame 512 x 422 field set is 34 MB; the network's feature maps of
19 pairs 15-33 MB), so on 2 CPU cores about a fifth of the network call went in page faults (the whole
``register_sequence`` call of the default model 1.64-1.69x OpenCV DIS's time, 1.26-1.30x with the blocks
kept: ``benchmarks/speed_register_sequence.py``, README "Generalisation"). :func:`keep_freed_memory` sets glibc's ``M_MMAP_THRESHOLD``
to :data:`MMAP_THRESHOLD` and ``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD` (``mallopt(3)``; the
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables do the same at start-up),
the remedy the PyTorch performance tuning guide gives for CPU inference (there by swapping in jemalloc
or TCMalloc, which keep freed memory in the same way).

The setting is the process's: in Slicer, Slicer's. Blocks above :data:`MMAP_THRESHOLD` still go back to
the system at once, and at most :data:`TRIM_THRESHOLD` of free memory is kept at the top of the heap.
Setting the environment variable :data:`OPT_OUT` (to any value) leaves the allocator as it is, as does
either glibc variable above (the user's own choice wins).
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 * 2 ** 20  # bytes: blocks up to this size come from the heap and are reused
TRIM_THRESHOLD = 128 * 2 ** 20  # bytes of free memory kept at the top of the heap before it is returned
OPT_OUT = "ECHOREG_SYSTEM_ALLOCATOR"
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# mallopt(3) parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_kept: bool | None = None  # the outcome of the first call


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to :data:`MMAP_THRESHOLD` for reuse (module docstring), once per
    process; later calls return the first call's outcome.

    Returns:
        True when glibc accepted both settings; False elsewhere (not Linux, not glibc: musl's
        ``mallopt`` does nothing), or when :data:`OPT_OUT` or a glibc variable of
        :data:`GLIBC_VARIABLES` is set.
    """
    global _kept
    if _kept is None:
        _kept = _set_thresholds()
    return _kept


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux") or OPT_OUT in os.environ \
            or any(name in os.environ for name in GLIBC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; the trim threshold is set first so that no block is returned
    # between the two calls
    return mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
