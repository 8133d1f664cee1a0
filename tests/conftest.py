"""Shared fixtures: isolated registries, a working directory per test, quiet plotting."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest-xdist worker per core: torch's intra-op threads would oversubscribe the cores.
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def restore_registries():
    """Snapshot every global registry and restore it after the test (for tests that register names)."""
    from terratorch import registry as reg

    plain = [
        reg.TERRATORCH_BACKBONE_REGISTRY,
        reg.TERRATORCH_NECK_REGISTRY,
        reg.TERRATORCH_DECODER_REGISTRY,
        reg.TERRATORCH_FULL_MODEL_REGISTRY,
        reg.MODEL_FACTORY_REGISTRY,
    ]
    saved = [
        (r, dict(r._entries), dict(r._lazy), {k: dict(v) for k, v in r._metadata.items()}) for r in plain
    ]
    multi = [reg.BACKBONE_REGISTRY, reg.DECODER_REGISTRY, reg.NECK_REGISTRY, reg.FULL_MODEL_REGISTRY]
    saved_sources = [(m, dict(m._sources)) for m in multi]
    yield
    for r, entries, lazy, meta in saved:
        current = dict(r._entries)
        r._entries.clear()
        r._entries.update(entries)
        r._lazy.clear()
        r._lazy.update(lazy)
        # Built-ins resolved during the test stay resolved: their module is imported for good.
        for name, module in lazy.items():
            loaded = current.get(name)
            if loaded is not None and getattr(loaded, "__module__", None) == module:
                r._entries[name] = loaded
                del r._lazy[name]
        r._metadata.clear()
        r._metadata.update(meta)
    for m, sources in saved_sources:
        m._sources.clear()
        m._sources.update(sources)
