"""Import path of the reference release for the timm backbone wrapper (``TimmBackboneWrapper``).

The wrapper lives with the model code in :mod:`terratorch.models.backbones.timm_backbone`; the
timm source of the backbone registry is :mod:`terratorch.registry.timm_source`. This module only
keeps ``from terratorch.registry.timm_registry import TimmBackboneWrapper`` working.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY = {"TimmBackboneWrapper": "terratorch.models.backbones.timm_backbone"}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
