"""AED (aerial elephant dataset): RGB images with COCO boxes, read like torchvision's ``CocoDetection``.

Layout: a folder of images and a COCO file whose ``images[].file_name`` entries are relative to it.
Samples: ``image`` float32 ``(3, H, W)`` in 0-1, ``boxes`` float32 ``(N, 4)`` xyxy, ``labels``
int64 (``category_id``), ``image_id`` int64 ``(1,)``.
"""

from __future__ import annotations

from collections.abc import Callable
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
)


class ElephantCocoDataset(Dataset):
    """The AED elephants in COCO format, boxes checked when the dataset is built.

    Args:
        img_folder: folder of the images.
        ann_file: the COCO annotation file.
        transform: callable applied to the PIL image before it becomes a tensor (colour only:
            boxes are not moved).
        invalid_boxes: ``"error"`` (default) reports boxes outside their image or without area;
            ``"clip"`` clips them and drops those left without area, with a warning. (The
            reference drops zero-size boxes silently.)

    Raises:
        FileNotFoundError: the COCO file or an image it lists is missing (names the path).
        InvalidAnnotationError: invalid boxes or unknown categories (names image id and box).
    """

    def __init__(
        self,
        img_folder: str | Path,
        ann_file: str | Path,
        transform: Callable | None = None,
        invalid_boxes: str = "error",
    ) -> None:
        super().__init__()
        self.img_folder = Path(img_folder)
        self.ann_file = Path(ann_file)
        self.transform = transform
        self.invalid_boxes = check_invalid_boxes_policy(invalid_boxes)
        coco = load_coco(self.ann_file)
        self.categories = {c["id"]: c.get("name", str(c["id"])) for c in coco["categories"]}
        records = sorted(
            coco_records(coco, self.img_folder, source=str(self.ann_file)), key=lambda r: r.image_id
        )
        missing = [r for r in records if not r.path.is_file()]
        if missing:
            shown = ", ".join(f"{str(r.path)!r} (image id {r.image_id})" for r in missing[:5])
            raise FileNotFoundError(f"{self.ann_file}: {len(missing)} listed image(s) do not exist: {shown}")
        for record in records:
            if record.width is None or record.height is None:
                from PIL import Image

                with Image.open(record.path) as img:
                    record.width, record.height = img.size
        check_records(records, invalid_boxes=self.invalid_boxes, source=str(self.ann_file))
        self.records = records
        self.ids = [r.image_id for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        from PIL import Image

        record = self.records[idx]
        with Image.open(record.path) as img:
            image = img.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return {
            "boxes": torch.from_numpy(record.boxes.copy()),
            "labels": torch.from_numpy(record.labels.copy()),
            "image": torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))),
            "image_id": torch.tensor([record.image_id]),
        }

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Draw a sample with its boxes."""
        names = [self.categories.get(i, str(i)) for i in range(max(self.categories, default=0) + 1)]
        return plot_detection_sample(sample, [0, 1, 2], names, suptitle=suptitle)
