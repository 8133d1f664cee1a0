"""Substation: multi-temporal Sentinel-2 stacks of power substations, for segmentation or detection.

On-disk layout under ``root`` (the reference's)::

    image_stack/<name>.npz                 arr_0: (T, 13, H, W) Sentinel-2 time steps
    mask/<name>.npz                        arr_0: (H, W) class raster, 3 = substation (segmentation)
    annotations.json                       COCO boxes/polygons, category 1 = substation (detection)
    substation_meta_splits_full.csv        columns image (path ending in <name>.npz), split, id
    substation_meta_splits_geobench.csv    the same for the GEO-Bench subset

``id`` is the COCO image id of the row's image; ``split`` is ``train``, ``val`` or ``test``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.object_detection import (
    check_invalid_boxes_policy,
    check_records,
    coco_records,
    load_coco,
    plot_detection_sample,
    segmentation_masks,
)

_AGGREGATIONS = ("first", "last", "random", "concat", "median", "identity")
_SINGLE_STEP = ("first", "last", "random")
_MODES = ("segmentation", "object_detection")
_VERSIONS = {"full": "substation_meta_splits_full.csv", "geobench": "substation_meta_splits_geobench.csv"}
_SUBSTATION_CLASS = 3


class Substation(Dataset):
    """Substation dataset (TransitionZero / OpenStreetMap labels on Sentinel-2 revisits).

    Args:
        root: the dataset folder (layout in the module docstring).
        bands: band positions (0-12) to keep.
        mask_2d: segmentation masks as two channels ``(2, H, W)`` (background, substation).
        timepoint_aggregation: with ``use_timepoints``: ``concat`` (``(T*C, H, W)``), ``median``
            (``(C, H, W)``) or ``identity`` (``(T, C, H, W)``); without: ``first``, ``last`` or
            ``random`` time step.
        download, checksum: accepted for the reference's signature; downloading is not
            supported, a missing layout is an error naming the missing paths.
        transforms: callable taking and returning the sample dict.
        num_of_timepoints: time steps kept with ``use_timepoints`` (the latest ones; stacks with
            fewer steps repeat theirs cyclically).
        use_timepoints: use several time steps (see ``timepoint_aggregation``).
        mode: ``"segmentation"`` (``mask``) or ``"object_detection"`` (``boxes``, ``labels``, ``masks``).
        split: ``train``, ``val`` or ``test`` rows of the metadata CSV.
        dataset_version: ``"full"`` or ``"geobench"`` metadata CSV.
        plot_indexes: band positions (within ``bands``) shown as RGB.
        invalid_boxes: ``"error"`` (default) or ``"clip"`` for boxes outside their image.

    Raises:
        ValueError: an unknown mode, version or aggregation.
        FileNotFoundError: missing folders/files (names them).
    """

    categories = ("background", "substation")

    def __init__(
        self,
        root: str | Path,
        bands: Sequence[int],
        mask_2d: bool,
        timepoint_aggregation: str = "concat",
        download: bool = False,
        checksum: bool = False,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        num_of_timepoints: int = 4,
        use_timepoints: bool = False,
        mode: str = "segmentation",
        split: str = "train",
        dataset_version: str = "full",
        plot_indexes: Sequence[int] = (2, 1, 0),
        invalid_boxes: str = "error",
    ) -> None:
        super().__init__()
        for name, value, valid in (
            ("mode", mode, _MODES),
            ("dataset_version", dataset_version, tuple(_VERSIONS)),
            (
                "timepoint_aggregation",
                timepoint_aggregation,
                _SINGLE_STEP if not use_timepoints else _AGGREGATIONS,
            ),
        ):
            if value not in valid:
                extra = (
                    " (use_timepoints=False allows one time step only)"
                    if name == "timepoint_aggregation"
                    else ""
                )
                raise ValueError(f"Substation: {name} must be one of {list(valid)}, got {value!r}{extra}")
        self.root = Path(root)
        self.bands = list(bands)
        self.mask_2d = mask_2d
        self.timepoint_aggregation = timepoint_aggregation
        self.download = download
        self.checksum = checksum
        self.transforms = transforms
        self.num_of_timepoints = num_of_timepoints
        self.use_timepoints = use_timepoints
        self.mode = mode
        self.split = split
        self.dataset_version = dataset_version
        self.plot_indexes = list(plot_indexes)
        self.invalid_boxes = check_invalid_boxes_policy(invalid_boxes)
        self.image_dir = self.root / "image_stack"
        self.mask_dir = self.root / "mask"
        meta = self.root / _VERSIONS[dataset_version]
        needed = [self.image_dir, meta]
        needed.append(self.mask_dir if mode == "segmentation" else self.root / "annotations.json")
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"Substation: not found under root={str(self.root)!r}: {missing}; put the extracted "
                "image_stack/ (and mask/ or annotations.json) and the split CSVs there (download=True is "
                "not supported)"
            )
        with meta.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("split") == split]
        if not rows:
            raise ValueError(f"Substation: {meta} has no rows with split={split!r}")
        self.image_filenames = [Path(row["image"]).name for row in rows]
        self.image_ids = [int(row["id"]) if row.get("id") not in (None, "") else None for row in rows]
        self.records = None
        if mode == "object_detection":
            self.records = self._detection_records()

    def _detection_records(self) -> list[Any]:
        path = self.root / "annotations.json"
        by_id = {r.image_id: r for r in coco_records(load_coco(path), self.image_dir, source=str(path))}
        missing = [i for i in self.image_ids if i not in by_id]
        if missing:
            raise ValueError(
                f"Substation: image id(s) {missing[:5]} of the {self.split} split are not in {path}"
            )
        records = [by_id[i] for i in self.image_ids]
        for record, name in zip(records, self.image_filenames):
            record.path = self.image_dir / name
            if record.width is None or record.height is None:
                shape = _npz_shape(record.path)
                record.height, record.width = shape[-2], shape[-1]
        check_records(
            records, invalid_boxes=self.invalid_boxes, num_classes=len(self.categories), source=str(path)
        )
        return records

    def __len__(self) -> int:
        return len(self.image_filenames)

    def _load_image(self, path: Path) -> torch.Tensor:
        stack = _load_npz(path)
        if stack.ndim != 4:
            raise ValueError(f"Substation: {path} holds shape {stack.shape}; expected (T, 13, H, W)")
        stack = stack[:, self.bands]
        if self.use_timepoints:
            steps = stack.shape[0]
            if steps < self.num_of_timepoints:
                stack = stack[[i % steps for i in range(self.num_of_timepoints)]]
            else:
                stack = stack[steps - self.num_of_timepoints :]
            if self.timepoint_aggregation == "concat":
                stack = stack.reshape(-1, *stack.shape[2:])
            elif self.timepoint_aggregation == "median":
                stack = np.median(stack, axis=0)
        elif self.timepoint_aggregation == "first":
            stack = stack[0]
        elif self.timepoint_aggregation == "last":
            stack = stack[-1]
        else:
            stack = stack[np.random.randint(stack.shape[0])]
        return torch.from_numpy(np.ascontiguousarray(stack)).float()

    def _load_mask(self, path: Path) -> torch.Tensor:
        raw = np.squeeze(_load_npz(path))
        mask = torch.from_numpy((raw == _SUBSTATION_CLASS).astype(np.int64))
        if self.mask_2d:
            return torch.stack([1.0 - mask, mask.float()])
        return mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.image_filenames[index]
        image = self._load_image(self.image_dir / name)
        if self.mode == "segmentation":
            sample: dict[str, Any] = {"image": image, "mask": self._load_mask(self.mask_dir / name)}
        else:
            record = self.records[index]
            sample = {
                "image": image,
                "boxes": torch.from_numpy(record.boxes.copy()),
                "labels": torch.from_numpy(record.labels.copy()),
                "masks": torch.from_numpy(
                    segmentation_masks(
                        record.segmentations or [None] * len(record.boxes), record.height, record.width
                    )
                ),
                "image_id": record.image_id,
            }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(
        self, sample: dict[str, Any], show_titles: bool = True, suptitle: str | None = None, **kwargs: Any
    ) -> Any:
        """Draw a sample: image and mask (segmentation) or image with boxes (detection)."""
        image = torch.as_tensor(sample["image"]).float()
        if image.ndim == 4:  # (C, T, H, W): show the last time step
            image = image[:, -1]
        shown = dict(sample, image=image / 10000.0 if image.mean() > 1 else image)
        if self.mode == "object_detection":
            return plot_detection_sample(shown, self.plot_indexes, self.categories, suptitle=suptitle)
        import matplotlib.pyplot as plt

        rgb = np.clip(shown["image"][self.plot_indexes].permute(1, 2, 0).numpy(), 0, 1)
        mask = torch.as_tensor(sample["mask"])
        mask = mask[1] if mask.ndim == 3 else mask
        panels = [("Image", rgb), ("Mask", mask.numpy())]
        if "prediction" in sample:
            prediction = torch.as_tensor(sample["prediction"])
            panels.append(("Prediction", (prediction[1] if prediction.ndim == 3 else prediction).numpy()))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
        for axis, (title, data) in zip(axes, panels):
            axis.imshow(data, cmap=None if data.ndim == 3 else "gray", interpolation="none")
            axis.set_axis_off()
            if show_titles:
                axis.set_title(title)
        if suptitle:
            fig.suptitle(suptitle)
        return fig


def _load_npz(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"Substation: file {str(path)!r} does not exist")
    with np.load(path) as data:
        return data["arr_0"]


def _npz_shape(path: Path) -> tuple[int, ...]:
    return _load_npz(path).shape
