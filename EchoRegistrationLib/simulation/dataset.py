"""Simulated patients exported in the CAMUS layout (for training and for testing loaders)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_output
from ..io.camus import camus_view, write_camus_patient
from .apical import simulate_sequence
from .apical_geometry import GEOMETRY_RANGES
from .result import SimulatedSequence

APICAL_VIEW = {"2CH": "A2C", "4CH": "A4C"}
SHARED_ANATOMY = ("lv_length", "lv_width", "wall_thickness")  # the same heart in both views


def write_camus_dataset(root: str | os.PathLike, n_patients: int, *, seed: int = 0,
                        views: Sequence[str] = ("2CH", "4CH"), overwrite: bool = False,
                        save_ground_truth: bool = False, **sim_kwargs) -> list[Path]:
    """Simulate ``n_patients`` patients and write them as CAMUS folders ``root/patient0001`` ...

    Each patient has one heart (LV length, width and wall thickness drawn once unless given in
    ``sim_kwargs``) seen in every view of ``views`` ("2CH"/"A2C", "4CH"/"A4C") with its own
    seed; ``sim_kwargs`` go to :func:`~.apical.simulate_sequence` (e.g. ``image_size``,
    ``n_frames``, ``gls``). The files are those of
    :func:`~EchoRegistrationLib.io.camus.write_camus_patient` (half sequence ED -> ES, per-frame
    labels, ED/ES images and labels, ``Info_{view}.cfg`` with the true EF).

    With ``save_ground_truth`` each view also gets ``patientXXXX_{view}_ground_truth.npz``
    holding, for the half sequence, ``displacement`` (T, H, W, 2) float32 mm from ED,
    ``gls_endo``, ``gls_mid``, ``segmental_strain``, ``segment_names``, ``lv_volume``, ``ef``,
    ``endo_contour`` and ``mid_contour``.

    Returns:
        The patient folders, in order.

    Raises:
        FileExistsError: a file exists and ``overwrite`` is False.
    """
    if int(n_patients) != n_patients or n_patients < 1:
        raise ValueError(f"n_patients must be a positive integer, got {n_patients}")
    normalised = [camus_view(v) for v in views]
    folders = []
    for number in range(1, int(n_patients) + 1):
        patient_id = f"patient{number:04d}"
        anatomy_rng = np.random.default_rng(np.random.SeedSequence([seed, number]))
        anatomy = {name: float(anatomy_rng.uniform(*GEOMETRY_RANGES[name])) for name in SHARED_ANATOMY}
        for index, view in enumerate(normalised):
            view_seed = int(np.random.SeedSequence([seed, number, index]).generate_state(1)[0])
            sim = simulate_sequence(view=APICAL_VIEW[view], seed=view_seed, **{**anatomy, **sim_kwargs})
            sequence = dataclasses.replace(
                sim.sequence, metadata={**sim.sequence.metadata, "patient": patient_id,
                                        "source": f"<simulated {patient_id} {view}>"})
            folder = write_camus_patient(root, patient_id, view, sequence, overwrite=overwrite)
            if save_ground_truth:
                _write_ground_truth(folder / f"{patient_id}_{view}_ground_truth.npz", sim, overwrite)
        folders.append(folder)
    return folders


def _write_ground_truth(path: Path, sim: SimulatedSequence, overwrite: bool) -> None:
    """The true motion and clinical numbers of the half sequence (ED .. ES) as a compressed npz."""
    half = slice(sim.sequence.ed_index, sim.sequence.es_index + 1)
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle, displacement=sim.displacement[half], gls_endo=sim.gls_endo[half],
                gls_mid=sim.gls_mid[half], segmental_strain=sim.segmental_strain[half],
                segment_names=np.array(sim.segment_names), lv_volume=sim.lv_volume[half],
                ef=np.float64(sim.ef), endo_contour=sim.endo_contour[half],
                mid_contour=sim.mid_contour[half])
