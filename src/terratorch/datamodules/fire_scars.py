"""Datamodule of the HLS burn scars chips (:class:`~terratorch.datasets.fire_scars.FireScarsNonGeo`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.fire_scars import FireScarsNonGeo

# Reflectance statistics of the training chips.
MEANS = {
    "BLUE": 0.033349706741586264,
    "GREEN": 0.05701185520536176,
    "RED": 0.05889748132001316,
    "NIR_NARROW": 0.2323245113436119,
    "SWIR_1": 0.1972854853760658,
    "SWIR_2": 0.11944914225186566,
}
STDS = {
    "BLUE": 0.02269135568823774,
    "GREEN": 0.026807560223070237,
    "RED": 0.04004109844362779,
    "NIR_NARROW": 0.07791732423672691,
    "SWIR_1": 0.08708738838140137,
    "SWIR_2": 0.07241979477437814,
}


class FireScarsNonGeoDataModule(NamedNonGeoDataModule):
    """Burn scar segmentation: train and val splits; test and predict read val (there is no test split).

    Args:
        data_root: the dataset root (holding ``training`` and ``validation``).
        batch_size, num_workers, drop_last: loader settings.
        bands: bands to use, a subset of :attr:`FireScarsNonGeo.all_band_names`.
        train_transform, val_transform, test_transform, predict_transform: albumentations transforms.
        no_data_replace, no_label_replace, use_metadata: see the dataset.
        kwargs: ignored with a warning.
    """

    dataset_class = FireScarsNonGeo
    dataset_splits = {"train": "train", "val": "val", "test": "val", "predict": "val"}

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: Sequence[str] = FireScarsNonGeo.all_band_names,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        predict_transform: TransformList = None,
        drop_last: bool = True,
        no_data_replace: float | None = 0,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
        **kwargs: Any,
    ) -> None:
        self.bands = list(bands)
        means = band_statistics(MEANS, self.bands, "FireScarsNonGeoDataModule", "mean")
        stds = band_statistics(STDS, self.bands, "FireScarsNonGeoDataModule", "std")
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
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
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.use_metadata = use_metadata

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {
            "data_root": self.data_root,
            "bands": self.bands,
            "transform": self.transform_for(split),
            "no_data_replace": self.no_data_replace,
            "no_label_replace": self.no_label_replace,
            "use_metadata": self.use_metadata,
        }
