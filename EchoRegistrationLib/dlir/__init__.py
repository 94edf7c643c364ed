"""DLIR: deep-learning registration of echo sequences (Texture-Anatomic, multi-scale).

The deep-learning path of Hasan, Zhu, Yang and Yap, "Multi-scale, Data-driven and Anatomically
Constrained Deep Learning Image Registration for Adult and Fetal Echocardiography" (arXiv
2309.00831), rebuilt on the project's physical spatial core:

* models: :class:`DLIRModel` (a U-Net predicting a displacement or a stationary velocity field on a
  canonical working grid, optional :class:`AffineNet` first stage, optional :class:`FieldCorrection`
  fine-grid correction stage), :class:`MaskVAE` (shape prior), :class:`PatchDiscriminator` (texture prior);
* training: :func:`train_vae`, :func:`train_affine`, :func:`train_dlir`, :func:`train_correction` (seeded, resumable,
  multi-scale, DistributedDataParallel under torchrun), data from the simulator (with its true
  motion as an optional supervised term), CAMUS or folders;
* inference: :func:`predict_pair_fields` (any frame pairs in batches) and
  :func:`predict_sequence_fields` (every frame against the reference, directly or sequentially);
* checkpoints: safetensors + JSON (:func:`save_model`, :func:`load_model`).

The names below are imported on first use (:mod:`..lazy`): inference does not load training or the
simulator, and the model catalog (:mod:`.shipped`) needs no torch.
"""

from ..lazy import lazy_package

__getattr__, __all__ = lazy_package(__name__, {
    ".affine_net": ("AffineNet",),
    ".checkpoints": ("load_model", "read_config", "save_model"),
    ".correction": ("FieldCorrection",),
    ".correction_training": ("train_correction",),
    ".data": ("PairSampler", "SequenceFolder", "SimulatedSequences", "open_source", "write_simulated_cache"),
    ".discriminator": ("PatchDiscriminator",),
    ".evaluation": ("evaluate",),
    ".items": ("SequenceItem",),
    ".inference": ("predict_pair_fields", "predict_sequence_fields"),
    ".model": ("DLIRModel",),
    ".networks": ("CostVolumeNet", "RegistrationUNet", "registration_network"),
    ".objectives": ("DLIRObjective", "LossWeights", "ShapePrior"),
    ".shipped": ("ModelInfo", "list_models", "resolve_model"),
    ".templates": ("WarpedTemplates",),
    ".training": ("train_affine", "train_dlir", "train_vae"),
    ".vae": ("MaskVAE",),
})
