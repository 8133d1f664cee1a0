"""The lazy manifest (``terratorch.registry.manifest``) agrees with what the model modules register.

Every module under ``terratorch.models`` is imported; then each built-in registry must hold exactly
the manifest's names, each registered by the module the manifest names, with the metadata the
manifest copies. A failure prints the manifest entry to paste.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import terratorch.models
from terratorch.registry import (
    MODEL_FACTORY_REGISTRY,
    TERRATORCH_BACKBONE_REGISTRY,
    TERRATORCH_DECODER_REGISTRY,
    TERRATORCH_FULL_MODEL_REGISTRY,
    TERRATORCH_NECK_REGISTRY,
    Registry,
    manifest,
)


def _import_every_model_module() -> None:
    for info in pkgutil.walk_packages(terratorch.models.__path__, prefix="terratorch.models."):
        importlib.import_module(info.name)


def _with_metadata(table: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {name: (module, {}) for name, module in table.items()}


CASES = {
    "backbones": (TERRATORCH_BACKBONE_REGISTRY, manifest.BACKBONES),
    "full_models": (TERRATORCH_FULL_MODEL_REGISTRY, manifest.FULL_MODELS),
    "necks": (TERRATORCH_NECK_REGISTRY, _with_metadata(manifest.NECKS)),
    "decoders": (TERRATORCH_DECODER_REGISTRY, _with_metadata(manifest.DECODERS)),
    "factories": (MODEL_FACTORY_REGISTRY, _with_metadata(manifest.MODEL_FACTORIES)),
}


def _built_in(registry: Registry) -> dict[str, Any]:
    """Entries registered by our own model modules (tests and custom modules may add others)."""
    found = {}
    for name in registry:
        constructor = registry[name]
        if str(getattr(constructor, "__module__", "")).startswith("terratorch.models."):
            found[name] = constructor
    return found


@pytest.mark.parametrize("table", sorted(CASES))
def test_manifest_lists_what_the_modules_register(table):
    _import_every_model_module()
    registry, expected = CASES[table]
    registered = _built_in(registry)
    missing = {
        name: (constructor.__module__, registry.metadata(name))
        for name, constructor in registered.items()
        if name not in expected
    }
    assert not missing, f"registered but not in manifest.{table.upper()}; add: {missing!r}"
    for name, (module, metadata) in expected.items():
        assert name in registered, (
            f"manifest.{table.upper()} lists {name!r}, which {module} does not register"
        )
        actual = (registered[name].__module__, registry.metadata(name))
        assert actual == (module, metadata), f"manifest entry of {name!r} should be {actual!r}"


def test_lazy_metadata_is_replaced_by_the_registered_one():
    reg = Registry("test")
    reg.register_lazy("thing", "some.module", patch_size=4, note="manifest copy")
    reg.register(name="thing", metadata={"patch_size": 8})(lambda: None)
    assert reg.metadata("thing") == {"patch_size": 8}
