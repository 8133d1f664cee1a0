"""Registry source over every model name that ``timm`` knows, built as a feature extractor.

timm is imported on first lookup, together with the modules of ours that register architectures
in timm's own registry (Prithvi Swin), so ``timm.create_model`` and our registries agree. The model
code is named by module path only (like the lazy manifest): ``registry/`` imports nothing from
``models/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from terratorch.registry.registry import InvalidModelError, close_matches

#: Our modules that call ``timm.models.register_model``; imported before the first timm lookup.
TIMM_PLUGIN_MODULES: list[str] = ["terratorch.models.backbones.prithvi_swin"]
#: Module whose ``build_timm_backbone(name, **kwargs)`` creates and wraps the timm model.
_BUILDER_MODULE = "terratorch.models.backbones.timm_backbone"


class TimmBackboneSource:
    """Builds ``timm.create_model(name, features_only=True, **kwargs)`` wrapped as a backbone.

    The wrapper (:class:`terratorch.models.backbones.timm_backbone.TimmBackbone`) exposes
    ``out_channels == feature_info.channels()`` and always returns NCHW feature maps.
    """

    def __init__(self) -> None:
        self._loaded = False

    def _timm(self) -> Any:
        import timm

        if not self._loaded:
            self._loaded = True
            for module in TIMM_PLUGIN_MODULES:
                importlib.import_module(module)
        return timm

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        timm = self._timm()
        return bool(timm.is_model(name)) or bool(timm.is_model(name.split(".", 1)[0]))

    def __getitem__(self, name: str) -> Any:
        if name not in self:
            raise InvalidModelError(name, "timm", close_matches(name, self))
        from functools import partial

        return partial(self.build, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._timm().list_models())

    def __len__(self) -> int:
        return len(self._timm().list_models())

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Create the timm model as a features-only backbone; every kwarg reaches timm."""
        if args:
            raise TypeError(f"timm backbones take keyword arguments only, got positional {args!r}.")
        self._timm()
        # timm.create_model(features_only=True) plus our band-aware local weights options (bands,
        # pretrained_bands, ckpt_path, allow_partial); without them it is timm's call as is.
        return importlib.import_module(_BUILDER_MODULE).build_timm_backbone(name, **kwargs)

    def __repr__(self) -> str:
        return "TimmBackboneSource()"
