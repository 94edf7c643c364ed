"""Atomic output files: write beside the target, then rename, so a reader never sees half a file
and a failed write never damages what was there."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Permissions of a new output file, as open() would give it (mkstemp alone would give 0600).
NEW_FILE_MODE = 0o666 & ~_umask()


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path after checking it may be written.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is False (user data is never replaced
            silently).
        IsADirectoryError: the path is a directory.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a directory, expected a file name")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists (pass overwrite=True / --overwrite to replace it)")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder with the target's suffixes; on success it is
    renamed onto ``path`` (atomic on one file system), on error it is removed.

    Example::

        with atomic_output("out.nii.gz") as tmp:
            SimpleITK.WriteImage(image, str(tmp))
    """
    target = check_writable(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else NEW_FILE_MODE)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_output` for outputs made of several files that must keep their final
    names (a MetaImage header and its raw data): yield a temporary folder beside ``path``; every
    file written into it is moved into ``path``'s folder on success, the main file last."""
    target = check_writable(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        yield tmp
        written = sorted(tmp.iterdir(), key=lambda p: p.name == target.name)
        for item in written:
            final = target.parent / item.name
            if final != target:
                check_writable(final, overwrite)
            os.replace(item, final)
