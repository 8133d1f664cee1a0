"""GeoTIFF datasets, band enums and the demo-data generator (datasets load rasterio lazily)."""

from __future__ import annotations

from terratorch._lazy import lazy_exports, module_aliases
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
    "GenericNonGeoObjectDetectionDataset": "terratorch.datasets.generic_nongeo_od_dataset",
    "InvalidAnnotationError": "terratorch.datasets.object_detection",
    "mVHR10": "terratorch.datasets.m_VHR10",
    "Substation": "terratorch.datasets.substation",
    "ElephantCocoDataset": "terratorch.datasets.od_aed_elephant",
    "TiledDataset": "terratorch.datasets.od_tiled_dataset_wrapper",
    "make_detection_demo": "terratorch.datasets.demo",
    "DetectionDemo": "terratorch.datasets.demo",
    "MEuroSATNonGeo": "terratorch.datasets.geobench",
    "MBigEarthNonGeo": "terratorch.datasets.geobench",
    "MBrickKilnNonGeo": "terratorch.datasets.geobench",
    "MForestNetNonGeo": "terratorch.datasets.geobench",
    "MSo2SatNonGeo": "terratorch.datasets.geobench",
    "MPv4gerNonGeo": "terratorch.datasets.geobench",
    "MPv4gerSegNonGeo": "terratorch.datasets.geobench",
    "MChesapeakeLandcoverNonGeo": "terratorch.datasets.geobench",
    "MBeninSmallHolderCashewsNonGeo": "terratorch.datasets.geobench",
    "MSACropTypeNonGeo": "terratorch.datasets.geobench",
    "MNzCattleNonGeo": "terratorch.datasets.geobench",
    "MNeonTreeNonGeo": "terratorch.datasets.geobench",
    "GeobenchNonGeo": "terratorch.datasets.geobench",
    "GeobenchFormatError": "terratorch.datasets.geobench",
    "make_geobench_demo": "terratorch.datasets.geobench_demo",
    "Sen1Floods11NonGeo": "terratorch.datasets.sen1floods11",
    "MultiTemporalCropClassification": "terratorch.datasets.multi_temporal_crop_classification",
    "BioMasstersNonGeo": "terratorch.datasets.biomassters",
    "BurnIntensityNonGeo": "terratorch.datasets.burn_intensity",
    "Landslide4SenseNonGeo": "terratorch.datasets.landslide4sense",
    "FireScarsNonGeo": "terratorch.datasets.fire_scars",
    "Sen4MapDatasetMonthlyComposites": "terratorch.datasets.sen4map",
}

__all__ = ["HLSBands", "OpticalBands", "SARBands", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

# TerraTorch 1.2's one-module-per-dataset paths (``datasets.m_eurosat``...) name the grouped module.
module_aliases(
    __name__,
    dict.fromkeys(
        (
            "m_SA_crop_type",
            "m_bigearthnet",
            "m_brick_kiln",
            "m_cashew_plantation",
            "m_chesapeake_landcover",
            "m_eurosat",
            "m_forestnet",
            "m_neontree",
            "m_nz_cattle",
            "m_pv4ger",
            "m_pv4ger_seg",
            "m_so2sat",
        ),
        "geobench",
    ),
)
