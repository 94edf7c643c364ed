"""Atomic outputs: write beside the target, then rename, so a reader never sees half a file (or half
an output set) and a failed or interrupted write never damages what was there.

:func:`atomic_output` writes one file, :func:`atomic_output_dir` a file with companions (MetaImage
header + data), :func:`atomic_output_set` a command's whole output folder (registration, strain).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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
        raise FileExistsError(f"{target}: already exists (to replace it: --overwrite on the command line, "
                              "overwrite=True in Python)")
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
    suffix = "".join(target.suffixes) or ""
    with _named_as(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}",
                                        dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _named_as(target):
            yield tmp
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else NEW_FILE_MODE)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _named_as(target: Path) -> Iterator[None]:
    """OSErrors raised inside that name one of ``target``'s temporary files (or no file) name
    ``target`` instead: the user never sees a temporary name."""
    try:
        yield
    except OSError as err:
        prefix = os.path.abspath(target.parent / f".{target.name}.")  # mkstemp's names are absolute, mkdtemp's not
        temporary = err.filename is None or os.path.abspath(err.filename).startswith(prefix)
        if err.errno is None or not temporary:
            raise
        raise type(err)(err.errno, err.strerror, str(target)) from None


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_output` for outputs made of several files that must keep their final
    names (a MetaImage header and its raw data): yield a temporary folder beside ``path``; every
    file written into it is moved into ``path``'s folder on success, the main file last."""
    target = check_writable(path, overwrite)
    with _named_as(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        made = tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent)
    with made as tmp_dir:
        tmp = Path(tmp_dir)
        yield tmp
        written = sorted(tmp.iterdir(), key=lambda p: p.name == target.name)
        for item in written:
            final = target.parent / item.name
            if final != target:
                check_writable(final, overwrite)
            os.replace(item, final)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(folder: str | os.PathLike, names: Iterable[str], overwrite: bool = False) -> Path:
    """Check, before any work, that the output set ``names`` (paths relative to ``folder``) may be
    written into ``folder``; returns ``folder`` as a Path.

    Raises:
        NotADirectoryError: ``folder`` or one of its ancestors is a file.
        PermissionError: the folder (or the closest existing ancestor, where it will be created)
            cannot be written (probed by creating and removing an empty folder there).
        FileExistsError, IsADirectoryError: as :func:`check_writable`, for any of the files.
    """
    folder = Path(folder)
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        raise NotADirectoryError(f"{folder}: cannot create the output folder, {existing} is a file")
    try:  # a real probe: permissions, read-only file systems, and root alike
        os.rmdir(tempfile.mkdtemp(prefix=".echoreg-probe.", dir=existing))
    except OSError as err:
        raise PermissionError(f"{folder}: cannot write the outputs there (creating a folder in {existing} "
                              f"failed: {err.strerror or err})") from None
    for name in names:
        check_writable(folder / name, overwrite)
    return folder


@contextlib.contextmanager
def atomic_output_set(folder: str | os.PathLike, names: Iterable[str],
                      overwrite: bool = False, stale: Iterable[str] = ()) -> Iterator[Path]:
    """Write a set of output files as one: yield an empty temporary folder beside ``folder``; the
    caller writes every file of the set into it under its final relative name (``names``, which
    are checked first with :func:`check_output_folder`). On success the set is moved in at once: the
    temporary folder is renamed to ``folder`` when that does not exist yet, else each file replaces
    its namesake. On any error or interrupt (Ctrl-C) the temporary folder is removed and ``folder``
    is left exactly as it was: no partial output set, nothing overwritten.

    ``stale`` names (relative to ``folder``) files of an earlier, larger set that this one does not
    write (e.g. ``enhanced.seq.nrrd`` of an earlier run that enhanced its frames): with
    ``overwrite``, those of them that exist as files are removed once the set is moved in, so that
    they cannot pass for part of it; nothing else is removed, and nothing without ``overwrite``.

    Example::

        with atomic_output_set("out", ["a.csv", "fields/b.mha"]) as tmp:
            (tmp / "a.csv").write_text(...)
    """
    target = check_output_folder(folder, names, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        try:
            yield tmp
        except OSError as err:  # name the output, not the temporary file (gone by then)
            err.filename = str(target if err.filename is None or not str(err.filename).startswith(str(tmp))
                               else target / Path(err.filename).relative_to(tmp))
            raise
        written = sorted(p for p in tmp.rglob("*") if p.is_file())
        for path in written:  # again: a file may have appeared there during the work
            check_writable(target / path.relative_to(tmp), overwrite)
        if not target.exists():
            _set_new_folder_modes(tmp)
            os.rename(tmp, target)
            return
        for path in written:
            final = target / path.relative_to(tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
        if overwrite:
            _remove_stale(target, stale, {p.relative_to(tmp) for p in written})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(target: Path, stale: Iterable[str], written: set[Path]) -> None:
    """Remove the files ``stale`` (relative to ``target``) that this set did not write; folders,
    links to folders and absent names are left alone."""
    for name in stale:
        path = target / name
        if Path(name) not in written and path.is_file():
            path.unlink()


def _set_new_folder_modes(root: Path) -> None:
    """Give ``root`` and the folders below it the permissions mkdir would (mkdtemp gives 0700)."""
    for path in (root, *(p for p in root.rglob("*") if p.is_dir())):
        os.chmod(path, 0o777 & ~_umask())
