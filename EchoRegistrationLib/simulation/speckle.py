"""B-mode image formation from point scatterers (complex IQ convolution model).

Each scatterer j at range r_j (mm along its beam) with complex amplitude a_j adds the baseband
echo ``a_j * exp(-2i k0 r_j) * h(grid - position_j)`` to the beam grid, where k0 = 2 pi / wavelength
and h is a separable Gaussian envelope (axial x lateral). This is the demodulated form of an axial
Gaussian-modulated cosine pulse: the carrier lives in the per-scatterer phase, so a scatterer moving
along the beam changes its phase continuously and the speckle decorrelates under strain as in real
echo, while a rigidly moving patch keeps its speckle. The envelope |IQ| is scan-converted,
log-compressed to 0..255 and masked to the field of view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .scan import _BeamGrid

SPEED_OF_SOUND_MM_PER_US = 1.54
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
CELLS_PER_SIGMA = 1.25        # beam-grid sampling of the PSF envelope
PSF_SUPPORT_SIGMAS = 4.0      # zero padding that keeps the FFT convolution from wrapping


@dataclass(frozen=True)
class PointSpreadFunction:
    """Pulse-echo PSF of the simulated probe.

    Attributes:
        axial_fwhm: envelope full width at half maximum along the beam, mm.
        lateral_fwhm: across the beams, in the beam grid's lateral unit (rad for a sector, mm for a
            linear array).
        centre_frequency: MHz; sets the carrier wavelength of the IQ phase.
    """

    axial_fwhm: float
    lateral_fwhm: float
    centre_frequency: float = 3.0

    @property
    def wavelength(self) -> float:
        """mm."""
        return SPEED_OF_SOUND_MM_PER_US / self.centre_frequency

    def grid_steps(self) -> tuple[float, float]:
        """(axial mm, lateral unit) beam-grid steps that sample the envelope finely enough."""
        per_cell = FWHM_PER_SIGMA * CELLS_PER_SIGMA
        return self.axial_fwhm / per_cell, self.lateral_fwhm / per_cell


class BModeImager:
    """Turns moving scatterers into B-mode frames on a fixed scan.

    Args:
        scan: the beam grid and scan conversion (:mod:`.scan`).
        psf: the point-spread function; its widths in grid cells follow from the scan's steps.
        scatterers_per_cell: mean number of scatterers per PSF resolution cell (FWHM x FWHM);
            about 10 or more gives fully developed speckle.
        dynamic_range: dB shown between black and white.
        display_top: dB, relative to the mean echo power of tissue of unit echogenicity, shown as
            white (255).
    """

    def __init__(self, scan: _BeamGrid, psf: PointSpreadFunction, *,
                 scatterers_per_cell: float = 10.0, dynamic_range: float = 50.0,
                 display_top: float = 20.0):
        self.scan, self.psf = scan, psf
        self.dynamic_range, self.display_top = float(dynamic_range), float(display_top)
        sigma_axial = psf.axial_fwhm / FWHM_PER_SIGMA / scan.axial_step
        sigma_lateral = psf.lateral_fwhm / FWHM_PER_SIGMA / scan.lateral_step
        cells_per_resolution = (FWHM_PER_SIGMA ** 2) * sigma_axial * sigma_lateral
        self.density = scatterers_per_cell / cells_per_resolution  # scatterers per grid cell
        self.scatterer_count = int(np.ceil(self.density * scan.shape[0] * scan.shape[1]))
        # mean |IQ|^2 of unit-echogenicity tissue with unit-variance amplitudes (unit-sum kernel)
        self.reference_power = self.density / (4.0 * np.pi * sigma_axial * sigma_lateral)
        self.padded = tuple(n + int(np.ceil(PSF_SUPPORT_SIGMAS * s))
                            for n, s in zip(scan.shape, (sigma_axial, sigma_lateral)))
        fa = np.fft.fftfreq(self.padded[0])[:, None]
        fl = np.fft.fftfreq(self.padded[1])[None, :]
        self.transfer = np.exp(-2.0 * np.pi ** 2 * ((sigma_axial * fa) ** 2 + (sigma_lateral * fl) ** 2)
                               ).astype(np.complex64)
        self.phase_per_mm = 4.0 * np.pi / psf.wavelength

    def envelope(self, points: np.ndarray, amplitudes: np.ndarray, *, noise: float = 0.0,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """Beam-grid envelope |IQ| of scatterers at (N, 2) mm ``points`` with complex ``amplitudes``.

        ``noise`` adds white complex receiver noise before the PSF (so it is band-limited like real
        noise), with power ``noise**2`` relative to unit-echogenicity tissue; it needs ``rng``.
        """
        axial, lateral, distance = self.scan.grid_coordinates(points)
        grid = self.scan.splat(axial, lateral, amplitudes * np.exp(-1j * self.phase_per_mm * distance))
        if noise > 0:
            if rng is None:
                raise ValueError("noise needs a random generator")
            scale = noise * np.sqrt(self.density / 2.0)
            grid = grid + scale * (rng.standard_normal(grid.shape) + 1j * rng.standard_normal(grid.shape))
        spectrum = np.fft.fft2(grid.astype(np.complex64), s=self.padded)
        iq = np.fft.ifft2(spectrum * self.transfer)[: grid.shape[0], : grid.shape[1]]
        return np.abs(iq)

    def bmode(self, envelope: np.ndarray, gain: np.ndarray | float = 0.0) -> np.ndarray:
        """(H, W) float32 B-mode 0..255 from a beam-grid envelope: scan conversion, log compression
        (``gain`` dB added, scalar or (H, W)), 0 outside the field of view."""
        amplitude = self.scan.to_image(envelope)
        db = 10.0 * np.log10(amplitude ** 2 / self.reference_power + 1e-12) + gain
        low = self.display_top - self.dynamic_range
        image = np.clip((db - low) / self.dynamic_range, 0.0, 1.0) * 255.0
        return np.where(self.scan.mask, image, 0.0).astype(np.float32)


def complex_normal(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count,) circular complex Gaussian samples with unit variance."""
    return (rng.standard_normal(count) + 1j * rng.standard_normal(count)) / np.sqrt(2.0)


def render_frames(imager: BModeImager, trajectory: Callable[[float], np.ndarray],
                  strength: np.ndarray, activation: np.ndarray, *, noise: float,
                  decorrelation: float, tissue_rng: np.random.Generator,
                  acquisition_rng: np.random.Generator,
                  gain: np.ndarray | float = 0.0) -> np.ndarray:
    """(T, H, W) float32 B-mode frames of scatterers that move along ``trajectory``.

    Args:
        trajectory: activation -> (N, 2) mm positions of the scatterers.
        strength: (N,) echogenicity of each scatterer (its amplitude scale).
        activation: (T,) activation of each frame.
        noise: receiver noise (see :meth:`BModeImager.envelope`).
        decorrelation: fraction of each scatterer's amplitude variance redrawn at every frame
            (an AR(1) process that keeps the variance: a <- sqrt(1 - d) a + sqrt(d) fresh).
        tissue_rng: draws the ED scatterer amplitudes.
        acquisition_rng: draws the noise and the decorrelation.
        gain: dB added before log compression, scalar or (H, W).
    """
    amplitude = complex_normal(tissue_rng, len(strength))
    frames = []
    for t, f in enumerate(activation):
        if t and decorrelation:
            amplitude = (np.sqrt(1.0 - decorrelation) * amplitude
                         + np.sqrt(decorrelation) * complex_normal(acquisition_rng, len(strength)))
        envelope = imager.envelope(trajectory(f), strength * amplitude, noise=noise, rng=acquisition_rng)
        frames.append(imager.bmode(envelope, gain))
    return np.stack(frames)
