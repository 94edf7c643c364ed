"""Freed memory kept for reuse on Linux (glibc), so that large CPU tensors do not page-fault anew on
every call.

glibc's ``malloc`` serves blocks above a threshold (128 kB, raised as such blocks are freed, to 32 MB at
most) with ``mmap`` and gives them back to the system when they are freed; the next block of that size
comes back as fresh pages, and the kernel zero-fills each page on first touch. A registration allocates and
frees such blocks over and over (a 20-frame 512 x 422 field set is 34 MB; the network's feature maps of
19 pairs 15-33 MB), so on 2 CPU cores about a fifth of the network's time went in page faults (the whole
``register_sequence`` call of the network alone took 1.64-1.69x OpenCV DIS's time, 1.26-1.30x with the
blocks kept: ``benchmarks/speed_register_sequence.py``, docs/generalisation.md, "Freed memory kept for reuse";
the default method, whose
optimisation steps allocate less, gains a few %). :func:`keep_freed_memory` sets glibc's
``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` and ``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD`
(``mallopt(3)``; the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables do
the same at start-up), the remedy the PyTorch performance tuning guide gives for CPU inference (there by
swapping in jemalloc or TCMalloc, which keep freed memory in the same way).

The setting is the process's: in Slicer, Slicer's. Blocks above the threshold still go back to the
system at once, and free memory at the top of the heap beyond :data:`TRIM_THRESHOLD` is returned; freed
blocks below the top stay held until reused. After a registration of 20 frames of 512 x 422 the process
held about 530 MB instead of about 390 MB. glibc up to 2.34 accepts thresholds of at most 32 MB
(``HEAP_MAX_SIZE / 2``); there the blocks up to :data:`FALLBACK_MMAP_THRESHOLD` are kept. Setting the
environment variable :data:`OPT_OUT` (to any value) leaves the allocator as it is, as does either glibc
variable above or glibc's malloc tunables in ``GLIBC_TUNABLES`` (the user's own choice wins).
:func:`allocator_setting` says which applies; :func:`..registration.register_sequence` records it in its
result's ``parameters["allocator"]``.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 * 2 ** 20  # bytes: blocks up to this size come from the heap and are reused
FALLBACK_MMAP_THRESHOLD = 32 * 2 ** 20  # the most glibc up to 2.34 accepts
TRIM_THRESHOLD = 128 * 2 ** 20  # bytes of free memory kept at the top of the heap before it is returned
OPT_OUT = "ECHOREG_SYSTEM_ALLOCATOR"
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# mallopt(3) parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_kept: int | None = None  # the mmap threshold set by the first call (bytes), 0 when none was


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to :data:`MMAP_THRESHOLD` (:data:`FALLBACK_MMAP_THRESHOLD` on glibc up
    to 2.34) for reuse (module docstring), once per process; later calls return the first call's
    outcome.

    Returns:
        True when glibc accepted the settings; False elsewhere (not Linux, not glibc: musl's
        ``mallopt`` does nothing), or when :data:`OPT_OUT`, a glibc variable of
        :data:`GLIBC_VARIABLES` or a malloc tunable is set; the allocator is then as it was.
    """
    global _kept
    if _kept is None:
        _kept = _set_thresholds()
    return _kept > 0


def allocator_setting() -> str:
    """What :func:`keep_freed_memory` did, in words, for reports: "freed blocks up to 64 MB kept for
    reuse (glibc)" or "the system's (...)" with the reason."""
    if keep_freed_memory():
        return f"freed blocks up to {_kept // 2 ** 20} MB kept for reuse (glibc; EchoRegistrationLib.memory)"
    if OPT_OUT in os.environ:
        return f"the system's ({OPT_OUT} is set)"
    if _users_settings():
        return "the system's (the user's glibc malloc settings)"
    return "the system's (not glibc on Linux)"


def _users_settings() -> bool:
    return any(name in os.environ for name in GLIBC_VARIABLES) \
        or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def _set_thresholds() -> int:
    """The mmap threshold set (bytes), or 0. The mmap threshold goes first: a value glibc rejects
    changes nothing, whereas setting the trim threshold alone would switch off glibc's own raising of
    the mmap threshold and leave it at 128 kB."""
    if not sys.platform.startswith("linux") or OPT_OUT in os.environ or _users_settings():
        return 0
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):
        return 0
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for threshold in (MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD):
        if mallopt(M_MMAP_THRESHOLD, threshold) == 1:  # 1: accepted
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            return threshold
    return 0
