"""Datamodule of the HLS burn intensity dataset (pre-, during- and post-fire images)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.burn_intensity import BurnIntensityNonGeo

# Statistics per band and time step (pre, during, post) of the stored values.
MEANS = {
    "BLUE": [331.6921, 896.8024, 348.8031],
    "GREEN": [555.1077, 1093.9736, 500.2181],
    "RED": [605.2513, 1142.7225, 597.9034],
    "NIR": [1761.3884, 1890.2156, 1552.0403],
    "SWIR_1": [1117.1825, 1408.0839, 1293.0919],
    "SWIR_2": [2168.0090, 2270.9753, 1362.1312],
}
STDS = {
    "BLUE": [213.0656, 1620.4131, 314.7517],
    "GREEN": [273.0910, 1628.4181, 365.6746],
    "RED": [414.8322, 1600.7698, 424.8185],
    "NIR": [818.7486, 1236.8453, 804.9058],
    "SWIR_1": [677.2739, 1153.7432, 795.4156],
    "SWIR_2": [612.9131, 1495.8365, 661.6196],
}


class BurnIntensityNonGeoDataModule(NamedNonGeoDataModule):
    """Burn severity segmentation from ``(B, C, 3, H, W)`` images; test and predict read val.

    Each band is normalised with the statistics of its time step.

    Args:
        data_root: the dataset root.
        batch_size, num_workers: loader settings (the reference keeps the last training batch).
        bands: bands to use, a subset of :attr:`BurnIntensityNonGeo.all_band_names`.
        train_transform, val_transform, test_transform, predict_transform: albumentations transforms.
        use_full_data, no_data_replace, no_label_replace, use_metadata: see the dataset.
        kwargs: ignored with a warning.
    """

    dataset_class = BurnIntensityNonGeo
    dataset_splits = {"train": "train", "val": "val", "test": "val", "predict": "val"}

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: Sequence[str] = BurnIntensityNonGeo.all_band_names,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        predict_transform: TransformList = None,
        use_full_data: bool = True,
        no_data_replace: float | None = 0.0001,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
        **kwargs: Any,
    ) -> None:
        self.bands = list(bands)
        means = band_statistics(MEANS, self.bands, "BurnIntensityNonGeoDataModule", "mean")
        stds = band_statistics(STDS, self.bands, "BurnIntensityNonGeoDataModule", "std")
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=False,
            normalizers={"image": ChannelNormalize(means, stds)},
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
        self.use_full_data = use_full_data
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.use_metadata = use_metadata

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {
            "data_root": self.data_root,
            "bands": self.bands,
            "transform": self.transform_for(split),
            "use_full_data": self.use_full_data,
            "no_data_replace": self.no_data_replace,
            "no_label_replace": self.no_label_replace,
            "use_metadata": self.use_metadata,
        }
