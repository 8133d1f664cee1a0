"""Registries of backbones, necks, decoders, full models and model factories.

``BACKBONE_REGISTRY`` searches our backbones then timm's; ``DECODER_REGISTRY`` ours then smp's.
Built-in entries are imported on first use, and ``./custom_modules`` is imported before the first
lookup, so this module is cheap to import (no torch, timm or smp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terratorch.registry import manifest
from terratorch.registry.custom_modules import (
    CustomModuleImportError,
    autoload_custom_modules,
    import_custom_modules,
)
from terratorch.registry.registry import (
    BuildableRegistry,
    DecoderRegistry,
    InvalidModelError,
    MultiSourceRegistry,
    Registry,
    RegistrySource,
    explore_model_card,
)
from terratorch.registry.smp_source import SMPDecoderSource
from terratorch.registry.timm_source import TimmBackboneSource

__all__ = [
    "BACKBONE_REGISTRY",
    "DECODER_REGISTRY",
    "FULL_MODEL_REGISTRY",
    "MODEL_FACTORY_REGISTRY",
    "NECK_REGISTRY",
    "TERRATORCH_BACKBONE_REGISTRY",
    "TERRATORCH_DECODER_REGISTRY",
    "TERRATORCH_FULL_MODEL_REGISTRY",
    "TERRATORCH_NECK_REGISTRY",
    "BuildableRegistry",
    "CustomModuleImportError",
    "DecoderRegistry",
    "InvalidModelError",
    "MultiSourceRegistry",
    "Registry",
    "RegistryEntry",
    "RegistrySource",
    "autoload_custom_modules",
    "explore_model_card",
    "import_custom_modules",
    "list_backbones",
]

TERRATORCH_BACKBONE_REGISTRY = Registry("TERRATORCH_BACKBONE_REGISTRY")
TERRATORCH_NECK_REGISTRY = Registry("TERRATORCH_NECK_REGISTRY")
TERRATORCH_DECODER_REGISTRY = Registry("TERRATORCH_DECODER_REGISTRY")
TERRATORCH_FULL_MODEL_REGISTRY = Registry("TERRATORCH_FULL_MODEL_REGISTRY")
MODEL_FACTORY_REGISTRY = Registry("MODEL_FACTORY_REGISTRY")
# Source-level flag of the reference's DecoderRegistry protocol: our own decoders do not end in a
# head as a rule (the few that do say so with a class attribute of the same name).
TERRATORCH_DECODER_REGISTRY.includes_head = False  # type: ignore[attr-defined]

for _name, (_module, _meta) in manifest.BACKBONES.items():
    TERRATORCH_BACKBONE_REGISTRY.register_lazy(_name, _module, **_meta)
for _name, (_module, _meta) in manifest.FULL_MODELS.items():
    TERRATORCH_FULL_MODEL_REGISTRY.register_lazy(_name, _module, **_meta)
for _name, _module in manifest.NECKS.items():
    TERRATORCH_NECK_REGISTRY.register_lazy(_name, _module)
for _name, _module in manifest.DECODERS.items():
    TERRATORCH_DECODER_REGISTRY.register_lazy(_name, _module)
for _name, _module in manifest.MODEL_FACTORIES.items():
    MODEL_FACTORY_REGISTRY.register_lazy(_name, _module)


def _multi(name: str, **sources: Any) -> MultiSourceRegistry:
    registry = MultiSourceRegistry(**sources)
    registry.name = name
    return registry


BACKBONE_REGISTRY = _multi(
    "BACKBONE_REGISTRY", terratorch=TERRATORCH_BACKBONE_REGISTRY, timm=TimmBackboneSource()
)
DECODER_REGISTRY = _multi("DECODER_REGISTRY", terratorch=TERRATORCH_DECODER_REGISTRY, smp=SMPDecoderSource())
NECK_REGISTRY = _multi("NECK_REGISTRY", terratorch=TERRATORCH_NECK_REGISTRY)
FULL_MODEL_REGISTRY = _multi("FULL_MODEL_REGISTRY", terratorch=TERRATORCH_FULL_MODEL_REGISTRY)


@dataclass(frozen=True)
class RegistryEntry:
    """One listed backbone: its registry name, the source that holds it, and its metadata."""

    name: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


def list_backbones(pattern: str | None = None, include_timm: bool = False) -> list[RegistryEntry]:
    """List backbones with their metadata (bands, mean/std, patch size, channels) without building them.

    Args:
        pattern: Optional ``fnmatch`` pattern on the name (e.g. ``"prithvi_eo_v2_*"``).
        include_timm: Also list timm's models (imports timm; metadata from their pretrained cfg).
    """
    from fnmatch import fnmatch

    entries = [
        RegistryEntry(name, "terratorch", TERRATORCH_BACKBONE_REGISTRY.metadata(name))
        for name in TERRATORCH_BACKBONE_REGISTRY
    ]
    if include_timm:
        import timm

        for name in timm.list_models():
            cfg = timm.models.get_pretrained_cfg(name)
            meta = {}
            if cfg is not None:
                meta = {"mean": list(cfg.mean), "std": list(cfg.std), "input_size": list(cfg.input_size)}
            entries.append(RegistryEntry(name, "timm", meta))
    if pattern:
        entries = [e for e in entries if fnmatch(e.name, pattern)]
    return entries
