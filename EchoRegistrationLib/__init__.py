"""EchoRegistration backend: echo sequences, loaders, registration, strain. Importable without Slicer."""

from .sequence import EchoDataError, EchoSequence, geometry_from_ijk_to_ras

__version__ = "0.1.0"

__all__ = ["EchoDataError", "EchoSequence", "geometry_from_ijk_to_ras", "__version__"]
