"""TerraMind (IBM/ESA) any-modality encoders and their building blocks.

Modules: :mod:`.modalities` (modality table, aliases, bands; no torch), :mod:`.statistics`
(pretraining means/stds; no torch), :mod:`.layers` (transformer blocks), :mod:`.embeddings` (encoder
embeddings), :mod:`.vit` (:class:`TerraMindViT`) and :mod:`.register` (the ``terramind_v1_*`` and
``terramind_v01_base`` backbones). Nothing is imported here; the registry imports :mod:`.register`
when a TerraMind name is built, and the names below resolve on first access.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "MODALITY_INFO": "terratorch.models.backbones.terramind.modalities",
    "PRETRAINED_BANDS": "terratorch.models.backbones.terramind.modalities",
    "resolve_modality": "terratorch.models.backbones.terramind.modalities",
    "v1_pretraining_mean": "terratorch.models.backbones.terramind.statistics",
    "v1_pretraining_std": "terratorch.models.backbones.terramind.statistics",
    "TerraMindViT": "terratorch.models.backbones.terramind.vit",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
