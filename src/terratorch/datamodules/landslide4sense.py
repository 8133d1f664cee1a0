"""Datamodule of the Landslide4Sense HDF5 patches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.landslide4sense import Landslide4SenseNonGeo

# Statistics of the stored (already standardised) values.
MEANS = {
    "COASTAL AEROSOL": -0.4914,
    "BLUE": -0.3074,
    "GREEN": -0.1277,
    "RED": -0.0625,
    "RED_EDGE_1": 0.0439,
    "RED_EDGE_2": 0.0803,
    "RED_EDGE_3": 0.0644,
    "NIR_BROAD": 0.0802,
    "WATER_VAPOR": 0.3000,
    "CIRRUS": 0.4082,
    "SWIR_1": 0.0823,
    "SWIR_2": 0.0516,
    "SLOPE": 0.3338,
    "DEM": 0.7819,
}
STDS = {
    "COASTAL AEROSOL": 0.9325,
    "BLUE": 0.8775,
    "GREEN": 0.8860,
    "RED": 0.8869,
    "RED_EDGE_1": 0.8857,
    "RED_EDGE_2": 0.8418,
    "RED_EDGE_3": 0.8354,
    "NIR_BROAD": 0.8491,
    "WATER_VAPOR": 0.9061,
    "CIRRUS": 1.6072,
    "SWIR_1": 0.8848,
    "SWIR_2": 0.9232,
    "SLOPE": 0.9018,
    "DEM": 1.2913,
}


class Landslide4SenseNonGeoDataModule(NamedNonGeoDataModule):
    """Landslide segmentation: train, val (``validation``) and test splits; predict reads test.

    Args:
        data_root: the dataset root (holding ``images`` and ``annotations``).
        batch_size, num_workers: loader settings (the reference keeps the last training batch).
        bands: bands to use, a subset of :attr:`Landslide4SenseNonGeo.all_band_names`.
        train_transform, val_transform, test_transform, predict_transform: albumentations transforms.
        aug: a callable ``batch -> batch`` used instead of the normalisation with the statistics above.
        kwargs: ignored with a warning.
    """

    dataset_class = Landslide4SenseNonGeo

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: Sequence[str] = Landslide4SenseNonGeo.all_band_names,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        predict_transform: TransformList = None,
        aug: Any = None,
        **kwargs: Any,
    ) -> None:
        self.bands = list(bands)
        means = band_statistics(MEANS, self.bands, "Landslide4SenseNonGeoDataModule", "mean")
        stds = band_statistics(STDS, self.bands, "Landslide4SenseNonGeoDataModule", "std")
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=False,
            normalizers={"image": ChannelNormalize(means, stds)},
            aug=aug,
            **kwargs,
        )
        self.data_root = data_root
        self.means, self.stds = means, stds
        self.set_transforms(
            train_transform=train_transform,
            val_transform=val_transform,
            test_transform=test_transform,
            predict_transform=predict_transform,
        )

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {"data_root": self.data_root, "bands": self.bands, "transform": self.transform_for(split)}
