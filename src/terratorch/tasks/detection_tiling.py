"""Object detection over scenes larger than the detector's input: overlapping tiles, one merged result.

:func:`tiled_detection` places crops as :mod:`terratorch.tasks.tiled_inference` does (starts at
``0, stride, 2*stride, ...``, the last crop aligned with the far border, a scene smaller than a crop
padded with zeros), runs the detector on ``batch_size`` crops at a time, shifts each crop's boxes to
scene pixel coordinates and merges them with :func:`merge_detections`. Only the boxes of the crops
are kept between batches, so memory is one batch of crops plus the detections, never the scene's
feature maps.

Merging across tile borders: an object cut by a crop edge that lies inside the scene is seen whole
by the neighbouring crop when the overlap (``crop - stride``) is at least the object's size. Its cut
box would survive plain NMS (half an object has IoU 0.5 with the whole one), so a box touching such
an inner crop edge ranks after every uncut box and is dropped when most of it (``cut_overlap``,
intersection over its own area) lies inside an already kept box. The rest is greedy class-agnostic
NMS over the whole scene with ``iou_threshold``, as the task applies per image. Choose
``crop - stride`` at least as large as the largest object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["box_iou_and_ioa", "merge_detections", "tiled_detection"]

Detector = Callable[[Tensor], Sequence[dict[str, Tensor]]]


def box_iou_and_ioa(boxes: Tensor, others: Tensor) -> tuple[Tensor, Tensor]:
    """IoU ``(N, M)`` of ``xyxy`` boxes, and the intersection over the area of each ``boxes`` row."""
    lt = torch.maximum(boxes[:, None, :2], others[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area_a = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=-1)
    area_b = (others[:, 2:] - others[:, :2]).clamp(min=0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    ioa = torch.where(area_a[:, None] > 0, inter / area_a[:, None].clamp(min=1e-12), torch.zeros_like(inter))
    return iou, ioa


def merge_detections(
    detections: dict[str, Tensor], cut: Tensor, iou_threshold: float = 0.5, cut_overlap: float = 0.5
) -> dict[str, Tensor]:
    """Greedy class-agnostic NMS in which boxes cut by an inner tile edge rank last (module docstring).

    Args:
        detections: ``boxes`` ``(N, 4)`` xyxy, ``scores`` ``(N,)``, ``labels`` ``(N,)`` and optionally
            ``masks`` ``(N, ...)``, all in scene coordinates.
        cut: ``(N,)`` bool, whether each box touches a crop edge inside the scene.
        iou_threshold: A box overlapping a kept box by more IoU than this is dropped.
        cut_overlap: A cut box whose area lies inside a kept box by more than this fraction is dropped.

    Returns:
        The kept detections (same keys), ordered by descending score.
    """
    boxes, scores = detections["boxes"], detections["scores"]
    if boxes.shape[0] == 0:
        return dict(detections)
    # uncut boxes first, each group by descending score
    order = sorted(range(boxes.shape[0]), key=lambda i: (bool(cut[i]), -float(scores[i])))
    order_t = torch.as_tensor(order, dtype=torch.long)
    iou, ioa = box_iou_and_ioa(boxes[order_t], boxes[order_t])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    kept: list[int] = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(rank)
        later = torch.arange(len(order)) > rank
        drop = iou[rank] > iou_threshold
        drop |= cut[order_t] & (ioa[:, rank] > cut_overlap)
        suppressed |= drop & later
    chosen = order_t[torch.as_tensor(kept, dtype=torch.long)]
    chosen = chosen[torch.argsort(scores[chosen], descending=True)]
    return {key: value[chosen] for key, value in detections.items()}


def _starts(length: int, crop: int, stride: int) -> list[int]:
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop, stride))
    starts.append(length - crop)
    return starts


def tiled_detection(
    detect: Detector,
    image: Tensor,
    crop: int = 224,
    stride: int = 192,
    h_crop: int | None = None,
    w_crop: int | None = None,
    h_stride: int | None = None,
    w_stride: int | None = None,
    batch_size: int = 16,
    iou_threshold: float = 0.5,
    cut_overlap: float = 0.5,
    edge_margin: float = 1.0,
    verbose: bool = False,
    **unused: Any,
) -> dict[str, Tensor]:
    """Detect objects in one scene ``(C, H, W)`` tile by tile; boxes in scene pixel coordinates.

    Args:
        detect: Maps a crop batch ``(n, C, h_crop, w_crop)`` to one ``{boxes, scores, labels[, masks]}``
            per crop (crop pixel coordinates), e.g. the task's forward plus score filtering.
        image: The scene ``(C, H, W)``.
        crop, stride: Crop size and step for both axes (``h_*``/``w_*`` override one axis), as in
            :func:`terratorch.tasks.tiled_inference.tiled_inference`.
        batch_size: Crops per detector call (bounds the memory).
        iou_threshold: NMS IoU threshold of the scene-wide merge.
        cut_overlap: See :func:`merge_detections`.
        edge_margin: A box within this many pixels of an inner crop edge counts as cut.
        verbose: Print the number of crops.
        **unused: Options of pixel-wise tiled inference (``delta``, ``blend``, ``average_patches``,
            ...) are accepted and ignored, so one ``tiled_inference_parameters`` block fits both.

    Returns:
        ``{boxes (N, 4), scores (N,), labels (N,)}`` for the whole scene. Instance masks of crops are
        not pasted into the scene (a scene-sized mask per object would not fit the memory bound).
    """
    from terratorch.tasks.tiled_inference import _crop_and_stride

    if image.dim() != 3:
        raise ValueError(f"tiled_detection takes one scene (C, H, W), got shape {tuple(image.shape)}.")
    crop_h, crop_w, stride_h, stride_w = _crop_and_stride(crop, stride, h_crop, w_crop, h_stride, w_stride)
    height, width = int(image.shape[-2]), int(image.shape[-1])
    tiles = [(y, x) for y in _starts(height, crop_h, stride_h) for x in _starts(width, crop_w, stride_w)]
    if verbose:
        print(f"tiled detection: {len(tiles)} crops of {crop_h}x{crop_w} over {height}x{width}")
    parts: dict[str, list[Tensor]] = {}
    cuts: list[Tensor] = []
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        crops = image.new_zeros((len(chunk), image.shape[0], crop_h, crop_w))
        for i, (y, x) in enumerate(chunk):
            piece = image[:, y : y + crop_h, x : x + crop_w]
            crops[i, :, : piece.shape[1], : piece.shape[2]] = piece
        with torch.no_grad():
            found = detect(crops)
        for (y, x), result in zip(chunk, found):
            boxes = result["boxes"].detach().float().cpu()
            boxes[:, [0, 2]] = (boxes[:, [0, 2]] + x).clamp(0, width)
            boxes[:, [1, 3]] = (boxes[:, [1, 3]] + y).clamp(0, height)
            cuts.append(_touches_inner_edge(boxes, y, x, crop_h, crop_w, height, width, edge_margin))
            parts.setdefault("boxes", []).append(boxes)
            parts.setdefault("scores", []).append(result["scores"].detach().float().cpu())
            parts.setdefault("labels", []).append(result["labels"].detach().cpu())
    if not parts:
        return {
            "boxes": torch.zeros(0, 4),
            "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.long),
        }
    merged = {key: torch.cat(values) for key, values in parts.items()}
    return merge_detections(merged, torch.cat(cuts), iou_threshold=iou_threshold, cut_overlap=cut_overlap)


def _touches_inner_edge(
    boxes: Tensor, y: int, x: int, crop_h: int, crop_w: int, height: int, width: int, margin: float
) -> Tensor:
    """Whether each scene-coordinate box touches an edge of crop ``(y, x)`` that lies inside the scene."""
    cut = torch.zeros(boxes.shape[0], dtype=torch.bool)
    if x > 0:
        cut |= boxes[:, 0] <= x + margin
    if x + crop_w < width:
        cut |= boxes[:, 2] >= x + crop_w - margin
    if y > 0:
        cut |= boxes[:, 1] <= y + margin
    if y + crop_h < height:
        cut |= boxes[:, 3] >= y + crop_h - margin
    return cut
