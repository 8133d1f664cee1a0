"""Clay v1.5: the Clay masked autoencoder (``ClayMAE``, under the module paths TerraTorch 1.2 used) and
its encoder as TerraTorch backbones (``clay_v15_tiny``/``small``/``base``/``large``).

Nothing heavy is imported here; the attributes below resolve on first access and the registry
imports :mod:`.embedder` when a ``clay_v15_*`` backbone is first built.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_BACKBONE = "terratorch.models.backbones.clay_v15.backbone"
_FACTORY = "terratorch.models.backbones.clay_v15.factory"
_MODEL = "terratorch.models.backbones.clay_v15.model"
_EMBEDDER = "terratorch.models.backbones.clay_v15.embedder"
_UTILS = "terratorch.models.backbones.clay_v15.utils"

_LAZY: dict[str, str] = {
    "Attention": _BACKBONE,
    "FeedForward": _BACKBONE,
    "Transformer": _BACKBONE,
    "DynamicEmbedding": _FACTORY,
    "FCBlock": _FACTORY,
    "WavesTransformer": _FACTORY,
    "CLAY_MAE_SIZES": _MODEL,
    "ClayMAE": _MODEL,
    "Decoder": _MODEL,
    "Encoder": _MODEL,
    "clay_mae_base": _MODEL,
    "clay_mae_large": _MODEL,
    "clay_mae_small": _MODEL,
    "clay_mae_tiny": _MODEL,
    "Embedder": _EMBEDDER,
    "clay_v15_base": _EMBEDDER,
    "clay_v15_large": _EMBEDDER,
    "clay_v15_small": _EMBEDDER,
    "clay_v15_tiny": _EMBEDDER,
    "posemb_sincos_1d": _UTILS,
    "posemb_sincos_2d": _UTILS,
    "posemb_sincos_2d_with_gsd": _UTILS,
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
