"""EchoRegistration backend: echo sequences, loaders, registration, strain. Importable without Slicer.

Convention everywhere: a displacement field lives on the reference (fixed) frame grid, in mm, with
components (x, y) = (column / lateral, row / depth), and maps a reference point p to p + u(p), its
position in the moving frame (the ITK and Slicer resampling convention).

Importing this package does not import torch: the sequence model and the loaders work without it
(inside Slicer torch is installed on first use); the registration names load torch when first used.
"""

from .io import load_camus_patient, load_sequence, save_sequence
from .lazy import lazy_package
from .sequence import (EchoDataError, EchoDataWarning, EchoModelWarning, EchoSequence, EchoWarning,
                       geometry_from_ijk_to_ras)

__version__ = "0.1.0"

__getattr__, _lazy = lazy_package(__name__, {
    ".registration": ("RegistrationResult", "register_pair", "register_sequence", "save_registration"),
    ".strain": ("compute_strain", "write_strain_outputs"),
    ".dlir": ("train_dlir",),
})

__all__ = [
    "EchoDataError", "EchoDataWarning", "EchoModelWarning", "EchoSequence", "EchoWarning", "geometry_from_ijk_to_ras",
    "load_camus_patient",
    "load_sequence", "save_sequence", "__version__", *_lazy,
]
