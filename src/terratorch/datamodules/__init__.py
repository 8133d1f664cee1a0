"""Lightning datamodules over the GeoTIFF datasets (resolved lazily: Lightning loads on first use)."""

from __future__ import annotations

from terratorch._lazy import lazy_exports, module_aliases

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
    "GenericNonGeoObjectDetectionDataModule": "terratorch.datamodules.generic_nongeo_od_data_module",
    "mVHR10DataModule": "terratorch.datamodules.m_VHR10",
    "SubstationDataModule": "terratorch.datamodules.substation",
    "ElephantDataModule": "terratorch.datamodules.od_aed_elephant",
    "MEuroSATNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MBigEarthNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MBrickKilnNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MForestNetNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MSo2SatNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MPv4gerNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MPv4gerSegNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MChesapeakeLandcoverNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MBeninSmallHolderCashewsNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MSACropTypeNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MNzCattleNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "MNeonTreeNonGeoDataModule": "terratorch.datamodules.geobench_data_module",
    "GeobenchDataModule": "terratorch.datamodules.geobench_data_module",
    "TorchNonGeoDataModule": "terratorch.datamodules.torchgeo_data_module",
    "TorchGeoDataModule": "terratorch.datamodules.torchgeo_data_module",
    "GeoBenchV2ClassificationDataModule": "terratorch.datamodules.geobench_v2_data_module",
    "GeoBenchV2SegmentationDataModule": "terratorch.datamodules.geobench_v2_data_module",
    "GeoBenchV2ObjectDetectionDataModule": "terratorch.datamodules.geobench_v2_data_module",
    "Sen1Floods11NonGeoDataModule": "terratorch.datamodules.sen1floods11",
    "MultiTemporalCropClassificationDataModule": "terratorch.datamodules.multi_temporal_crop_classification",
    "BioMasstersNonGeoDataModule": "terratorch.datamodules.biomassters",
    "BurnIntensityNonGeoDataModule": "terratorch.datamodules.burn_intensity",
    "Landslide4SenseNonGeoDataModule": "terratorch.datamodules.landslide4sense",
    "FireScarsNonGeoDataModule": "terratorch.datamodules.fire_scars",
    "Sen4MapLucasDataModule": "terratorch.datamodules.sen4map",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

# TerraTorch 1.2's one-module-per-dataset paths (``datamodules.m_eurosat``...) name the grouped module.
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
        "geobench_data_module",
    ),
)
