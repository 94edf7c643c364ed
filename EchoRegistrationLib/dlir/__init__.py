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

The names below are imported on first use (:mod:`..lazy`): inference does not load training or the
simulator, and the model catalog (:mod:`.shipped`) needs no torch.
"""

from ..lazy import lazy_attributes

_EXPORTS = {
    "AffineNet": ".affine_net",
    "load_model": ".checkpoints",
    "read_config": ".checkpoints",
    "save_model": ".checkpoints",
    "PairSampler": ".data",
    "SequenceFolder": ".data",
    "SequenceItem": ".data",
    "SimulatedSequences": ".data",
    "open_source": ".data",
    "write_simulated_cache": ".data",
    "PatchDiscriminator": ".discriminator",
    "evaluate": ".evaluation",
    "predict_pair_fields": ".inference",
    "predict_sequence_fields": ".inference",
    "DLIRModel": ".model",
    "RegistrationUNet": ".networks",
    "DLIRObjective": ".objectives",
    "LossWeights": ".objectives",
    "ShapePrior": ".objectives",
    "ModelInfo": ".shipped",
    "list_models": ".shipped",
    "resolve_model": ".shipped",
    "train_affine": ".training",
    "train_dlir": ".training",
    "train_vae": ".training",
    "MaskVAE": ".vae",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
