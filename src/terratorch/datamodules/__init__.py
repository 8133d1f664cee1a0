"""Lightning datamodules over the GeoTIFF datasets (resolved lazily: Lightning loads on first use)."""

from __future__ import annotations

import importlib
from typing import Any

_PIXEL = "terratorch.datamodules.generic_pixel_wise_data_module"
_SCALAR = "terratorch.datamodules.generic_scalar_label_data_module"

# name -> module; resolved on first attribute access so ``import terratorch.datamodules`` is cheap.
_LAZY: dict[str, str] = {
    "GeoTIFFDataModule": "terratorch.datamodules.base",
    "Normalize": "terratorch.datamodules.normalize",
    "GenericNonGeoSegmentationDataModule": _PIXEL,
    "GenericNonGeoPixelwiseRegressionDataModule": _PIXEL,
    "GenericNonGeoClassificationDataModule": _SCALAR,
    "GenericNonGeoMultiLabelClassificationDataModule": _SCALAR,
    "GenericNonGeoScalarRegressionDataModule": _SCALAR,
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terratorch.datamodules' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
