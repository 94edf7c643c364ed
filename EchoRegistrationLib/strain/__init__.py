"""Myocardial strain, volumes and EF from registered apical echo sequences.

``compute_strain(seq, registration, myocardium)`` turns displacement fields (reference grid, mm)
into what clinicians report, following the EACVI/ASE/Industry standard (Voigt et al. 2015): GLS
curves (endocardial and mid-wall), the six segments of an apical view, Lagrangian strain maps, LV
volumes and EF by the method of discs, and a tracking quality score per segment.
``write_strain_outputs`` writes the CSV tables, JSON summary and PNG pictures.

The names load their modules (torch, OpenCV, matplotlib) on first use, so that the command line
can register ``echoreg strain`` without importing them.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "Myocardium": ".myocardium",
    "myocardium_from_labels": ".myocardium",
    "myocardium_from_landmarks": ".myocardium",
    "StrainResult": ".result",
    "biplane_ef": ".compute",
    "compute_strain": ".compute",
    "myocardium_at_reference": ".compute",
    "result_from_displacement": ".compute",
    "write_strain_outputs": ".outputs",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
