"""BioMassters: monthly Sentinel-1/2 chips over Finnish forests with LiDAR above-ground biomass targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from terratorch.datasets.named_base import (
    band_positions,
    check_split,
    compose_named_transforms,
    require_dir,
    require_file,
    to_tensors,
)

_NAME = "BioMasstersNonGeo"


class BioMasstersNonGeo(Dataset):
    """The BioMassters dataset in its original layout.

    ``<root>/<metadata_filename>`` (columns ``filename``, ``chip_id``, ``satellite``, ``split``,
    ``month``, ``corresponding_agbm``; optional ``cloud_percentage``, ``red_mean``,
    ``corrupt_values``), features ``<root>/{train,test}_features/<chip>_<S1|S2>_<MM>.tif`` and
    targets ``<root>/{train,test}_agbm/<chip>_agbm.tif``.

    Without ``as_time_series`` every (chip, month) with an image of each sensor is a sample
    ``(C, H, W)``; with it every chip is a sample ``(C, T, H, W)``. One sensor gives ``image``,
    two give ``S1`` and ``S2`` keys. The target is ``mask`` ``(H, W)`` float (biomass in t/ha).

    Sentinel-1 bands are returned in linear power (``10 ** (dB / 10)``), with the radar vegetation
    index ``RVI = 4 VH / (VV + VH)`` for ``RVI_Asc``/``RVI_Desc``; the datamodule's statistics are
    for these linear values. The reference truncates the dB values to integers first and returns
    dB instead of linear values unless an RVI band is requested; neither is kept.

    Args:
        root: the dataset root.
        split: ``train`` or ``test``.
        bands: per-sensor band lists (``{"S1": [...], "S2": [...]}``) or one list for a single sensor.
        transform: albumentations transforms (one sensor: applied to image and mask; two sensors:
            a dict sensor -> transforms applied to that sensor's image).
        mask_mean, mask_std: target statistics, kept for the reference's signature (targets are
            returned unnormalised, as there).
        sensors: ``S1`` and/or ``S2``.
        as_time_series: one sample per chip with every month stacked.
        metadata_filename: the metadata CSV under ``root``.
        max_cloud_percentage, max_red_mean: drop rows above these values (when the column exists).
        include_corrupt: keep rows flagged in ``corrupt_values``.
        subset: fraction of the training samples to keep (random, ``seed``).
        seed: seed of ``subset``.
        use_four_frames: keep at most four frames per chip (least cloudy first when known).
    """

    S1_BAND_NAMES = ["VV_Asc", "VH_Asc", "VV_Desc", "VH_Desc", "RVI_Asc", "RVI_Desc"]
    S2_BAND_NAMES = [
        "BLUE",
        "GREEN",
        "RED",
        "RED_EDGE_1",
        "RED_EDGE_2",
        "RED_EDGE_3",
        "NIR_BROAD",
        "NIR_NARROW",
        "SWIR_1",
        "SWIR_2",
        "CLOUD_PROBABILITY",
    ]
    all_band_names = {"S1": S1_BAND_NAMES, "S2": S2_BAND_NAMES}
    rgb_bands = {"S1": [], "S2": ["RED", "GREEN", "BLUE"]}
    valid_splits = ("train", "test")
    valid_sensors = ("S1", "S2")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    default_metadata_filename = "The_BioMassters_-_features_metadata.csv.csv"

    def __init__(
        self,
        root: str = "data",
        split: str = "train",
        bands: dict[str, Sequence[str]] | Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
        mask_mean: float | None = 63.4584,
        mask_std: float | None = 72.21242,
        sensors: Sequence[str] = ("S1", "S2"),
        as_time_series: bool = False,
        metadata_filename: str = default_metadata_filename,
        max_cloud_percentage: float | None = None,
        max_red_mean: float | None = None,
        include_corrupt: bool = True,
        subset: float = 1,
        seed: int = 42,
        use_four_frames: bool = False,
    ) -> None:
        super().__init__()
        import pandas as pd

        check_split(split, self.valid_splits, _NAME)
        self.root = root
        self.split = split
        self.sensors = list(sensors)
        unknown = [s for s in self.sensors if s not in self.valid_sensors]
        if unknown or not self.sensors:
            raise ValueError(
                f"{_NAME}: sensors {self.sensors} must be a non-empty subset of {list(self.valid_sensors)}"
            )
        if not isinstance(bands, dict):
            bands = {self.sensors[0]: list(bands)}
        missing = [s for s in self.sensors if s not in bands]
        if missing:
            raise ValueError(
                f"{_NAME}: bands has no list for sensor(s) {missing}; give bands as {{sensor: [...]}}"
            )
        self.bands = {s: list(bands[s]) for s in self.sensors}
        self.band_indices = {
            s: band_positions(self.bands[s], self.all_band_names[s], f"{_NAME} ({s})") for s in self.sensors
        }
        self.mask_mean = mask_mean
        self.mask_std = mask_std
        self.as_time_series = as_time_series
        self.metadata_filename = metadata_filename
        self.max_cloud_percentage = max_cloud_percentage
        self.max_red_mean = max_red_mean
        self.include_corrupt = include_corrupt
        self.subset = subset
        self.seed = seed
        self.use_four_frames = use_four_frames
        self.transform = transform

        root_path = Path(root)
        self.feature_dir = require_dir(root_path / f"{split}_features", _NAME, f"{split} features")
        self.target_dir = root_path / f"{split}_agbm"
        table = pd.read_csv(require_file(root_path / metadata_filename, _NAME, "metadata CSV"))
        needed = ["filename", "chip_id", "satellite", "split", "month", "corresponding_agbm"]
        absent = [c for c in needed if c not in table.columns]
        if absent:
            raise ValueError(
                f"{_NAME}: the metadata CSV lacks column(s) {absent}; it has {list(table.columns)}"
            )
        table = table[table["satellite"].isin(self.sensors) & (table["split"] == split)]
        table = self._filter_rows(table)
        table = self._subsample(table)
        table = table.assign(num_month=table["filename"].map(_month_of))
        if as_time_series:
            table = table.assign(num_index=table.groupby("chip_id").ngroup())
        else:
            counts = table.groupby(["chip_id", "month"])["satellite"].nunique()
            complete = counts[counts == len(self.sensors)].reset_index()[["chip_id", "month"]]
            table = table.merge(complete, on=["chip_id", "month"], how="inner")
            table = table.assign(num_index=table.groupby(["chip_id", "month"]).ngroup())
        if use_four_frames:
            order = (
                ["chip_id", "cloud_percentage"]
                if "cloud_percentage" in table.columns
                else ["chip_id", "num_month"]
            )
            table = table.sort_values(order).groupby("chip_id").head(4).reset_index(drop=True)
        self.df = table
        self._groups = [group for _, group in table.groupby("num_index", sort=True)]

    def _filter_rows(self, table: Any) -> Any:
        if self.max_cloud_percentage is not None and "cloud_percentage" in table.columns:
            table = table[table["cloud_percentage"] <= self.max_cloud_percentage]
        if self.max_red_mean is not None and "red_mean" in table.columns:
            table = table[table["red_mean"] <= self.max_red_mean]
        if not self.include_corrupt and "corrupt_values" in table.columns:
            table = table[~table["corrupt_values"].astype(bool)]
        return table

    def _subsample(self, table: Any) -> Any:
        if self.split != "train" or self.subset >= 1.0:
            return table
        keys = ["chip_id"] if self.as_time_series else ["chip_id", "month"]
        groups = table.drop_duplicates(keys)[keys]
        chosen = groups.sample(n=int(len(groups) * self.subset), random_state=self.seed)
        return table.merge(chosen, on=keys).reset_index(drop=True)

    def __len__(self) -> int:
        return len(self._groups)

    def _read(self, name: str) -> np.ndarray:
        import rasterio

        from terratorch.io.geotiff import reading

        path = require_file(self.feature_dir / name, _NAME, "feature image")
        with reading(path), rasterio.open(path) as src:
            return src.read().astype(np.float32)

    def _sensor_image(self, sensor: str, names: list[str]) -> np.ndarray:
        """``(H, W, C)`` (or ``(T, H, W, C)`` as a time series) of one sensor's selected bands."""
        frames = [self._read(name) for name in names]
        data = np.stack(frames) if self.as_time_series else np.concatenate(frames)[None]  # (T, C, H, W)
        if sensor == "S1":
            data = _s1_linear_with_rvi(data)
        image = np.moveaxis(data, 1, -1)[..., self.band_indices[sensor]]
        return image if self.as_time_series else image[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        rows = self._groups[index].sort_values(["satellite", "num_month"])
        names = rows["filename"].tolist()
        images = {s: self._sensor_image(s, [n for n in names if s in n]) for s in self.sensors}
        target_name = rows["corresponding_agbm"].iloc[0]
        import rasterio

        from terratorch.io.geotiff import reading

        target_path = require_file(self.target_dir / target_name, _NAME, "AGBM target")
        with reading(target_path), rasterio.open(target_path) as src:
            target = np.moveaxis(src.read(), 0, -1)  # (H, W, 1)
        if len(self.sensors) == 1:
            output = to_tensors(
                compose_named_transforms(self.transform), {"image": images[self.sensors[0]], "mask": target}
            )
        else:
            output = self._multi_sensor(images, target)
        output["mask"] = output["mask"].squeeze().float()
        return output

    def _multi_sensor(self, images: dict[str, np.ndarray], target: np.ndarray) -> dict[str, Any]:
        if self.transform is not None and not isinstance(self.transform, dict):
            raise TypeError(
                f"{_NAME}: with sensors {self.sensors} give transform as a dict sensor -> transforms "
                "(each applied to that sensor's image), not one pipeline"
            )
        transforms = self.transform or {}
        output: dict[str, Any] = {}
        for sensor, image in images.items():
            output[sensor] = to_tensors(compose_named_transforms(transforms.get(sensor)), {"image": image})[
                "image"
            ]
        output["mask"] = to_tensors(None, {"mask": target})["mask"]
        return output


def _month_of(filename: str) -> int:
    """``<chip>_<sensor>_<MM>.tif`` -> ``MM`` (0 is September)."""
    try:
        return int(filename.split("_")[2].split(".")[0])
    except (IndexError, ValueError) as error:
        raise ValueError(
            f"{_NAME}: feature file name {filename!r} is not '<chip>_<S1|S2>_<MM>.tif'"
        ) from error


def _s1_linear_with_rvi(db: np.ndarray) -> np.ndarray:
    """``(T, 4, H, W)`` backscatter in dB -> ``(T, 6, H, W)`` linear VV/VH asc/desc + RVI asc/desc."""
    if db.shape[1] < 4:
        raise ValueError(
            f"{_NAME}: Sentinel-1 files need 4 bands (VV/VH ascending/descending), got {db.shape[1]}"
        )
    linear = np.power(10.0, db[:, :4] / 10.0, dtype=np.float32)
    rvi = [4 * linear[:, vh] / (linear[:, vv] + linear[:, vh] + 1e-6) for vv, vh in ((0, 1), (2, 3))]
    return np.concatenate([linear, np.stack(rvi, axis=1)], axis=1).astype(np.float32)
