"""Import path of the reference release for the timm backbone wrapper (``TimmBackboneWrapper``).

The wrapper lives with the model code in :mod:`terratorch.models.backbones.timm_backbone`; the
timm source of the backbone registry is :mod:`terratorch.registry.timm_source`. This module only
keeps ``from terratorch.registry.timm_registry import TimmBackboneWrapper`` working.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TimmBackboneWrapper"]


def __getattr__(name: str) -> Any:
    if name == "TimmBackboneWrapper":
        from terratorch.models.backbones.timm_backbone import TimmBackboneWrapper

        return TimmBackboneWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
