"""Datamodule for object detection on image folders with COCO or per-image JSON boxes.

Config example (LightningCLI)::

    data:
      class_path: GenericNonGeoObjectDetectionDataModule
      init_args:
        batch_size: 4
        num_classes: 3                      # background + 2 classes
        train_data_root: data/images
        train_label_data_root: data/annotations/train.json   # COCO file, or a folder of <stem>.json
        val_data_root: data/images
        val_label_data_root: data/annotations/val.json
        dataset_bands: [RED, GREEN, BLUE]
        means: [0.3, 0.3, 0.3]
        stds: [0.2, 0.2, 0.2]
        train_transform:
          - class_path: albumentations.HorizontalFlip

Batches: ``image`` float32 ``(B, C, H, W)`` (a list when sizes differ; normalised on the device),
``boxes`` list of float32 ``(N_i, 4)`` xyxy, ``labels`` list of int64 ``(N_i,)``, ``masks`` list of
uint8 ``(N_i, H, W)`` (COCO files with segmentations), ``filename`` and ``image_id`` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from terratorch.datamodules.base import GeoTIFFDataModule
from terratorch.datasets.generic_nongeo_od_dataset import GenericNonGeoObjectDetectionDataset
from terratorch.datasets.object_detection import (
    check_invalid_boxes_policy,
    collate_detection,
    normalize_detection_batch,
)

Bands = list[int | str | list[int]] | None
TransformList = list[Callable] | Callable | None


class GenericNonGeoObjectDetectionDataModule(GeoTIFFDataModule):
    """Object detection on GeoTIFF/PNG/JPEG images with box annotations.

    Args:
        batch_size, num_workers: DataLoader settings.
        num_classes: classes including the background; labels must be in ``[0, num_classes)``.
        train_data_root, val_data_root, test_data_root: image folders per split.
        img_grep: glob of the images; label_grep: accepted for the reference's signature.
        means, stds: per-band statistics (list or file), aligned with ``output_bands``.
        predict_data_root: images to predict (no labels; ``test_transform`` applies).
        train_label_data_root, val_label_data_root, test_label_data_root: a COCO ``.json`` file per
            split, or a folder of per-image ``<stem>.json`` files (default: beside the images).
        train_split, val_split, test_split: files listing the samples of each split.
        ignore_split_file_extensions, allow_substring_split_file: how split entries select files.
        dataset_bands, output_bands: bands in the files / for the model.
        constant_scale: multiply pixel values by this after reading.
        rgb_indices: positions of red, green, blue in ``output_bands`` (plots).
        train_transform, val_transform, test_transform: albumentations lists; boxes and masks
            follow every geometric transform.
        no_data_replace: value for nodata/NaN pixels.
        drop_last, pin_memory: DataLoader settings (``drop_last`` for training only).
        class_names: class names for plots.
        invalid_boxes: ``"error"`` (default) or ``"clip"``, see
            :class:`~terratorch.datasets.generic_nongeo_od_dataset.GenericNonGeoObjectDetectionDataset`.
        return_masks: give ``masks`` (COCO segmentations); None: when the annotation file has any.
            Set False for box-only detectors on files that carry segmentations.
        kwargs: accepted and ignored with a warning, as the reference ignores them.
    """

    def __init__(
        self,
        batch_size: int,
        num_workers: int,
        num_classes: int,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        img_grep: str = "*",
        label_grep: str = "*.json",
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        predict_data_root: str | Path | None = None,
        train_label_data_root: str | Path | None = None,
        val_label_data_root: str | Path | None = None,
        test_label_data_root: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        dataset_bands: Bands = None,
        output_bands: Bands = None,
        constant_scale: float = 1,
        rgb_indices: list[int] | None = None,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        no_data_replace: float | None = None,
        drop_last: bool = True,
        pin_memory: bool = False,
        class_names: list[str] | None = None,
        invalid_boxes: str = "error",
        return_masks: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            means=means,
            stds=stds,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            drop_last=drop_last,
            pin_memory=pin_memory,
            rgb_indices=rgb_indices,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            **kwargs,
        )
        self.num_classes = num_classes
        self.img_grep = img_grep
        self.label_grep = label_grep
        self.constant_scale = constant_scale
        self.no_data_replace = no_data_replace
        self.class_names = class_names
        self.invalid_boxes = check_invalid_boxes_policy(invalid_boxes)
        self.return_masks = return_masks
        for split in ("train", "val", "test", "predict"):
            setattr(self, f"{split}_data_root", locals()[f"{split}_data_root"])
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_label_data_root", locals()[f"{split}_label_data_root"])
            setattr(self, f"{split}_split", locals()[f"{split}_split"])
            setattr(self, f"{split}_transform", locals()[f"{split}_transform"])

    def build_dataset(self, split: str) -> Dataset:
        """The dataset of ``split``; ``predict`` lists the images of ``predict_data_root`` without boxes."""
        predict = split == "predict"
        common = {
            "num_classes": self.num_classes,
            "image_grep": self.img_grep,
            "label_grep": self.label_grep,
            "dataset_bands": self.predict_dataset_bands if predict else self.dataset_bands,
            "output_bands": self.predict_output_bands if predict else self.output_bands,
            "constant_scale": self.constant_scale,
            "no_data_replace": self.no_data_replace,
            "rgb_indices": self.rgb_indices,
            "class_names": self.class_names,
            "invalid_boxes": self.invalid_boxes,
            "return_masks": False if predict else self.return_masks,
        }
        if predict:
            return _UnlabelledImages(self.predict_data_root, transform=self.test_transform, **common)
        return GenericNonGeoObjectDetectionDataset(
            getattr(self, f"{split}_data_root"),
            label_data_root=getattr(self, f"{split}_label_data_root"),
            split=getattr(self, f"{split}_split"),
            ignore_split_file_extensions=self.ignore_split_file_extensions,
            allow_substring_split_file=self.allow_substring_split_file,
            transform=getattr(self, f"{split}_transform"),
            **common,
        )

    def _check_first_file(self, dataset: Dataset) -> None:
        files = getattr(dataset, "image_files", None)
        if files and self.dataset_bands is not None and files[0].suffix.lower() in (".tif", ".tiff"):
            from terratorch.datasets.utils import raster_shape

            dataset.band_indexes(files[0], raster_shape(files[0])[0])

    def _loader(self, dataset: Dataset | None, split: str, *, shuffle: bool = False, drop_last: bool = False):
        if dataset is None:
            raise RuntimeError(
                f"no {split} dataset: call setup() for its stage first (and give {split}_data_root)"
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=drop_last,
            pin_memory=self.pin_memory,
            collate_fn=collate_detection,
            persistent_workers=self.num_workers > 0,
        )

    def detection_collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """The reference's name for the collate function (see ``collate_detection``)."""
        return collate_detection(batch)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the batch's images on the device (a stacked tensor or a list of images)."""
        return normalize_detection_batch(batch, self.normalize)

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Draw a sample with its (and, when present, predicted) boxes."""
        from terratorch.datasets.object_detection import plot_detection_sample

        return plot_detection_sample(
            sample, self.rgb_indices or [0, 1, 2], self.class_names, suptitle=suptitle
        )


class _UnlabelledImages(GenericNonGeoObjectDetectionDataset):
    """The images of a folder for prediction: samples without label files have no boxes."""

    expect_labels = False
