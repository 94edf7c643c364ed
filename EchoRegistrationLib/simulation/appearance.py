"""Acoustic appearance of the simulated apical views: tissue echogenicity, tissue texture and the
probe's point-spread function, nominal or drawn at random (domain randomisation for training).

The nominal appearance is the simulator's historical one (a visible mitral valve, a bright
pericardium, tissue around the heart 9 dB below myocardium, a 1.8 degree beam). Echo from other
scanners and simulators differs in exactly these respects: the valve is often invisible, the tissue
beside the lateral wall can be nearly as bright as the wall, the lateral resolution of a phased
array is coarser off axis and with fewer transmits. :func:`random_appearance` draws each of them
from a range that holds the nominal value, so that a network trained on such sequences cannot rely
on one simulator's landmarks to track motion along a wall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

# Scatterer amplitude of each tissue relative to myocardium (echo power is the square).
ECHOGENICITY = {"blood": 0.015, "tissue": 0.35, "myocardium": 1.0, "pericardium": 2.4,
                "valve": 1.3, "chest wall": 0.8}
TEXTURE_STRENGTH = 0.3                  # std of the log scatterer amplitude (smooth tissue texture)
AXIAL_FWHM = 0.8                        # mm, physical axial resolution
LATERAL_FWHM = np.deg2rad(1.8)          # rad, physical lateral (angular) resolution
# Ranges of random_appearance (each holds the nominal value). Echogenicity: amplitude relative to
# myocardium (tissue -4..-14 dB, blood -24..-46 dB, the valve from invisible to bright); lateral FWHM
# 1.5-4 degrees (focused to single-transmit phased arrays at 2.5-3.5 MHz); axial 0.6-1.2 mm.
RANDOM_ECHOGENICITY = {"blood": (0.005, 0.06), "tissue": (0.2, 0.65), "pericardium": (1.2, 3.0),
                       "valve": (0.0, 1.5), "chest wall": (0.5, 1.2)}
RANDOM_TEXTURE_STRENGTH = (0.0, 0.4)
RANDOM_AXIAL_FWHM = (0.6, 1.2)                                # mm
RANDOM_LATERAL_FWHM = (np.deg2rad(1.5), np.deg2rad(4.0))      # rad


@dataclass(frozen=True)
class TissueAppearance:
    """How the simulated tissue looks to the probe.

    Attributes:
        echogenicity: scatterer amplitude per tissue ("blood", "tissue", "myocardium", "pericardium",
            "valve", "chest wall") relative to myocardium.
        texture_strength: standard deviation of the log scatterer amplitude of a smooth random
            texture (correlation length set by the simulator); 0 = speckle alone.
        axial_fwhm: pulse-echo axial resolution, mm (full width at half maximum).
        lateral_fwhm: pulse-echo lateral (angular) resolution, rad.
    """

    echogenicity: Mapping[str, float] = field(default_factory=lambda: dict(ECHOGENICITY))
    texture_strength: float = TEXTURE_STRENGTH
    axial_fwhm: float = AXIAL_FWHM
    lateral_fwhm: float = float(LATERAL_FWHM)

    def __post_init__(self):
        missing, unknown = set(ECHOGENICITY) - set(self.echogenicity), set(self.echogenicity) - set(ECHOGENICITY)
        if missing or unknown:
            raise ValueError(f"echogenicity must name exactly the tissues {sorted(ECHOGENICITY)}: "
                             f"lacks {sorted(missing)}, unknown {sorted(unknown)}")
        # read-only, so that the shared nominal appearance cannot be changed by accident
        object.__setattr__(self, "echogenicity", MappingProxyType({k: float(v) for k, v in self.echogenicity.items()}))
        if min(self.echogenicity.values()) < 0 or self.texture_strength < 0:
            raise ValueError("echogenicity and texture strength must be >= 0")
        if self.axial_fwhm <= 0 or self.lateral_fwhm <= 0:
            raise ValueError(f"PSF widths must be > 0, got {self.axial_fwhm} mm, {self.lateral_fwhm} rad")

    def describe(self) -> dict:
        """JSON-ready parameters (the lateral FWHM in degrees)."""
        return {"echogenicity": {k: float(v) for k, v in self.echogenicity.items()},
                "texture_strength": float(self.texture_strength), "axial_fwhm_mm": float(self.axial_fwhm),
                "lateral_fwhm_deg": float(np.rad2deg(self.lateral_fwhm))}


NOMINAL_APPEARANCE = TissueAppearance()


def random_appearance(rng: np.random.Generator) -> TissueAppearance:
    """An appearance with every parameter drawn uniformly from its ``RANDOM_*`` range (myocardium
    stays the reference, 1.0)."""
    echogenicity = {**ECHOGENICITY, **{name: float(rng.uniform(*bounds))
                                       for name, bounds in RANDOM_ECHOGENICITY.items()}}
    return TissueAppearance(echogenicity, float(rng.uniform(*RANDOM_TEXTURE_STRENGTH)),
                            float(rng.uniform(*RANDOM_AXIAL_FWHM)), float(rng.uniform(*RANDOM_LATERAL_FWHM)))
