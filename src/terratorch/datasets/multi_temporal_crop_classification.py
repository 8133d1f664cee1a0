"""HLS multi-temporal crop classification chips (3 time steps x 6 bands, 13 crop classes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.named_base import (
    band_positions,
    center_pixel_coords,
    check_split,
    compose_named_transforms,
    keep_listed,
    read_lines,
    read_masked,
    require_dir,
    require_file,
    to_tensors,
)

_NAME = "MultiTemporalCropClassification"


class MultiTemporalCropClassification(Dataset):
    """The multi-temporal crop classification chips in their Hugging Face layout.

    ``<data_root>/{training,validation}_chips/<chip>_merged.tif`` hold ``3 x 6`` bands (time-major),
    ``<chip>.mask.tif`` the classes 1..13, and ``{training,validation}_data.txt`` list the chip ids
    of each split. Images and masks are paired by chip id.

    Args:
        data_root: the dataset root.
        split: ``train`` or ``val`` (the dataset has no test split).
        bands: bands to return per time step, a subset of :attr:`all_band_names`.
        transform: albumentations transforms for image ``(T, H, W, C)`` (``(H, W, T*C)`` without
            ``expand_temporal_dimension``) and mask; None converts to tensors only.
        no_data_replace: value for nodata/NaN image pixels (None keeps NaN).
        no_label_replace: value for nodata/NaN label pixels (None keeps NaN).
        expand_temporal_dimension: return ``(C, T, H, W)`` instead of ``(T*C, H, W)``.
        reduce_zero_label: subtract 1 from the labels so that classes start at 0.
        use_metadata: also return ``location_coords`` (lat, lon) and ``temporal_coords`` ``(3, 2)``
            (year, day of year - 1) from ``metadata_file_name``.
        metadata_file_name: CSV with ``chip_id`` and the three date columns.

    The reference reshapes the time axis with ``len(bands)`` channels and then picks bands, which
    mixes time steps when ``bands`` is a subset; here the 6 stored bands are unstacked first.
    """

    all_band_names = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    class_names = (
        "Natural Vegetation",
        "Forest",
        "Corn",
        "Soybeans",
        "Wetlands",
        "Developed / Barren",
        "Open Water",
        "Winter Wheat",
        "Alfalfa",
        "Fallow / Idle Cropland",
        "Cotton",
        "Sorghum",
        "Other",
    )
    rgb_bands = ("RED", "GREEN", "BLUE")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    num_classes = 13
    time_steps = 3
    splits = {"train": "training", "val": "validation"}
    col_name = "chip_id"
    date_columns = ["first_img_date", "middle_img_date", "last_img_date"]

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        bands: Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: int | None = None,
        expand_temporal_dimension: bool = True,
        reduce_zero_label: bool = True,
        use_metadata: bool = False,
        metadata_file_name: str = "chips_df.csv",
    ) -> None:
        super().__init__()
        check_split(split, self.splits, _NAME)
        self.split = split
        self.bands = list(bands)
        self.band_indices = np.asarray(band_positions(self.bands, self.all_band_names, _NAME))
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.expand_temporal_dimension = expand_temporal_dimension
        self.reduce_zero_label = reduce_zero_label
        self.use_metadata = use_metadata
        self.metadata_file_name = metadata_file_name
        self.data_root = Path(data_root)
        self.transform = compose_named_transforms(transform)

        split_name = self.splits[split]
        chip_dir = require_dir(self.data_root / f"{split_name}_chips", _NAME, f"{split} chips")
        entries = read_lines(self.data_root / f"{split_name}_data.txt", _NAME, f"{split} split file")
        self.image_files = keep_listed(chip_dir.glob("*_merged.tif"), entries)
        self.segmentation_mask_files = []
        for image in self.image_files:
            mask = image.with_name(image.name.removesuffix("_merged.tif") + ".mask.tif")
            require_file(mask, _NAME, f"mask of {image.name}")
            self.segmentation_mask_files.append(mask)
        self.dates = self._read_dates() if use_metadata else None

    def _read_dates(self) -> dict[str, torch.Tensor]:
        """``chip_id -> (3, 2)`` tensor of (year, day of year - 1) for the chips of this split."""
        import pandas as pd

        path = require_file(
            self.data_root / self.metadata_file_name, _NAME, "metadata CSV (use_metadata=True)"
        )
        table = pd.read_csv(path)
        missing = [c for c in [self.col_name, *self.date_columns] if c not in table.columns]
        if missing:
            raise ValueError(f"{_NAME}: {path} lacks the column(s) {missing}; it has {list(table.columns)}")
        rows = table.drop_duplicates(self.col_name, keep="first").set_index(self.col_name)
        dates = {}
        for image in self.image_files:
            chip = image.name.removesuffix("_merged.tif")
            if chip not in rows.index:
                raise KeyError(f"{_NAME}: chip {chip!r} has no row in {path} (column {self.col_name!r})")
            stamps = [pd.to_datetime(rows.loc[chip, column]) for column in self.date_columns]
            dates[chip] = torch.tensor([[d.year, d.day_of_year - 1] for d in stamps], dtype=torch.float32)
        return dates

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.image_files[index]
        stored, meta = read_masked(path, self.no_data_replace)
        steps = stored.shape[0] // len(self.all_band_names)
        if steps * len(self.all_band_names) != stored.shape[0]:
            raise ValueError(
                f"{_NAME}: {path} has {stored.shape[0]} bands, not a multiple of the "
                f"{len(self.all_band_names)} bands {list(self.all_band_names)} per time step"
            )
        frames = stored.reshape(steps, len(self.all_band_names), *stored.shape[1:])[:, self.band_indices]
        image = np.moveaxis(frames, 1, -1)  # (T, H, W, C)
        if not self.expand_temporal_dimension:
            image = np.moveaxis(image, 0, -2).reshape(*image.shape[1:3], -1)  # (H, W, T*C), time-major
        mask, _ = read_masked(self.segmentation_mask_files[index], self.no_label_replace)
        mask = mask[0]
        if self.reduce_zero_label:
            mask = mask - 1
        output = to_tensors(self.transform, {"image": image.astype(np.float32), "mask": mask})
        output["mask"] = output["mask"].long()
        if self.use_metadata:
            output["location_coords"] = center_pixel_coords(meta, to_wgs84=True)
            output["temporal_coords"] = self.dates[path.name.removesuffix("_merged.tif")]
        return output
