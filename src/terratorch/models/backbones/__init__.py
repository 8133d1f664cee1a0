"""Backbones: Prithvi EO ViTs (``prithvi_vit``), their masked autoencoders (``prithvi_mae``), Prithvi
Swin (``prithvi_swin``, registered in timm) and the timm wrapper.

Nothing heavy is imported here: modules load when a registry name needs them, and the attributes
below resolve on first access (``terratorch.models.backbones.PrithviViT``).
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "PrithviViT": "terratorch.models.backbones.prithvi_vit",
    "PRETRAINED_BANDS": "terratorch.models.backbones.prithvi_vit",
    "PrithviMAE": "terratorch.models.backbones.prithvi_mae",
    "PrithviSwin": "terratorch.models.backbones.prithvi_swin",
    "TimmBackbone": "terratorch.models.backbones.timm_backbone",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
