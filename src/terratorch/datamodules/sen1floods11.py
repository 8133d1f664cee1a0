"""Datamodule of the Sen1Floods11 hand-labelled chips (:class:`Sen1Floods11NonGeo`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.sen1floods11 import Sen1Floods11NonGeo

# Reflectance statistics (after constant_scale=0.0001) of the training chips.
MEANS = {
    "COASTAL_AEROSOL": 0.16450718,
    "BLUE": 0.1412956,
    "GREEN": 0.13795798,
    "RED": 0.12353792,
    "RED_EDGE_1": 0.1481099,
    "RED_EDGE_2": 0.23991728,
    "RED_EDGE_3": 0.28587557,
    "NIR_BROAD": 0.26345379,
    "NIR_NARROW": 0.30902815,
    "WATER_VAPOR": 0.04911151,
    "CIRRUS": 0.00652506,
    "SWIR_1": 0.2044958,
    "SWIR_2": 0.11912015,
}
STDS = {
    "COASTAL_AEROSOL": 0.06977374,
    "BLUE": 0.07406382,
    "GREEN": 0.07370365,
    "RED": 0.08692279,
    "RED_EDGE_1": 0.07778555,
    "RED_EDGE_2": 0.09105416,
    "RED_EDGE_3": 0.10690993,
    "NIR_BROAD": 0.10096586,
    "NIR_NARROW": 0.11798815,
    "WATER_VAPOR": 0.03380113,
    "CIRRUS": 0.01463465,
    "SWIR_1": 0.09772074,
    "SWIR_2": 0.07659938,
}


class Sen1Floods11NonGeoDataModule(NamedNonGeoDataModule):
    """Sen1Floods11 flood segmentation: train/val/test splits of the release; predict reads test.

    Args:
        data_root: the dataset root (holding ``v1.1``).
        batch_size, num_workers, drop_last: loader settings (``drop_last`` for training only).
        bands: bands to use, a subset of :attr:`Sen1Floods11NonGeo.all_band_names`.
        train_transform, val_transform, test_transform, predict_transform: albumentations
            transforms (lists or ``Compose``) of each split.
        constant_scale, no_data_replace, no_label_replace, use_metadata: see the dataset.
        kwargs: ignored with a warning (the reference passes them to torchgeo's base class).
    """

    dataset_class = Sen1Floods11NonGeo

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: Sequence[str] = Sen1Floods11NonGeo.all_band_names,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        predict_transform: TransformList = None,
        drop_last: bool = True,
        constant_scale: float = 0.0001,
        no_data_replace: float | None = 0,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
        **kwargs: Any,
    ) -> None:
        self.bands = list(bands)
        means = band_statistics(MEANS, self.bands, "Sen1Floods11NonGeoDataModule", "mean")
        stds = band_statistics(STDS, self.bands, "Sen1Floods11NonGeoDataModule", "std")
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
        self.constant_scale = constant_scale
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.use_metadata = use_metadata

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {
            "data_root": self.data_root,
            "bands": self.bands,
            "transform": self.transform_for(split),
            "constant_scale": self.constant_scale,
            "no_data_replace": self.no_data_replace,
            "no_label_replace": self.no_label_replace,
            "use_metadata": self.use_metadata,
        }
