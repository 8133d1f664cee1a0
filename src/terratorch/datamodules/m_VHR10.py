# ruff: noqa: N999  (module name kept from the reference: terratorch.datamodules.m_VHR10)
"""Datamodule of m-VHR10 (NWPU VHR-10 with train/val/test splits) for detection and instance masks.

Images are padded (or resized) and centre-cropped to ``image_size``, flipped at random for
training, batched with one box/label/mask tensor per image, then scaled to 0-1 and normalised
with the ImageNet statistics on the device (``apply_norm_in_datamodule``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from terratorch.datamodules.normalize import Normalize
from terratorch.datasets.m_VHR10 import mVHR10
from terratorch.datasets.object_detection import DetectionSampleTransform, collate_detection

IMAGENET_MEANS = (0.485, 0.456, 0.406)
IMAGENET_STDS = (0.229, 0.224, 0.225)


def vhr10_transforms(train: bool, image_size: int = 896, pad: bool = True) -> list[Any]:
    """The m-VHR10 albumentations list: pad (or resize), centre-crop, and a random flip for training."""
    import albumentations as A

    first = (
        A.PadIfNeeded(min_height=image_size, min_width=image_size, border_mode=0, fill=0)
        if pad
        else A.Resize(height=image_size, width=image_size)
    )
    items = [first, A.CenterCrop(height=image_size, width=image_size)]
    if train:
        items.append(A.HorizontalFlip(p=0.5))
    return items


def collate_fn_detection(
    batch: list[dict[str, Any]],
    boxes_tag: str = "boxes",
    labels_tag: str = "labels",
    masks_tag: str = "masks",
) -> dict[str, Any]:
    """The reference's collate: images stacked (a list when sizes differ), targets as per-image lists."""
    return collate_detection(batch)


class mVHR10DataModule(LightningDataModule):  # noqa: N801  (the reference's class name)
    """m-VHR10 for ``ObjectDetectionTask`` (Faster/Mask R-CNN): 10 classes plus background.

    Args:
        root: folder holding ``NWPU VHR-10 dataset/`` (see :class:`~terratorch.datasets.m_VHR10.mVHR10`).
        split: ``"positive"`` or ``"negative"`` image set.
        download, checksum: fetch the data with torchgeo when missing / verify MD5s.
        second_level_split: ignored (each stage uses its own part), kept for the reference's signature.
        second_level_split_proportions: train/val/test fractions.
        batch_size, num_workers: DataLoader settings.
        pad: pad images to ``image_size`` (True) or resize them (False); then centre-crop.
        image_size: side of the square images given to the model.
        collate_fn: replaces the default collate.
        boxes_output_tag, labels_output_tag, masks_output_tag, scores_output_tag: sample keys.
        apply_norm_in_datamodule: normalise with ImageNet statistics after scaling to 0-1
            (False: only scale to 0-1).
        invalid_boxes: ``"error"`` or ``"clip"`` for annotations outside their image.
    """

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "positive",
        download: bool = False,
        checksum: bool = False,
        second_level_split: str = "train",
        second_level_split_proportions: Sequence[float] = (0.7, 0.15, 0.15),
        batch_size: int = 4,
        num_workers: int = 0,
        pad: bool = True,
        image_size: int = 896,
        collate_fn: Callable | None = None,
        boxes_output_tag: str = "boxes",
        labels_output_tag: str = "labels",
        masks_output_tag: str = "masks",
        scores_output_tag: str = "scores",
        apply_norm_in_datamodule: bool = True,
        invalid_boxes: str = "error",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.root = root
        self.split = split
        self.download = download
        self.checksum = checksum
        self.second_level_split = second_level_split
        self.second_level_split_proportions = tuple(second_level_split_proportions)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pad = pad
        self.image_size = image_size
        self.boxes_output_tag = boxes_output_tag
        self.labels_output_tag = labels_output_tag
        self.masks_output_tag = masks_output_tag
        self.scores_output_tag = scores_output_tag
        self.invalid_boxes = invalid_boxes
        self.collate_fn = collate_fn if collate_fn is not None else collate_detection
        tags = {"boxes_tag": boxes_output_tag, "labels_tag": labels_output_tag, "masks_tag": masks_output_tag}
        self.train_transform = DetectionSampleTransform(vhr10_transforms(True, image_size, pad), **tags)
        self.val_transform = DetectionSampleTransform(vhr10_transforms(False, image_size, pad), **tags)
        self.test_transform = DetectionSampleTransform(vhr10_transforms(False, image_size, pad), **tags)
        means = IMAGENET_MEANS if apply_norm_in_datamodule else (0.0, 0.0, 0.0)
        stds = IMAGENET_STDS if apply_norm_in_datamodule else (1.0, 1.0, 1.0)
        self._normalize = Normalize(means, stds)
        self.train_dataset = self.val_dataset = self.test_dataset = None

    def _dataset(self, part: str, transform: Callable) -> mVHR10:
        return mVHR10(
            root=self.root,
            split=self.split,
            transforms=transform,
            download=self.download,
            checksum=self.checksum,
            second_level_split=part,
            second_level_split_proportions=self.second_level_split_proportions,
            boxes_output_tag=self.boxes_output_tag,
            labels_output_tag=self.labels_output_tag,
            masks_output_tag=self.masks_output_tag,
            scores_output_tag=self.scores_output_tag,
            invalid_boxes=self.invalid_boxes,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (fit: train and val; validate: val; test: test)."""
        if stage in ("fit", None):
            self.train_dataset = self._dataset("train", self.train_transform)
        if stage in ("fit", "validate", None):
            self.val_dataset = self._dataset("val", self.val_transform)
        if stage in ("test", None):
            self.test_dataset = self._dataset("test", self.test_transform)

    def _loader(self, dataset: mVHR10 | None, split: str) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"no {split} dataset: call setup() for its stage first")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_dataset, "train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        """Test batches."""
        return self._loader(self.test_dataset, "test")

    def aug(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Stack the images, scale them to 0-1 and normalise them (the reference's ``aug``)."""
        batch = dict(batch)
        image = batch["image"]
        image = torch.stack(list(image)) if isinstance(image, list | tuple) else image
        batch["image"] = self._normalize(image.float() / 255.0)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the images on the device (see :meth:`aug`)."""
        if isinstance(batch, dict) and "image" in batch:
            return self.aug(batch)
        return batch

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Draw a sample with its boxes (delegates to the dataset's plot)."""
        dataset = self.val_dataset or self.train_dataset or self.test_dataset
        if dataset is None:
            raise RuntimeError("call setup() before plot()")
        return dataset.plot(sample, suptitle=suptitle)
