"""GeoTIFF datasets, band enums and the demo-data generator (datasets load rasterio lazily)."""

from __future__ import annotations

import importlib
from typing import Any

from terratorch.datasets.bands import HLSBands, OpticalBands, SARBands

_PIXEL = "terratorch.datasets.generic_pixel_wise_dataset"
_SCALAR = "terratorch.datasets.generic_scalar_label_dataset"

# name -> module; resolved on first attribute access (no rasterio at ``import terratorch.datasets``).
_LAZY: dict[str, str] = {
    "GenericGeoTIFFDataset": "terratorch.datasets.generic_base",
    "GenericPixelWiseDataset": _PIXEL,
    "GenericImageDataset": _PIXEL,
    "GenericNonGeoSegmentationDataset": _PIXEL,
    "GenericNonGeoPixelwiseRegressionDataset": _PIXEL,
    "GenericNonGeoClassificationDataset": _SCALAR,
    "GenericNonGeoMultiLabelClassificationDataset": _SCALAR,
    "GenericNonGeoScalarRegressionDataset": _SCALAR,
    "GeoTIFFError": "terratorch.datasets.utils",
    "DemoDataset": "terratorch.datasets.demo",
    "make_demo_dataset": "terratorch.datasets.demo",
    "make_demo_scene": "terratorch.datasets.demo",
    "compute_statistics": "terratorch.datasets.statistics",
}

__all__ = ["HLSBands", "OpticalBands", "SARBands", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terratorch.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
