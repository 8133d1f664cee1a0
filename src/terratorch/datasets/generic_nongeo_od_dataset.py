"""Generic object-detection dataset: GeoTIFF/PNG/JPEG images with COCO or per-image JSON boxes.

Two annotation layouts are read:

* a COCO file (``label_data_root`` points at a ``.json`` file): ``images[].file_name`` relative to
  ``data_root``, ``annotations[].bbox`` as ``[x, y, width, height]`` pixels, labels = ``category_id``,
  and instance masks when annotations carry ``segmentation``;
* the reference's per-image files (``label_data_root`` is a folder, default ``data_root``):
  ``<image stem>.json`` holding ``{"boxes": [[x1, y1, x2, y2], ...], "labels": [...]}``; an image
  without such a file has no objects.

Samples: ``image`` float32 ``(C, H, W)`` (un-normalised, after ``constant_scale``), ``boxes`` float32
``(N, 4)`` xyxy, ``labels`` int64 ``(N,)``, ``masks`` uint8 ``(N, H, W)`` (COCO files with
segmentations), ``filename`` and ``image_id``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from terratorch.datasets.generic_base import GenericGeoTIFFDataset
from terratorch.datasets.object_detection import (
    DetectionRecord,
    InvalidAnnotationError,
    check_invalid_boxes_policy,
    check_records,
    coco_records,
    compose_detection_transforms,
    is_coco_file,
    load_coco,
    segmentation_masks,
    transform_detection_sample,
)
from terratorch.datasets.utils import BandSpec, filter_split, find_files, raster_shape, read_split_file

logger = logging.getLogger("terratorch")


class GenericNonGeoObjectDetectionDataset(GenericGeoTIFFDataset):
    """Object detection on image files with box annotations, checked when the dataset is built.

    Args:
        data_root: folder of the images.
        num_classes: number of classes including the background (labels must be in
            ``[0, num_classes)``); None skips the range check.
        label_data_root: a COCO ``.json`` file, or the folder of per-image ``<stem>.json`` files
            (default: ``data_root``).
        image_grep: glob of the images under ``data_root`` (per-image layout; with a COCO file the
            images are the ones it lists, filtered by this glob).
        label_grep: accepted for the reference's signature (per-image label files are found by stem).
        split: file listing the samples of this split (stems or names, one per line).
        ignore_split_file_extensions, allow_substring_split_file: how split entries select files.
        rgb_indices: positions of red, green, blue in the output bands (plots).
        dataset_bands, output_bands: bands stored in the files / returned (see
            :class:`~terratorch.datasets.generic_base.GenericGeoTIFFDataset`).
        constant_scale: factor applied to pixel values.
        transform: albumentations transforms (list or ``Compose``); boxes and masks follow every
            flip/crop/resize (``bbox_params`` are added, xyxy pixels).
        no_data_replace: value for nodata/NaN pixels.
        class_names: names of the classes (plots); default ``class_<i>``.
        invalid_boxes: ``"error"`` (default) raises :class:`InvalidAnnotationError` for boxes
            outside the image or without area; ``"clip"`` clips them to the image, drops the ones
            left without area and logs a warning with both counts.
        return_masks: return ``masks`` (COCO segmentations). None: when the COCO file has any.

    Raises:
        FileNotFoundError: missing folder, no image found, or an image the COCO file lists does
            not exist (names the path).
        InvalidAnnotationError: invalid boxes, unknown categories, or labels out of range (names
            the image id, the file and the box).
    """

    #: False for prediction datasets, where no image needs a label file.
    expect_labels: bool = True

    def __init__(
        self,
        data_root: str | Path | None = None,
        num_classes: int | None = 1,
        label_data_root: str | Path | None = None,
        image_grep: str | None = "*",
        label_grep: str | None = "*.json",
        split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        rgb_indices: list[int] | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        constant_scale: float = 1,
        transform: Any = None,
        no_data_replace: float | None = None,
        class_names: list[str] | None = None,
        invalid_boxes: str = "error",
        return_masks: bool | None = None,
        expand_temporal_dimension: bool = False,
    ) -> None:
        if data_root is None:
            raise ValueError("data_root is required: the folder holding the images")
        super().__init__(
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=None,
            no_data_replace=no_data_replace,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.transform = compose_detection_transforms(transform)
        self.data_root = Path(data_root)
        self.label_data_root = Path(label_data_root) if label_data_root is not None else self.data_root
        self.image_grep = image_grep or "*"
        self.label_grep = label_grep
        self.num_classes = num_classes
        self.class_names = class_names or [f"class_{i}" for i in range(num_classes or 0)]
        self.rgb_indices = rgb_indices if rgb_indices is not None else [0, 1, 2]
        self.invalid_boxes = check_invalid_boxes_policy(invalid_boxes)
        split_entries = read_split_file(split) if split is not None else None
        if is_coco_file(self.label_data_root):
            records = self._coco_records()
            records = self._filter(
                records, split_entries, ignore_split_file_extensions, allow_substring_split_file
            )
            self.coco_file: Path | None = self.label_data_root
        else:
            records = self._per_image_records(
                split_entries, ignore_split_file_extensions, allow_substring_split_file
            )
            self.coco_file = None
        if not records:
            where = f"after the split file {split}" if split is not None else f"in {self.label_data_root}"
            raise FileNotFoundError(
                f"data_root: no images of {str(self.data_root)!r} (image_grep={self.image_grep!r}) {where}"
            )
        self._read_missing_sizes(records)
        check_records(
            records,
            invalid_boxes=self.invalid_boxes,
            num_classes=num_classes,
            source=str(self.label_data_root),
        )
        self.records = records
        has_masks = any(r.segmentations is not None for r in records)
        self.return_masks = has_masks if return_masks is None else return_masks
        if self.return_masks and not has_masks:
            raise ValueError(
                f"return_masks=True but {self.label_data_root} has no 'segmentation' for any annotation"
            )

    # ------------------------------------------------------------------ building

    def _coco_records(self) -> list[DetectionRecord]:
        records = coco_records(
            load_coco(self.label_data_root), self.data_root, source=str(self.label_data_root)
        )
        if self.image_grep != "*":
            records = [r for r in records if r.path.match(self.image_grep)]
        missing = [r for r in records if not r.path.is_file()]
        if missing:
            shown = ", ".join(f"{str(r.path)!r} (image id {r.image_id})" for r in missing[:5])
            raise FileNotFoundError(
                f"data_root: {len(missing)} image(s) listed in {self.label_data_root} do not exist: {shown}"
                f"{' ...' if len(missing) > 5 else ''}; file_name entries are relative to data_root"
            )
        return records

    def _filter(
        self, records: list[DetectionRecord], entries: set[str] | None, ignore_ext: bool, substring: bool
    ) -> list[DetectionRecord]:
        if entries is None:
            return records
        kept = set(
            filter_split(
                [r.path for r in records],
                self.image_grep,
                entries,
                ignore_extensions=ignore_ext,
                allow_substring=substring,
            )
        )
        return [r for r in records if r.path in kept]

    def _per_image_records(
        self, entries: set[str] | None, ignore_ext: bool, substring: bool
    ) -> list[DetectionRecord]:
        images = [p for p in find_files(self.data_root, self.image_grep) if p.suffix.lower() != ".json"]
        if entries is not None:
            images = filter_split(
                images, self.image_grep, entries, ignore_extensions=ignore_ext, allow_substring=substring
            )
        if not self.label_data_root.is_dir():
            raise FileNotFoundError(
                f"label_data_root: {str(self.label_data_root)!r} is neither a folder of per-image JSON files "
                "nor a COCO .json file"
            )
        records, unlabelled = [], 0
        for path in images:
            label_file = self.label_data_root / f"{path.stem}.json"
            record = DetectionRecord(image_id=path.stem, path=path)
            if label_file.is_file():
                record.boxes, record.labels = _read_box_file(label_file)
            else:
                unlabelled += 1
            records.append(record)
        if images and unlabelled == len(images) and self.expect_labels:
            raise FileNotFoundError(
                f"label_data_root: none of the {len(images)} images has a label file <stem>.json in "
                f"{str(self.label_data_root)!r} (e.g. {images[0].stem}.json); give the folder of the label "
                "files, or a COCO .json file"
            )
        if unlabelled:
            logger.info("%s: %d image(s) have no label file and no objects", self.label_data_root, unlabelled)
        return records

    def _read_missing_sizes(self, records: list[DetectionRecord]) -> None:
        """Read image sizes the annotations do not give; check the first declared size against its file.

        Raises:
            InvalidAnnotationError: the first image with a declared ``width``/``height`` has another size.
        """
        checked = False
        for record in records:
            declared = record.width is not None and record.height is not None
            if declared and checked:
                continue
            if not record.path.is_file():
                raise FileNotFoundError(f"data_root: image {str(record.path)!r} does not exist")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*geotransform.*")
                _, height, width = raster_shape(record.path)
            if declared and (height, width) != (record.height, record.width):
                raise InvalidAnnotationError(
                    f"{record.path} is {width}x{height} pixels but {self.label_data_root} says "
                    f"{record.width}x{record.height} (image id {record.image_id}); fix width/height there"
                )
            checked = checked or declared
            record.height, record.width = height, width

    # ------------------------------------------------------------------ samples

    @property
    def image_files(self) -> list[Path]:
        """The image of every sample, in order."""
        return [r.path for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        if not record.path.is_file():
            raise FileNotFoundError(f"image {str(record.path)!r} (image id {record.image_id}) does not exist")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*geotransform.*")
            image, _ = self.load_image(record.path)
        if image.shape[-2:] != (record.height, record.width):
            raise InvalidAnnotationError(
                f"{record.path} is {image.shape[-1]}x{image.shape[-2]} pixels but the annotations say "
                f"{record.width}x{record.height} (image id {record.image_id})"
            )
        masks = None
        if self.return_masks:
            masks = segmentation_masks(record.segmentations or [], record.height, record.width)
        sample = transform_detection_sample(self.transform, image, record.boxes, record.labels, masks)
        if self.expand_temporal_dimension:
            channels = len(self.output_bands)
            image_t = sample["image"]
            sample["image"] = image_t.reshape(-1, channels, *image_t.shape[1:]).transpose(0, 1).contiguous()
        sample["filename"] = record.path.name
        sample["image_id"] = record.image_id
        return sample

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Draw the image with its boxes (and predicted boxes when ``prediction_boxes`` is present)."""
        from terratorch.datasets.object_detection import plot_detection_sample

        return plot_detection_sample(sample, self.rgb_indices, self.class_names, suptitle=suptitle)


def _read_box_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a per-image ``{"boxes": [[x1, y1, x2, y2], ...], "labels": [...]}`` file.

    Raises:
        InvalidAnnotationError: not JSON, or boxes that are not four numbers, or counts that differ.
    """
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidAnnotationError(f"{path} is not valid JSON ({error})") from error
    boxes, labels = data.get("boxes", []), data.get("labels", [])
    try:
        boxes_a = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels_a = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise InvalidAnnotationError(
            f"{path}: 'boxes' must be a list of [x1, y1, x2, y2] and 'labels' a list of ints ({error})"
        ) from error
    if len(boxes_a) != len(labels_a):
        raise InvalidAnnotationError(f"{path}: {len(boxes_a)} boxes but {len(labels_a)} labels")
    return boxes_a, labels_a
