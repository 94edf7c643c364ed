"""Echo enhancement before registration: a CycleGAN with 70 x 70 PatchGAN discriminators (EchoGANhance).

Low-quality echo (haze, clutter, reverberation, dropout, noise, low contrast) translated to
high-quality echo by a generator trained on unpaired frames of the two domains (Zhu et al.,
CycleGAN 2017; Isola et al., pix2pix PatchGAN 2017; EchoGANhance), with SSIM and illumination-
consistency terms that limit hallucinated structures:

* networks: :class:`ResnetGenerator`, :class:`PatchGAN70` (:mod:`.networks`);
* training: :func:`train_enhancer` (:mod:`.training`), on ``degraded:START-STOP`` simulated sequences
  (:mod:`..simulation.degradation`), simulated or real frames, or folders (:mod:`.data`);
* inference: :func:`enhance_sequence`, also ``register_sequence(..., enhance=MODEL)``.

Names are imported on first use (:mod:`..lazy`).
"""

from ..lazy import lazy_package

__getattr__, __all__ = lazy_package(__name__, {
    ".data": ("DegradedSequences", "open_domain"),
    ".inference": ("enhance_sequence", "load_enhancer"),
    ".networks": ("PatchGAN70", "ResnetGenerator"),
    ".training": ("train_enhancer",),
})
