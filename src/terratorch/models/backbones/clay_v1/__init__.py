"""Clay v1 foundation-model encoder (``clay_v1_base``): a ViT whose patch embedding is generated
from the wavelengths of the input bands, so any band set can be fed to the same weights.

Nothing heavy is imported here; the attributes below resolve on first access and the registry
imports :mod:`.embedder` when ``clay_v1_base`` is first built.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_MODULES = "terratorch.models.backbones.clay_v1.modules"
_EMBEDDER = "terratorch.models.backbones.clay_v1.embedder"
_UTILS = "terratorch.models.backbones.clay_v1.utils"

_LAZY: dict[str, str] = {
    "WAVELENGTHS": _MODULES,
    "Attention": _MODULES,
    "Datacuber": _MODULES,
    "DynamicEmbedding": _MODULES,
    "EmbeddingEncoder": _MODULES,
    "Encoder": _MODULES,
    "FCBlock": _MODULES,
    "FeedForward": _MODULES,
    "Transformer": _MODULES,
    "WavesTransformer": _MODULES,
    "Embedder": _EMBEDDER,
    "clay_v1_base": _EMBEDDER,
    "posemb_sincos_1d": _UTILS,
    "posemb_sincos_2d": _UTILS,
    "posemb_sincos_2d_with_gsd": _UTILS,
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
