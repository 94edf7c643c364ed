"""Lazy package attributes (PEP 562): a package names what it exports, and each name's submodule is
imported on first use. Importing the package itself then costs nothing: inside 3D Slicer the torch-free
parts (tables, the model catalog, the panel's parameter connection) work before PyTorch is installed, and
importing one part does not load the others."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any


def lazy_package(package: str, exports: Mapping[str, Iterable[str]]
                 ) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` for ``package`` and its sorted ``__all__``: ``exports`` maps each
    submodule (relative, as ``".tables"``) to the names it defines that the package exports.

    Raises (from the returned function):
        AttributeError: a name that is not exported.
    """
    modules = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(import_module(modules[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(modules)
