"""HLS burn intensity chips: pre-, during- and post-fire images, 5 burn severity classes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.named_base import (
    band_positions,
    check_split,
    compose_named_transforms,
    read_lines,
    read_masked,
    require_file,
    to_tensors,
)

_NAME = "BurnIntensityNonGeo"


class BurnIntensityNonGeo(Dataset):
    """The burn intensity dataset: ``<data_root>/{pre,during,post}/HLS_<case>.tif`` and ``pre/BS_<case>.tif``.

    ``{train,val}.txt`` list the image file names of each split; the CSV (``BS_files_raw.csv``,
    or ``BS_files_with_less_than_25_percent_zeros.csv`` without ``use_full_data``) lists the cases
    (``Case_Name``) to keep. Images are stacked over the three time steps: ``(C, 3, H, W)``.

    Args:
        data_root: the dataset root.
        split: ``train`` or ``val``.
        bands: bands to return, a subset of :attr:`all_band_names`.
        transform: albumentations transforms for image ``(T, H, W, C)`` and mask.
        use_full_data: use every case, or only those with less than 25 % zeros.
        no_data_replace: value for nodata/NaN image pixels (None keeps NaN).
        no_label_replace: value for nodata/NaN label pixels (None keeps NaN).
        use_metadata: also return ``location_coords``: the image centre (y, x) in the raster's CRS.
    """

    all_band_names = ("BLUE", "GREEN", "RED", "NIR", "SWIR_1", "SWIR_2")
    rgb_bands = ("RED", "GREEN", "BLUE")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    class_names = ("No burn", "Unburned to Very Low", "Low Severity", "Moderate Severity", "High Severity")
    CSV_FILES = {"limited": "BS_files_with_less_than_25_percent_zeros.csv", "full": "BS_files_raw.csv"}
    num_classes = 5
    splits = {"train": "train", "val": "val"}
    time_steps = ["pre", "during", "post"]

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        bands: Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
        use_full_data: bool = True,
        no_data_replace: float | None = 0.0001,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
    ) -> None:
        super().__init__()
        import pandas as pd

        check_split(split, self.splits, _NAME)
        self.split = split
        self.bands = list(bands)
        self.band_indices = np.asarray(band_positions(self.bands, self.all_band_names, _NAME))
        self.use_metadata = use_metadata
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.data_root = Path(data_root)
        self.transform = compose_named_transforms(transform)

        csv = require_file(
            self.data_root / self.CSV_FILES["full" if use_full_data else "limited"], _NAME, "case list"
        )
        table = pd.read_csv(csv)
        if "Case_Name" not in table.columns:
            raise ValueError(f"{_NAME}: {csv} has no 'Case_Name' column; it has {list(table.columns)}")
        cases = set(table["Case_Name"].astype(str))
        names = read_lines(self.data_root / f"{self.splits[split]}.txt", _NAME, f"{split} split file")
        self.samples = [
            {
                "image_files": [str(self.data_root / step / name) for step in self.time_steps],
                "mask_file": str(self.data_root / "pre" / name.replace("HLS_", "BS_")),
                "casename": _casename(name),
            }
            for name in names
            if _casename(name) in cases
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        frames, metas = [], []
        for image_file in sample["image_files"]:
            data, meta = read_masked(require_file(Path(image_file), _NAME, "image"), self.no_data_replace)
            frames.append(np.moveaxis(data, 0, -1)[..., self.band_indices])
            metas.append(meta)
        mask, _ = read_masked(require_file(Path(sample["mask_file"]), _NAME, "mask"), self.no_label_replace)
        image = np.stack(frames, axis=0).astype(np.float32)  # (T, H, W, C)
        output = to_tensors(self.transform, {"image": image, "mask": mask[0]})
        output["mask"] = output["mask"].long()
        if self.use_metadata:
            output["location_coords"] = _image_centre(metas[0])
        return output


def _casename(file_name: str) -> str:
    """``HLS_<case>.tif`` / ``BS_<case>.tif`` -> ``<case>``."""
    return os.path.splitext(os.path.basename(file_name))[0].replace("HLS_", "").replace("BS_", "")


def _image_centre(meta: dict[str, Any]) -> torch.Tensor:
    """``(y, x)`` of the image centre (a pixel corner for even sizes), as the reference computes it."""
    transform = meta["transform"]
    x = transform.c + meta["width"] / 2 * transform.a
    y = transform.f - meta["height"] / 2 * abs(transform.e)
    return torch.tensor([y, x], dtype=torch.float32)
