"""GeoTIFF datasets, band enums and the demo-data generator (datasets load rasterio lazily)."""

from __future__ import annotations

import importlib
from typing import Any

from terratorch.datasets.bands import HLSBands, OpticalBands, SARBands

# name -> module; filled in as dataset modules are added. Resolved on first attribute access.
_LAZY: dict[str, str] = {}

__all__ = ["HLSBands", "OpticalBands", "SARBands", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terratorch.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
