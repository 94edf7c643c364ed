"""Optimisation-based registration (rigid, affine, deformable) and sequence tracking."""

from .export import save_registration
from .pairwise import PairRegistration, RegistrationCancelled, register_pair
from .tracking import RegistrationResult, register_sequence, resolve_device

__all__ = [
    "PairRegistration", "RegistrationCancelled", "RegistrationResult", "register_pair",
    "register_sequence", "resolve_device", "save_registration",
]
