"""Lightning datamodules over the GeoTIFF datasets (resolved lazily: Lightning loads on first use)."""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_PIXEL = "terratorch.datamodules.generic_pixel_wise_data_module"
_SCALAR = "terratorch.datamodules.generic_scalar_label_data_module"
_MULTI = "terratorch.datamodules.generic_multimodal_data_module"

# name -> module; resolved on first attribute access so ``import terratorch.datamodules`` is cheap.
_LAZY: dict[str, str] = {
    "GeoTIFFDataModule": "terratorch.datamodules.base",
    "Normalize": "terratorch.datamodules.normalize",
    "GenericNonGeoSegmentationDataModule": _PIXEL,
    "GenericNonGeoPixelwiseRegressionDataModule": _PIXEL,
    "GenericNonGeoClassificationDataModule": _SCALAR,
    "GenericNonGeoMultiLabelClassificationDataModule": _SCALAR,
    "GenericNonGeoScalarRegressionDataModule": _SCALAR,
    "GenericMultiModalDataModule": _MULTI,
    "MultimodalNormalize": _MULTI,
    "MultiModalBatchSampler": _MULTI,
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
