# ruff: noqa: N999  (module name kept from the reference: terratorch.datasets.m_VHR10)
"""m-VHR10: NWPU VHR-10 object detection / instance segmentation with train/val/test splits.

Reads the extracted layout torchgeo's ``VHR10`` reads (the zip file itself is not needed)::

    <root>/NWPU VHR-10 dataset/annotations.json          COCO file of the positive set
    <root>/NWPU VHR-10 dataset/positive image set/001.jpg ...
    <root>/NWPU VHR-10 dataset/negative image set/001.jpg ...   (no objects)

COCO image id ``i`` is the file ``{i + 1:03d}.jpg`` (as in torchgeo). The images of the chosen set
are shuffled with a fixed seed (the reference's order) and cut into ``second_level_split``
train/val/test parts by ``second_level_split_proportions``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.object_detection import (
    DetectionRecord,
    check_invalid_boxes_policy,
    check_records,
    coco_records,
    load_coco,
    plot_detection_sample,
    seeded_split,
    segmentation_masks,
)

_FOLDER = "NWPU VHR-10 dataset"
_SPLIT_SEED = 123
_SECOND_LEVEL_SPLITS = ("train", "val", "test")
_NEGATIVE_COUNT = 150


class mVHR10(Dataset):  # noqa: N801  (the reference's class name)
    """NWPU VHR-10 (10 classes, category ids 1-10; 0 is the background) with a second-level split.

    Args:
        second_level_split: ``"train"``, ``"val"`` or ``"test"``.
        second_level_split_proportions: fractions of the images in train, val and test (sum 1).
        boxes_output_tag, labels_output_tag, masks_output_tag: sample keys of boxes, labels, masks.
        scores_output_tag: key of predicted scores (plots).
        root: folder holding ``NWPU VHR-10 dataset/``.
        split: ``"positive"`` (annotated, 650 images) or ``"negative"`` (150 images, no objects).
        transforms: callable taking and returning the sample dict (e.g. the datamodule's).
        download: fetch the dataset with torchgeo's ``VHR10`` when it is missing (needs internet).
        checksum: verify the MD5 of downloaded files.
        invalid_boxes: ``"error"`` (default) or ``"clip"`` (torchgeo clips silently; see
            :func:`terratorch.datasets.object_detection.check_records`).

    Samples: ``image`` float32 ``(3, H, W)`` in 0-255, ``boxes`` float32 ``(N, 4)`` xyxy,
    ``labels`` int64, ``masks`` uint8 ``(N, H, W)``, ``image_id``.

    Raises:
        ValueError: an unknown split or proportions that do not sum to 1.
        FileNotFoundError: the layout is missing (names the paths) and ``download`` is False.
    """

    categories = (
        "background",
        "airplane",
        "ships",
        "storage tank",
        "baseball diamond",
        "tennis court",
        "basketball court",
        "ground track field",
        "harbor",
        "bridge",
        "vehicle",
    )

    def __init__(
        self,
        second_level_split: str = "train",
        second_level_split_proportions: Sequence[float] = (0.90, 0.05, 0.05),
        boxes_output_tag: str = "boxes",
        labels_output_tag: str = "labels",
        masks_output_tag: str = "masks",
        scores_output_tag: str = "scores",
        root: str | Path = "data",
        split: str = "positive",
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        download: bool = False,
        checksum: bool = False,
        invalid_boxes: str = "error",
    ) -> None:
        super().__init__()
        if split not in ("positive", "negative"):
            raise ValueError(f"split must be 'positive' or 'negative', got {split!r}")
        if second_level_split not in _SECOND_LEVEL_SPLITS:
            raise ValueError(
                f"second_level_split must be one of {list(_SECOND_LEVEL_SPLITS)}, got {second_level_split!r}"
            )
        if len(second_level_split_proportions) != 3:
            raise ValueError(
                "second_level_split_proportions needs 3 values (train, val, test), got "
                f"{second_level_split_proportions}"
            )
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.download = download
        self.checksum = checksum
        self.second_level_split = second_level_split
        self.second_level_split_proportions = tuple(second_level_split_proportions)
        self.boxes_output_tag = boxes_output_tag
        self.labels_output_tag = labels_output_tag
        self.masks_output_tag = masks_output_tag
        self.scores_output_tag = scores_output_tag
        self.invalid_boxes = check_invalid_boxes_policy(invalid_boxes)
        self.image_dir = self.root / _FOLDER / f"{split} image set"
        self.annotation_file = self.root / _FOLDER / "annotations.json"
        self._ensure_files()
        records = self._records()
        parts = seeded_split(len(records), self.second_level_split_proportions, _SPLIT_SEED)
        chosen = parts[_SECOND_LEVEL_SPLITS.index(second_level_split)]
        self.records = [records[i] for i in chosen]
        self.ids = [r.image_id for r in self.records]

    def _ensure_files(self) -> None:
        needed = [self.image_dir] + ([self.annotation_file] if self.split == "positive" else [])
        if all(p.exists() for p in needed):
            return
        if self.download:
            from torchgeo.datasets import VHR10

            VHR10(root=str(self.root), split=self.split, download=True, checksum=self.checksum)
            return
        missing = [str(p) for p in needed if not p.exists()]
        raise FileNotFoundError(
            f"mVHR10: not found under root={str(self.root)!r}: {missing}; extract 'NWPU VHR-10 dataset.zip' "
            "there (and put annotations.json inside it), or set download=True"
        )

    def _records(self) -> list[DetectionRecord]:
        if self.split == "negative":
            return [
                DetectionRecord(image_id=i, path=self.image_dir / f"{i + 1:03d}.jpg")
                for i in range(_NEGATIVE_COUNT)
            ]
        records = coco_records(
            load_coco(self.annotation_file), self.image_dir, source=str(self.annotation_file)
        )
        records.sort(key=lambda r: r.image_id)
        for record in records:
            record.path = self.image_dir / f"{int(record.image_id) + 1:03d}.jpg"
        missing = [r for r in records if not r.path.is_file()]
        if missing:
            shown = ", ".join(f"{str(r.path)!r} (image id {r.image_id})" for r in missing[:5])
            raise FileNotFoundError(
                f"mVHR10: {len(missing)} image(s) of {self.annotation_file} are missing: {shown}"
            )
        for record in records:
            if record.width is None or record.height is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from PIL import Image

                    with Image.open(record.path) as img:
                        record.width, record.height = img.size
        check_records(
            records,
            invalid_boxes=self.invalid_boxes,
            num_classes=len(self.categories),
            source=str(self.annotation_file),
        )
        return records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        record = self.records[index]
        if not record.path.is_file():
            raise FileNotFoundError(f"mVHR10: image {str(record.path)!r} does not exist")
        with Image.open(record.path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.float32)
        height, width = array.shape[:2]
        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))),
            self.boxes_output_tag: torch.from_numpy(record.boxes.copy()),
            self.labels_output_tag: torch.from_numpy(record.labels.copy()),
            self.masks_output_tag: torch.from_numpy(
                segmentation_masks(record.segmentations or [None] * len(record.boxes), height, width)
            ),
            "image_id": record.image_id,
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(self, sample: dict[str, Any], suptitle: str | None = None, **kwargs: Any) -> Any:
        """Draw a sample's image with its boxes (and predicted boxes when present)."""
        renamed = {
            "image": sample["image"],
            "boxes": sample.get(self.boxes_output_tag),
            "labels": sample.get(self.labels_output_tag),
        }
        for key in ("boxes", "labels", "scores"):
            tag = getattr(self, f"{key}_output_tag")
            if f"prediction_{tag}" in sample:
                renamed[f"prediction_{key}"] = sample[f"prediction_{tag}"]
        image = torch.as_tensor(renamed["image"]).float()
        renamed["image"] = image
        return plot_detection_sample(renamed, [0, 1, 2], self.categories, suptitle=suptitle)
