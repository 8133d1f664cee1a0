"""GeoTIFF datasets, band enums and the demo-data generator (datasets load rasterio lazily)."""

from __future__ import annotations

from terratorch._lazy import lazy_exports
from terratorch.datasets.bands import HLSBands, OpticalBands, SARBands

_PIXEL = "terratorch.datasets.generic_pixel_wise_dataset"
_SCALAR = "terratorch.datasets.generic_scalar_label_dataset"
_MULTI = "terratorch.datasets.generic_multimodal_dataset"
_MULTI_TF = "terratorch.datasets.multimodal_transforms"

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
    "make_multimodal_demo": "terratorch.datasets.demo",
    "MultimodalDemo": "terratorch.datasets.demo",
    "GenericMultimodalDataset": _MULTI,
    "GenericMultimodalSegmentationDataset": _MULTI,
    "GenericMultimodalPixelwiseRegressionDataset": _MULTI,
    "GenericMultimodalScalarDataset": _MULTI,
    "Modalities": _MULTI,
    "MultimodalTransforms": _MULTI_TF,
    "MultimodalToTensor": _MULTI_TF,
    "compute_statistics": "terratorch.datasets.statistics",
}

__all__ = ["HLSBands", "OpticalBands", "SARBands", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
