"""Shared pieces of the object-detection datasets: COCO parsing, box checks, transforms, collate.

Every detection dataset returns samples in torchvision's target layout, which is what the
``ObjectDetectionTask`` feeds its detectors: ``image`` float32 ``(C, H, W)``, ``boxes`` float32
``(N, 4)`` in pixel ``x1, y1, x2, y2`` (xyxy), ``labels`` int64 ``(N,)`` and, for instance
segmentation, ``masks`` uint8 ``(N, H, W)``. :func:`collate_detection` batches such samples
keeping one box tensor per image, since images hold different numbers of objects.

Annotations are checked when a dataset is built, never silently fixed: a box outside its image,
a box without area, or a label that is not a known category raises
:class:`InvalidAnnotationError` naming the image and the box; ``invalid_boxes="clip"`` clips
boxes to the image instead (and drops those left without area), logging how many.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terratorch.choices import close_matches

logger = logging.getLogger("terratorch")

INVALID_BOX_POLICIES = ("error", "clip")
_MAX_REPORTED = 5


class InvalidAnnotationError(ValueError):
    """An annotation file holds boxes or labels a detector cannot train on (message lists them)."""


@dataclass
class DetectionRecord:
    """The annotations of one image, boxes already in pixel xyxy.

    Attributes:
        image_id: the id of the image in its annotation file (or its file stem).
        path: the image file.
        width, height: image size in pixels (None until read from the file header).
        boxes: ``(N, 4)`` float32 xyxy.
        labels: ``(N,)`` int64.
        segmentations: one COCO segmentation (polygons or RLE) per box, or None without masks.
        annotation_ids: the COCO annotation id of each box (None for per-image label files).
    """

    image_id: Any
    path: Path
    width: int | None = None
    height: int | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    segmentations: list[Any] | None = None
    annotation_ids: list[Any] | None = None


def check_invalid_boxes_policy(invalid_boxes: str) -> str:
    """Return ``invalid_boxes`` when it is a known policy.

    Raises:
        ValueError: another value (lists the valid ones).
    """
    if invalid_boxes not in INVALID_BOX_POLICIES:
        raise ValueError(f"invalid_boxes must be one of {list(INVALID_BOX_POLICIES)}, got {invalid_boxes!r}")
    return invalid_boxes


# ----------------------------------------------------------------------------- COCO files


def is_coco_file(path: str | Path | None) -> bool:
    """True when ``path`` is an existing ``.json`` file (a COCO annotation file, not a folder)."""
    return path is not None and Path(path).suffix.lower() == ".json" and Path(path).is_file()


def load_coco(path: str | Path) -> dict[str, Any]:
    """Read a COCO annotation file and check its top-level structure.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not JSON, or lacks ``images``/``annotations``/``categories`` lists.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {str(path)!r} does not exist")
    try:
        coco = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from error
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(coco.get(key), list)]
    if not isinstance(coco, dict) or missing:
        raise ValueError(
            f"{path} is not a COCO detection file: it needs the lists 'images', 'annotations' and "
            f"'categories' (missing or not a list: {missing})"
        )
    return coco


def coco_records(
    coco: dict[str, Any],
    image_root: str | Path,
    *,
    source: str = "COCO file",
    category_ids: Iterable[int] | None = None,
) -> list[DetectionRecord]:
    """Turn a COCO dict into one :class:`DetectionRecord` per image (boxes converted to xyxy).

    Labels are the annotations' ``category_id`` (as torchgeo's and the reference's COCO datasets
    do; torchvision detectors reserve 0 for the background, so ids usually start at 1). Crowd
    annotations (``iscrowd: 1``) are left out, as in torchvision's COCO references; how many is
    logged.

    Args:
        coco: the parsed file (see :func:`load_coco`).
        image_root: folder the images' ``file_name`` entries are relative to.
        source: how messages name the file.
        category_ids: the valid category ids (default: those listed under ``categories``).

    Raises:
        InvalidAnnotationError: an annotation names an unknown category or image, or its
            ``bbox`` is not four numbers (message lists the first few with image ids and boxes).
        ValueError: an image entry lacks ``id`` or ``file_name``.
    """
    image_root = Path(image_root)
    valid_categories = (
        set(category_ids) if category_ids is not None else {c["id"] for c in coco["categories"]}
    )
    records: dict[Any, DetectionRecord] = {}
    for entry in coco["images"]:
        if "id" not in entry or "file_name" not in entry:
            raise ValueError(f"{source}: image entry {entry!r} needs 'id' and 'file_name'")
        records[entry["id"]] = DetectionRecord(
            image_id=entry["id"],
            path=image_root / entry["file_name"],
            width=entry.get("width"),
            height=entry.get("height"),
        )
    per_image: dict[Any, list[dict[str, Any]]] = {image_id: [] for image_id in records}
    problems: list[str] = []
    crowd = 0
    for ann in coco["annotations"]:
        image_id, bbox, category = ann.get("image_id"), ann.get("bbox"), ann.get("category_id")
        where = f"annotation id {ann.get('id')} of image id {image_id}"
        if image_id not in records:
            problems.append(f"{where}: no image with id {image_id!r} in 'images'")
        elif not _is_box(bbox):
            problems.append(f"{where}: bbox {bbox!r} is not [x, y, width, height]")
        elif category not in valid_categories:
            hint = close_matches(str(category), [str(c) for c in sorted(valid_categories)], n=3)
            problems.append(
                f"{where} ({records[image_id].path.name}), box [x, y, w, h] = {bbox}: unknown category_id "
                f"{category!r}; the categories are {sorted(valid_categories)}"
                + (f" (closest: {', '.join(hint)})" if hint else "")
            )
        elif ann.get("iscrowd", 0):
            crowd += 1
        else:
            per_image[image_id].append(ann)
    if problems:
        raise InvalidAnnotationError(_problem_message(source, problems))
    if crowd:
        logger.info("%s: left out %d crowd annotation(s) (iscrowd=1)", source, crowd)
    for image_id, anns in per_image.items():
        record = records[image_id]
        boxes = np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # [x, y, w, h] -> [x1, y1, x2, y2]
        record.boxes = boxes.astype(np.float32)
        record.labels = np.asarray([a["category_id"] for a in anns], dtype=np.int64)
        record.annotation_ids = [a.get("id") for a in anns]
        if any(a.get("segmentation") for a in anns):
            record.segmentations = [a.get("segmentation") for a in anns]
    return list(records.values())


def _is_box(bbox: Any) -> bool:
    return (
        isinstance(bbox, Sequence)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    )


def _problem_message(source: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
    return f"{source}: {len(problems)} invalid annotation(s): {shown}{more}"


# ----------------------------------------------------------------------------- box checks


def check_records(
    records: list[DetectionRecord],
    *,
    invalid_boxes: str = "error",
    num_classes: int | None = None,
    source: str = "annotations",
) -> None:
    """Check every box against its image (in place): inside the image, positive size, finite.

    With ``invalid_boxes="clip"`` boxes sticking out are clipped to the image and boxes without
    area (after clipping) are dropped; a warning gives both counts. With ``num_classes`` labels
    must lie in ``[0, num_classes)``.

    Raises:
        InvalidAnnotationError: (``"error"``, or non-finite coordinates, or labels out of range)
            lists the image ids, files and boxes at fault and how to proceed.
    """
    check_invalid_boxes_policy(invalid_boxes)
    problems: list[str] = []
    clipped = dropped = 0
    for record in records:
        if not len(record.boxes):
            continue
        boxes, width, height = record.boxes, record.width, record.height
        name = f"image id {record.image_id} ({record.path.name}, {width}x{height})"
        if num_classes is not None:
            for box, label in zip(boxes, record.labels):
                if not 0 <= label < num_classes:
                    problems.append(
                        f"{name}, box {_fmt(box)}: label {int(label)} is outside "
                        f"[0, num_classes={num_classes}) (detectors count the background as class 0: "
                        "num_classes = highest id + 1)"
                    )
        finite = np.isfinite(boxes).all(axis=1)
        for box in boxes[~finite]:
            problems.append(f"{name}: box {_fmt(box)} has non-finite coordinates")
        outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if invalid_boxes == "error":
            for box, out, none in zip(boxes[finite], outside[finite], empty[finite]):
                if none:
                    problems.append(
                        f"{name}: box {_fmt(box)} has zero or negative size (x2 <= x1 or y2 <= y1)"
                    )
                elif out:
                    problems.append(f"{name}: box {_fmt(box)} extends outside the image")
            continue
        fixed = boxes.copy()
        fixed[:, 0::2] = fixed[:, 0::2].clip(0, width)
        fixed[:, 1::2] = fixed[:, 1::2].clip(0, height)
        keep = finite & (fixed[:, 2] > fixed[:, 0]) & (fixed[:, 3] > fixed[:, 1])
        clipped += int((outside & keep).sum())
        dropped += int((~keep & finite).sum())
        _keep_boxes(record, fixed, keep)
    if problems:
        hint = (
            " Fix the annotations, or set invalid_boxes='clip' to clip boxes to the image and drop those "
            "left without area (a warning counts them)."
            if invalid_boxes == "error"
            else ""
        )
        raise InvalidAnnotationError(_problem_message(source, problems) + hint)
    if clipped or dropped:
        logger.warning(
            "%s: invalid_boxes='clip' clipped %d box(es) to their image and dropped %d box(es) without area",
            source,
            clipped,
            dropped,
        )


def _keep_boxes(record: DetectionRecord, boxes: np.ndarray, keep: np.ndarray) -> None:
    record.boxes = boxes[keep].astype(np.float32)
    record.labels = record.labels[keep]
    if record.segmentations is not None:
        record.segmentations = [s for s, k in zip(record.segmentations, keep) if k]
    if record.annotation_ids is not None:
        record.annotation_ids = [a for a, k in zip(record.annotation_ids, keep) if k]


def _fmt(box: np.ndarray) -> str:
    return "[x1, y1, x2, y2] = [" + ", ".join(f"{float(v):g}" for v in box) + "]"


# ----------------------------------------------------------------------------- masks


def segmentation_masks(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    """Rasterise COCO segmentations (polygon lists or RLE) into ``(N, H, W)`` uint8 masks."""
    from pycocotools import mask as coco_mask

    masks = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    with warnings.catch_warnings():  # pycocotools' NumPy-2 "copy keyword" notice, harmless
        warnings.filterwarnings("ignore", message=".*copy keyword", category=DeprecationWarning)
        for i, segmentation in enumerate(segmentations):
            if not segmentation:
                continue
            if isinstance(segmentation, list):
                rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation.get("counts"), list):
                rle = coco_mask.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            masks[i] = coco_mask.decode(rle)
    return masks


# ----------------------------------------------------------------------------- transforms


def compose_detection_transforms(transforms: Sequence[Any] | Any | None) -> Any:
    """Compose albumentations transforms so that boxes (and masks) follow the image.

    The result takes ``image`` ``(H, W, C)``, ``bboxes`` pixel xyxy, ``labels``, ``box_index``
    (and optionally ``masks``) and ends with ``ToTensorV2``. Box filtering options of a given
    ``A.Compose``'s ``bbox_params`` (``min_area``, ``min_visibility``, ...) are kept; the box
    format is always ``pascal_voc`` because the datasets hand boxes over in xyxy pixels.

    Returns:
        None for None or an empty list (the datasets then convert arrays themselves).

    Raises:
        TypeError: an item is not callable (e.g. a config gave a plain string).
    """
    if transforms is None:
        return None
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    kept: dict[str, Any] = {}
    if isinstance(transforms, A.Compose):
        items = list(transforms.transforms)
        processor = getattr(transforms, "processors", {}).get("bboxes")
        if processor is not None:
            params = processor.params
            kept = {k: getattr(params, k) for k in ("min_area", "min_visibility", "min_width", "min_height")}
    elif isinstance(transforms, Sequence) and not isinstance(transforms, str):
        items = list(transforms)
    else:
        items = [transforms]
    for position, item in enumerate(items):
        if not callable(item):
            raise TypeError(
                f"transform #{position} is {item!r}, not a transform; give albumentations objects, e.g. "
                "'- class_path: albumentations.HorizontalFlip' in a config"
            )
    if not items:
        return None
    if not any(isinstance(item, ToTensorV2) for item in items):
        items.append(ToTensorV2())
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["labels", "box_index"], **kept)
    with warnings.catch_warnings():  # a list without geometric transforms leaves boxes alone, as it should
        warnings.filterwarnings("ignore", message="Got processor for bboxes")
        return A.Compose(items, bbox_params=bbox_params, is_check_shapes=False)


def transform_detection_sample(
    transform: Any,
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Apply a detection transform (see :func:`compose_detection_transforms`) to one sample.

    Args:
        transform: the composed transform, or None (arrays are only converted to tensors).
        image: ``(C, H, W)`` float32.
        boxes: ``(N, 4)`` xyxy pixels; labels ``(N,)``; masks ``(N, H, W)`` or None.

    Returns:
        ``image`` float32 ``(C, H', W')``, ``boxes`` float32 ``(M, 4)``, ``labels`` int64 ``(M,)``
        and, with masks, ``masks`` uint8 ``(M, H', W')``; boxes a transform pushed out of the
        image are removed together with their labels and masks.
    """
    if transform is None:
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "boxes": torch.from_numpy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1)),
        }
        if masks is not None:
            sample["masks"] = torch.from_numpy(np.asarray(masks, dtype=np.uint8))
        return sample
    inputs: dict[str, Any] = {
        "image": np.ascontiguousarray(image.transpose(1, 2, 0)),
        "bboxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64).reshape(-1),
        "box_index": np.arange(len(boxes)),
    }
    if masks is not None and len(masks):
        inputs["masks"] = np.asarray(masks, dtype=np.uint8)
    out = transform(**inputs)
    image_t = out["image"]
    if isinstance(image_t, np.ndarray):
        image_t = torch.from_numpy(np.ascontiguousarray(image_t.transpose(2, 0, 1)))
    sample = {
        "image": image_t.float(),
        "boxes": torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)),
        "labels": torch.as_tensor(np.asarray(out["labels"], dtype=np.int64).reshape(-1)),
    }
    if masks is not None:
        index = np.asarray(out["box_index"], dtype=np.int64).reshape(-1)
        height, width = image_t.shape[-2:]
        if len(index):
            stacked = out["masks"]
            stacked = (
                torch.stack([torch.as_tensor(m) for m in stacked]) if isinstance(stacked, list) else stacked
            )
            sample["masks"] = torch.as_tensor(stacked)[torch.from_numpy(index)].to(torch.uint8)
        else:
            sample["masks"] = torch.zeros((0, height, width), dtype=torch.uint8)
    return sample


# ----------------------------------------------------------------------------- batching


def collate_detection(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch detection samples: images stacked ``(B, C, H, W)`` (a list when sizes differ), the rest lists.

    ``boxes``, ``labels``, ``masks`` and any other key become a list with one entry per sample, the
    format torchvision detectors and the ``ObjectDetectionTask`` take.
    """
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample.get(key) for sample in samples]
        if key == "image" and len({tuple(v.shape) for v in values}) == 1:
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def normalize_detection_batch(batch: Any, normalize: Any) -> Any:
    """Apply ``normalize`` (a per-image callable) to a batch's stacked image tensor or image list."""
    if not isinstance(batch, dict) or "image" not in batch:
        return batch
    batch = dict(batch)
    image = batch["image"]
    if isinstance(image, torch.Tensor):
        batch["image"] = normalize(image)
    elif isinstance(image, list | tuple):
        batch["image"] = [normalize(item) for item in image]
    return batch


def seeded_split(count: int, proportions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split ``range(count)`` into consecutive parts of a seeded permutation (reproducible splits).

    Raises:
        ValueError: proportions that are negative or do not sum to 1.
    """
    if any(p < 0 for p in proportions) or not math.isclose(sum(proportions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split proportions must be >= 0 and sum to 1, got {list(proportions)}")
    order = np.random.RandomState(seed).permutation(count)
    ends = [int(count * end) for end in np.cumsum(proportions)[:-1]] + [count]
    starts = [0, *ends[:-1]]
    return [order[start:end] for start, end in zip(starts, ends)]


# ----------------------------------------------------------------------------- plotting


def plot_detection_sample(
    sample: dict[str, Any],
    rgb_indices: Sequence[int] | None,
    class_names: Sequence[str] | None,
    *,
    suptitle: str | None = None,
    score_threshold: float = 0.5,
) -> Any:
    """Draw a sample's image with its boxes, and its ``prediction_boxes`` beside it when present."""
    import matplotlib.pyplot as plt
    from matplotlib import patches

    image = torch.as_tensor(sample["image"]).float()
    channels = list(rgb_indices) if rgb_indices is not None and image.shape[0] >= 3 else [0]
    rgb = image[channels].permute(1, 2, 0).numpy()
    low, high = np.percentile(rgb, 2), np.percentile(rgb, 98)
    rgb = np.clip((rgb - low) / max(high - low, 1e-12), 0, 1)
    panels = [("Ground truth", sample.get("boxes"), sample.get("labels"), None)]
    if "prediction_boxes" in sample:
        panels.append(
            (
                "Prediction",
                sample["prediction_boxes"],
                sample.get("prediction_labels"),
                sample.get("prediction_scores"),
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for axis, (title, boxes, labels, scores) in zip(axes[0], panels):
        axis.imshow(
            rgb.squeeze(-1) if rgb.shape[-1] == 1 else rgb, cmap="gray" if rgb.shape[-1] == 1 else None
        )
        axis.set_axis_off()
        axis.set_title(title)
        boxes = torch.as_tensor(boxes if boxes is not None else torch.zeros((0, 4))).reshape(-1, 4)
        labels = torch.as_tensor(labels if labels is not None else torch.zeros(len(boxes))).long()
        for i, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
            if scores is not None and float(scores[i]) < score_threshold:
                continue
            x1, y1, x2, y2 = box
            color = cmap(label % 10)
            axis.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, lw=2))
            name = (
                class_names[label]
                if class_names is not None and 0 <= label < len(class_names)
                else str(label)
            )
            axis.text(x1, y1 - 2, name, color=color, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


class DetectionSampleTransform:
    """Apply detection transforms to a sample dict, keeping boxes, labels and masks in step.

    The image is a ``(C, H, W)`` or, multi-temporal, ``(T, C, H, W)`` tensor; time steps share
    every geometric transform and the result is ``(C, H', W')`` or ``(C, T, H', W')`` (the
    reference's ``UnflattenTemporalFromChannels`` layout). Other keys pass through.

    Args:
        transforms: albumentations transforms (list or ``Compose``), or None (tensors only).
        boxes_tag, labels_tag, masks_tag: the sample keys of boxes, labels and masks.
    """

    def __init__(
        self,
        transforms: Sequence[Any] | Any | None,
        *,
        boxes_tag: str = "boxes",
        labels_tag: str = "labels",
        masks_tag: str = "masks",
    ) -> None:
        self.transform = compose_detection_transforms(transforms)
        self.boxes_tag, self.labels_tag, self.masks_tag = boxes_tag, labels_tag, masks_tag

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform ``sample`` (see the class docstring); returns a new dict."""
        image = torch.as_tensor(sample["image"]).float().numpy()
        steps = image.shape[0] if image.ndim == 4 else None
        if steps is not None:
            image = image.reshape(-1, *image.shape[2:])
        boxes = torch.as_tensor(sample.get(self.boxes_tag, torch.zeros((0, 4)))).reshape(-1, 4).numpy()
        labels = torch.as_tensor(sample.get(self.labels_tag, torch.zeros(0, dtype=torch.int64))).numpy()
        masks = sample.get(self.masks_tag)
        masks = torch.as_tensor(masks).numpy() if masks is not None else None
        out = transform_detection_sample(self.transform, image, boxes, labels, masks)
        if steps is not None:
            flat = out["image"]
            out["image"] = flat.reshape(steps, -1, *flat.shape[1:]).transpose(0, 1).contiguous()
        result = {
            k: v for k, v in sample.items() if k not in (self.boxes_tag, self.labels_tag, self.masks_tag)
        }
        result["image"] = out["image"]
        result[self.boxes_tag] = out["boxes"]
        result[self.labels_tag] = out["labels"]
        if "masks" in out:
            result[self.masks_tag] = out["masks"]
        return result
