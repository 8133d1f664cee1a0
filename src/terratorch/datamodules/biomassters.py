"""Datamodule of the BioMassters above-ground biomass dataset (Sentinel-1 and/or Sentinel-2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.biomassters import BioMasstersNonGeo

# Statistics of the target (AGBM, t/ha), of Sentinel-1 in linear power and of Sentinel-2 as stored.
MEANS = {
    "AGBM": 63.4584,
    "S1": {
        "VV_Asc": 0.08871397,
        "VH_Asc": 0.02172604,
        "VV_Desc": 0.08556002,
        "VH_Desc": 0.02795591,
        "RVI_Asc": 0.75507677,
        "RVI_Desc": 0.6600374,
    },
    "S2": {
        "BLUE": 1633.0802,
        "GREEN": 1610.0035,
        "RED": 1599.557,
        "RED_EDGE_1": 1916.7083,
        "RED_EDGE_2": 2478.8325,
        "RED_EDGE_3": 2591.326,
        "NIR_BROAD": 2738.5837,
        "NIR_NARROW": 2685.8281,
        "SWIR_1": 1023.90204,
        "SWIR_2": 696.48755,
        "CLOUD_PROBABILITY": 21.177078,
    },
}
STDS = {
    "AGBM": 72.21242,
    "S1": {
        "VV_Asc": 0.16714208,
        "VH_Asc": 0.04876742,
        "VV_Desc": 0.19260046,
        "VH_Desc": 0.10272296,
        "RVI_Asc": 0.24945821,
        "RVI_Desc": 0.3590119,
    },
    "S2": {
        "BLUE": 2499.7146,
        "GREEN": 2308.5298,
        "RED": 2388.2268,
        "RED_EDGE_1": 2389.6375,
        "RED_EDGE_2": 2209.6467,
        "RED_EDGE_3": 2104.572,
        "NIR_BROAD": 2194.209,
        "NIR_NARROW": 2031.7762,
        "SWIR_1": 934.0556,
        "SWIR_2": 759.8444,
        "CLOUD_PROBABILITY": 49.352486,
    },
}


class BioMasstersNonGeoDataModule(NamedNonGeoDataModule):
    """Biomass regression: ``train`` for training, the dataset's ``test`` split for val, test and predict.

    With one sensor batches hold ``image``; with both they hold ``S1`` and ``S2``, each normalised
    with its own statistics (the reference builds that normaliser but never assigns it).

    Args:
        data_root: the dataset root.
        batch_size, num_workers, drop_last: loader settings.
        bands: ``{sensor: [bands]}``, or one list for the first of ``sensors``.
        train_transform, val_transform, test_transform, predict_transform: albumentations transforms
            (two sensors: dicts sensor -> transforms).
        aug: a callable ``batch -> batch`` used instead of the normalisation.
        sensors, as_time_series, metadata_filename, max_cloud_percentage, max_red_mean,
            include_corrupt, subset, seed, use_four_frames: see the dataset.
        kwargs: ignored with a warning.
    """

    dataset_class = BioMasstersNonGeo
    dataset_splits = {"train": "train", "val": "test", "test": "test", "predict": "test"}
    default_metadata_filename = BioMasstersNonGeo.default_metadata_filename

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: dict[str, Sequence[str]] | Sequence[str] = BioMasstersNonGeo.all_band_names,
        train_transform: TransformList | dict[str, TransformList] = None,
        val_transform: TransformList | dict[str, TransformList] = None,
        test_transform: TransformList | dict[str, TransformList] = None,
        predict_transform: TransformList | dict[str, TransformList] = None,
        aug: Any = None,
        drop_last: bool = True,
        sensors: Sequence[str] = ("S1", "S2"),
        as_time_series: bool = False,
        metadata_filename: str = default_metadata_filename,
        max_cloud_percentage: float | None = None,
        max_red_mean: float | None = None,
        include_corrupt: bool = True,
        subset: float = 1,
        seed: int = 42,
        use_four_frames: bool = False,
        **kwargs: Any,
    ) -> None:
        self.sensors = list(sensors)
        self.bands = dict(bands) if isinstance(bands, dict) else {self.sensors[0]: list(bands)}
        missing = [s for s in self.sensors if s not in self.bands or s not in MEANS]
        if missing:
            raise ValueError(
                f"BioMasstersNonGeoDataModule: no bands for sensor(s) {missing}; sensors must be among "
                f"{list(BioMasstersNonGeo.valid_sensors)} and bands a dict sensor -> band list"
            )
        self.means = {
            s: band_statistics(MEANS[s], self.bands[s], "BioMasstersNonGeoDataModule", "mean")
            for s in self.sensors
        }
        self.stds = {
            s: band_statistics(STDS[s], self.bands[s], "BioMasstersNonGeoDataModule", "std")
            for s in self.sensors
        }
        keys = {s: ("image" if len(self.sensors) == 1 else s) for s in self.sensors}
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
            normalizers={keys[s]: ChannelNormalize(self.means[s], self.stds[s]) for s in self.sensors},
            aug=aug,
            **kwargs,
        )
        self.data_root = data_root
        self.mask_mean = MEANS["AGBM"]
        self.mask_std = STDS["AGBM"]
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.test_transform = test_transform
        self.predict_transform = predict_transform
        self.as_time_series = as_time_series
        self.metadata_filename = metadata_filename
        self.max_cloud_percentage = max_cloud_percentage
        self.max_red_mean = max_red_mean
        self.include_corrupt = include_corrupt
        self.subset = subset
        self.seed = seed
        self.use_four_frames = use_four_frames

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {
            "root": self.data_root,
            "transform": self.transform_for(split),
            "bands": self.bands,
            "mask_mean": self.mask_mean,
            "mask_std": self.mask_std,
            "sensors": self.sensors,
            "as_time_series": self.as_time_series,
            "metadata_filename": self.metadata_filename,
            "max_cloud_percentage": self.max_cloud_percentage,
            "max_red_mean": self.max_red_mean,
            "include_corrupt": self.include_corrupt,
            "subset": self.subset,
            "seed": self.seed,
            "use_four_frames": self.use_four_frames,
        }
