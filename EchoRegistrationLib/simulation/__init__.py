"""Simulated echocardiography with exact ground truth: the reference for every accuracy claim.

* :func:`simulate_sequence`: apical A4C / A2C B-mode cine loops with moving speckle, the true
  displacement field, labels, GLS, segmental strain, volumes and EF; its tissue appearance
  (echogenicity, texture, PSF) nominal or randomised (:mod:`.appearance`).
* :func:`ring_phantom`: a fast short-axis ring phantom (tests and demo data).
* :func:`write_camus_dataset`: simulated patients in the CAMUS folder layout.
"""

from .apical import simulate_sequence
from .dataset import write_camus_dataset
from .result import SimulatedSequence
from .ring import ring_phantom

__all__ = ["SimulatedSequence", "ring_phantom", "simulate_sequence", "write_camus_dataset"]
