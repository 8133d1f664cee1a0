"""Sen1Floods11 hand-labelled flood chips (Sentinel-2, 13 bands, water / no water)."""

from __future__ import annotations

import datetime
import json
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

_NAME = "Sen1Floods11NonGeo"
_DEFAULT_DATE = (1998, 10, 13)  # the reference's date for locations without exactly one metadata row


class Sen1Floods11NonGeo(Dataset):
    """The hand-labelled Sen1Floods11 chips in the layout of its v1.1 release.

    ``<data_root>/v1.1/data/flood_events/HandLabeled/S2Hand/<id>_S2Hand.tif`` (13 bands),
    ``.../LabelHand/<id>_LabelHand.tif`` (1 water, 0 dry, -1 or nodata unlabelled) and split files
    ``v1.1/splits/flood_handlabeled/flood_{train,valid,test}_data.txt`` listing chip ids. Images and
    labels are paired by chip id (the reference pairs two sorted lists by position).

    Args:
        data_root: the dataset root (holding ``v1.1``).
        split: ``train``, ``val`` or ``test``.
        bands: bands to return, a subset of :attr:`all_band_names`.
        transform: albumentations transforms (list or ``Compose``) applied to image ``(H, W, C)``
            and mask; None converts to tensors only.
        constant_scale: factor applied to the pixel values (reflectance x 10000 -> reflectance).
        no_data_replace: value for nodata/NaN image pixels (None keeps NaN).
        no_label_replace: value for nodata/NaN label pixels (None keeps NaN).
        use_metadata: also return ``location_coords`` ``(2,)`` (lat, lon of the centre pixel) and
            ``temporal_coords`` ``(1, 2)`` (year, day of year - 1) from
            ``v1.1/Sen1Floods11_Metadata.geojson``.
    """

    all_band_names = (
        "COASTAL_AEROSOL",
        "BLUE",
        "GREEN",
        "RED",
        "RED_EDGE_1",
        "RED_EDGE_2",
        "RED_EDGE_3",
        "NIR_BROAD",
        "NIR_NARROW",
        "WATER_VAPOR",
        "CIRRUS",
        "SWIR_1",
        "SWIR_2",
    )
    rgb_bands = ("RED", "GREEN", "BLUE")
    BAND_SETS = {"all": all_band_names, "rgb": rgb_bands}
    num_classes = 2
    splits = {"train": "train", "val": "valid", "test": "test"}
    data_dir = "v1.1/data/flood_events/HandLabeled/S2Hand"
    label_dir = "v1.1/data/flood_events/HandLabeled/LabelHand"
    split_dir = "v1.1/splits/flood_handlabeled"
    metadata_file = "v1.1/Sen1Floods11_Metadata.geojson"

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        bands: Sequence[str] = BAND_SETS["all"],
        transform: Any = None,
        constant_scale: float = 0.0001,
        no_data_replace: float | None = 0,
        no_label_replace: int | None = -1,
        use_metadata: bool = False,
    ) -> None:
        super().__init__()
        check_split(split, self.splits, _NAME)
        self.split = split
        self.bands = list(bands)
        self.band_indices = np.asarray(band_positions(self.bands, self.all_band_names, _NAME))
        self.constant_scale = constant_scale
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.use_metadata = use_metadata
        self.data_root = Path(data_root)
        self.transform = compose_named_transforms(transform)

        image_dir = require_dir(self.data_root / self.data_dir, _NAME, "S2Hand image")
        label_dir = require_dir(self.data_root / self.label_dir, _NAME, "LabelHand label")
        split_file = self.data_root / self.split_dir / f"flood_{self.splits[split]}_data.txt"
        entries = read_lines(split_file, _NAME, f"{split} split file")
        self.image_files = keep_listed(image_dir.glob("*_S2Hand.tif"), entries)
        labels = {p.name.removesuffix("_LabelHand.tif"): p for p in label_dir.glob("*_LabelHand.tif")}
        unmatched = [p.name for p in self.image_files if p.name.removesuffix("_S2Hand.tif") not in labels]
        if unmatched:
            raise FileNotFoundError(
                f"{_NAME}: no <id>_LabelHand.tif in {str(label_dir)!r} for {unmatched[:5]}"
            )
        self.segmentation_mask_files = [labels[p.name.removesuffix("_S2Hand.tif")] for p in self.image_files]
        self.metadata = self._read_metadata() if use_metadata else None

    def _read_metadata(self) -> dict[str, list[str]]:
        """Map each location to its ``s2_date`` values (one per metadata feature)."""
        path = require_file(self.data_root / self.metadata_file, _NAME, "metadata file (use_metadata=True)")
        dates: dict[str, list[str]] = {}
        for feature in json.loads(path.read_text()).get("features", []):
            props = feature.get("properties", {})
            dates.setdefault(str(props.get("location")), []).append(props.get("s2_date"))
        return dates

    def __len__(self) -> int:
        return len(self.image_files)

    def _temporal_coords(self, path: Path) -> torch.Tensor:
        found = self.metadata.get(path.name.split("_")[0], [])
        date = _parse_date(found[0]) if len(found) == 1 else datetime.date(*_DEFAULT_DATE)
        return torch.tensor([[date.year, date.timetuple().tm_yday - 1]], dtype=torch.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.image_files[index]
        image, meta = read_masked(path, self.no_data_replace)
        image = np.moveaxis(image, 0, -1)[..., self.band_indices]
        mask, _ = read_masked(self.segmentation_mask_files[index], self.no_label_replace)
        sample = {"image": image.astype(np.float32) * self.constant_scale, "mask": mask[0]}
        output = to_tensors(self.transform, sample)
        output["mask"] = output["mask"].long()
        if self.use_metadata:
            output["location_coords"] = center_pixel_coords(meta)
            output["temporal_coords"] = self._temporal_coords(path)
        return output


def _parse_date(text: str) -> datetime.date:
    """An ISO date (``2016-08-12``, optionally with a time); other spellings go through pandas."""
    try:
        return datetime.datetime.fromisoformat(str(text)).date()
    except ValueError:
        import pandas as pd

        return pd.to_datetime(text).date()
