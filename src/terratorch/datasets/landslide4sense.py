"""Landslide4Sense patches (14 Sentinel-2 + slope + DEM bands in HDF5, landslide / no landslide)."""

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
    to_tensors,
)

_NAME = "Landslide4SenseNonGeo"


class Landslide4SenseNonGeo(Dataset):
    """Landslide4Sense: ``<data_root>/images/<split>/image_<n>.h5`` (dataset ``img``, ``(H, W, 14)``) and
    ``annotations/<split>/mask_<n>.h5`` (dataset ``mask``, ``(H, W)``), split folders ``train``,
    ``validation``, ``test``.

    Images and masks are paired by ``<n>`` (the reference pairs two sorted lists by position).

    Args:
        data_root: the dataset root.
        split: ``train``, ``val`` or ``test``.
        bands: bands to return, a subset of :attr:`all_band_names` (note ``"COASTAL AEROSOL"``
            with a space, as the reference spells it).
        transform: albumentations transforms applied to image ``(H, W, C)`` and mask.
    """

    all_band_names = (
        "COASTAL AEROSOL",
        "BLUE",
        "GREEN",
        "RED",
        "RED_EDGE_1",
        "RED_EDGE_2",
        "RED_EDGE_3",
        "NIR_BROAD",
        "WATER_VAPOR",
        "CIRRUS",
        "SWIR_1",
        "SWIR_2",
        "SLOPE",
        "DEM",
    )
    rgb_bands = ("RED", "GREEN", "BLUE")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    splits = {"train": "train", "val": "validation", "test": "test"}

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        bands: Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
    ) -> None:
        super().__init__()
        check_split(split, self.splits, _NAME)
        self.split = split
        self.bands = list(bands)
        self.band_indices = band_positions(self.bands, self.all_band_names, _NAME)
        self.data_directory = Path(data_root)
        self.transform = compose_named_transforms(transform)
        name = self.splits[split]
        images_dir = require_dir(self.data_directory / "images" / name, _NAME, f"{split} images")
        masks_dir = require_dir(self.data_directory / "annotations" / name, _NAME, f"{split} annotations")
        self.image_files = sorted(images_dir.glob("image_*.h5"))
        if not self.image_files:
            raise FileNotFoundError(f"{_NAME}: no image_*.h5 files in {str(images_dir)!r}")
        masks = {p.name.removeprefix("mask_"): p for p in masks_dir.glob("mask_*.h5")}
        missing = [p.name for p in self.image_files if p.name.removeprefix("image_") not in masks]
        if missing:
            raise FileNotFoundError(
                f"{_NAME}: no matching mask_<n>.h5 in {str(masks_dir)!r} for {missing[:5]}"
            )
        self.mask_files = [masks[p.name.removeprefix("image_")] for p in self.image_files]

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import h5py

        with h5py.File(self.image_files[index], "r") as h5file:
            image = np.asarray(h5file["img"])
        if image.ndim != 3 or image.shape[-1] != len(self.all_band_names):
            raise ValueError(
                f"{_NAME}: {self.image_files[index]} holds 'img' of shape {image.shape}; expected "
                f"(H, W, {len(self.all_band_names)}) with bands {list(self.all_band_names)}"
            )
        with h5py.File(self.mask_files[index], "r") as h5file:
            mask = np.asarray(h5file["mask"])
        sample = {"image": image[..., self.band_indices].astype(np.float32), "mask": mask}
        output = to_tensors(self.transform, sample)
        output["mask"] = output["mask"].long()
        return output
