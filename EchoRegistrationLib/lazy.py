"""Lazy package attributes (PEP 562): a package names what it exports, and each name's submodule is
imported on first use. Importing the package itself then costs nothing: inside 3D Slicer the torch-free
parts (tables, the model catalog, the panel's parameter connection) work before PyTorch is installed, and
importing one part does not load the others."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each exported name to the submodule
    that defines it (relative, as ``".tables"``).

    Raises (from the returned function):
        AttributeError: a name that is not exported.
    """
    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
