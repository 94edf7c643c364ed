"""DLIR: deep-learning registration of echo sequences (Texture-Anatomic, multi-scale).

The deep-learning path of Hasan, Zhu, Yang and Yap, "Multi-scale, Data-driven and Anatomically
Constrained Deep Learning Image Registration for Adult and Fetal Echocardiography" (arXiv
2309.00831), rebuilt on the project's physical spatial core:

* models: :class:`DLIRModel` (a U-Net predicting a displacement or a stationary velocity field on a
  canonical working grid, optional :class:`AffineNet` first stage), :class:`MaskVAE` (shape prior),
  :class:`PatchDiscriminator` (texture prior);
* training: :func:`train_vae`, :func:`train_affine`, :func:`train_dlir` (seeded, resumable,
  multi-scale, DistributedDataParallel under torchrun), data from the simulator (with its true
  motion as an optional supervised term), CAMUS or folders;
* inference: :func:`predict_pair_fields` (any frame pairs in batches) and
  :func:`predict_sequence_fields` (every frame against the reference, directly or sequentially);
* checkpoints: safetensors + JSON (:func:`save_model`, :func:`load_model`).
"""

from .affine_net import AffineNet
from .checkpoints import load_model, read_config, save_model
from .data import (PairSampler, SequenceFolder, SequenceItem, SimulatedSequences, open_source,
                   write_simulated_cache)
from .discriminator import PatchDiscriminator
from .evaluation import evaluate
from .inference import predict_pair_fields, predict_sequence_fields
from .model import DLIRModel
from .networks import RegistrationUNet
from .objectives import DLIRObjective, LossWeights, ShapePrior
from .training import train_affine, train_dlir, train_vae
from .vae import MaskVAE

__all__ = [
    "AffineNet", "DLIRModel", "DLIRObjective", "LossWeights", "MaskVAE", "PairSampler",
    "PatchDiscriminator", "RegistrationUNet", "SequenceFolder", "SequenceItem", "ShapePrior",
    "SimulatedSequences", "evaluate", "load_model", "open_source", "predict_pair_fields",
    "predict_sequence_fields", "read_config", "save_model", "train_affine", "train_dlir", "train_vae",
    "write_simulated_cache",
]
