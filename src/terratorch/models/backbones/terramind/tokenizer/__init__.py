"""VQ-VAE tokenizers of TerraMind v1 (LULC, NDVI): turn raw maps into the token ids TerraMind reads.

Modules: :mod:`.fsq` (finite scalar quantizer), :mod:`.vit_codec` (the ViT encoder/decoder),
:mod:`.vqvae` (:class:`VQ`, :class:`VQVAE`) and :mod:`.register` (``terramind_v1_tokenizer_lulc`` and
``terramind_v1_tokenizer_ndvi`` in ``TERRATORCH_FULL_MODEL_REGISTRY``). Nothing heavy is imported
here; the names below resolve on first access.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "FiniteScalarQuantizer": "terratorch.models.backbones.terramind.tokenizer.fsq",
    "ViTEncoder": "terratorch.models.backbones.terramind.tokenizer.vit_codec",
    "ViTDecoder": "terratorch.models.backbones.terramind.tokenizer.vit_codec",
    "VQ": "terratorch.models.backbones.terramind.tokenizer.vqvae",
    "VQVAE": "terratorch.models.backbones.terramind.tokenizer.vqvae",
    "build_vqvae": "terratorch.models.backbones.terramind.tokenizer.register",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
