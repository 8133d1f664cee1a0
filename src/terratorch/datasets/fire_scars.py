"""HLS burn scars chips (6 HLS bands, burned / not burned)."""

from __future__ import annotations

import re
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
    read_masked,
    require_dir,
    require_file,
    to_tensors,
)

_NAME = "FireScarsNonGeo"
_DATE = re.compile(r"subsetted_512x512_HLS\.S30\.T[0-9A-Z]{5}\.(?P<date>[0-9]+)\.v1\.4_merged\.tif")


class FireScarsNonGeo(Dataset):
    """HLS burn scars: ``<data_root>/{training,validation}/<chip>_merged.tif`` and ``<chip>.mask.tif``.

    Images and masks are paired by chip name (the reference pairs two sorted lists by position).

    Args:
        data_root: the dataset root.
        split: ``train`` or ``val``.
        bands: bands to return, a subset of :attr:`all_band_names`.
        transform: albumentations transforms applied to image ``(H, W, C)`` and mask.
        no_data_replace: value for nodata/NaN image pixels (None keeps NaN).
        no_label_replace: value for nodata/NaN label pixels (None keeps NaN).
        use_metadata: also return ``location_coords`` (lat, lon of the centre pixel) and
            ``temporal_coords`` ``(1, 2)`` (year, day of year as written in the file name).
    """

    all_band_names = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    rgb_bands = ("RED", "GREEN", "BLUE")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    num_classes = 2
    splits = {"train": "training", "val": "validation"}

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        bands: Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
        no_data_replace: float | None = 0,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
    ) -> None:
        super().__init__()
        check_split(split, self.splits, _NAME)
        self.split = split
        self.bands = list(bands)
        self.band_indices = np.asarray(band_positions(self.bands, self.all_band_names, _NAME))
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.use_metadata = use_metadata
        self.data_root = Path(data_root)
        self.transform = compose_named_transforms(transform)
        chip_dir = require_dir(self.data_root / self.splits[split], _NAME, f"{split} chips")
        self.image_files = sorted(chip_dir.glob("*_merged.tif"))
        if not self.image_files:
            raise FileNotFoundError(f"{_NAME}: no *_merged.tif chips in {str(chip_dir)!r}")
        self.segmentation_mask_files = [
            require_file(
                p.with_name(p.name.removesuffix("_merged.tif") + ".mask.tif"), _NAME, f"mask of {p.name}"
            )
            for p in self.image_files
        ]

    def __len__(self) -> int:
        return len(self.image_files)

    def _temporal_coords(self, path: Path) -> torch.Tensor:
        match = _DATE.match(path.name)
        if match is None:
            raise ValueError(
                f"{_NAME}: cannot read the acquisition date from {path.name!r} (use_metadata=True); expected "
                "'subsetted_512x512_HLS.S30.T<tile>.<YYYYDDD>.v1.4_merged.tif'"
            )
        date = match.group("date")
        return torch.tensor([[int(date[:4]), int(date[4:])]], dtype=torch.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.image_files[index]
        image, meta = read_masked(path, self.no_data_replace)
        image = np.moveaxis(image, 0, -1)[..., self.band_indices]
        mask, _ = read_masked(self.segmentation_mask_files[index], self.no_label_replace)
        output = to_tensors(self.transform, {"image": image.astype(np.float32), "mask": mask[0]})
        output["mask"] = output["mask"].long()
        if self.use_metadata:
            output["location_coords"] = center_pixel_coords(meta, to_wgs84=True)
            output["temporal_coords"] = self._temporal_coords(path)
        return output
