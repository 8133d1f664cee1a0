"""Mean average precision of object detectors under the names the tasks log.

:class:`DetectionMetrics` wraps torchmetrics' ``MeanAveragePrecision`` (COCO evaluation through
pycocotools) and renames its results: ``map`` → ``mAP``, ``map_50`` → ``mAP_50``, ``mar_100`` →
``mAR_100``, ... for boxes; instance masks (Mask R-CNN) get the same names behind ``segm_``
(``segm_mAP``, ``segm_mAP_50``). ``<stage>/mAP`` is the COCO mAP averaged over IoU 0.50:0.95.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BOX_METRICS", "DetectionMetrics", "detection_metric_names"]

#: Scalar results of ``MeanAveragePrecision`` (its names), in the order they are logged.
_TORCHMETRICS_KEYS = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)


def _our_name(key: str) -> str:
    """``map_50`` → ``mAP_50``, ``mar_100`` → ``mAR_100``."""
    head, _, rest = key.partition("_")
    name = {"map": "mAP", "mar": "mAR"}[head]
    return f"{name}_{rest}" if rest else name


#: Box metric names (without stage prefix); mask models also log them with a ``segm_`` prefix.
BOX_METRICS = tuple(_our_name(key) for key in _TORCHMETRICS_KEYS)


def detection_metric_names(with_masks: bool = True) -> list[str]:
    """Metric names (without stage prefix) a detection task may log: box metrics, then mask ones."""
    return [*BOX_METRICS, *((f"segm_{name}" for name in BOX_METRICS) if with_masks else ())]


class DetectionMetrics(nn.Module):
    """COCO mAP/mAR of one stage, computed under their logged names (``val/mAP``, ``val/mAP_50``, ...).

    Args:
        prefix: Stage prefix with trailing slash (``"val/"``, ``"test/"``).
        with_masks: Also evaluate instance masks (``segm_*`` names); predictions and targets then
            carry ``masks`` ``(N, H, W)`` (bool or 0/1).
    """

    def __init__(self, prefix: str, with_masks: bool = False) -> None:
        super().__init__()
        from torchmetrics.detection.mean_ap import MeanAveragePrecision

        self.prefix = prefix
        self.with_masks = with_masks
        iou_type: Any = ("bbox", "segm") if with_masks else "bbox"
        self.metric = MeanAveragePrecision(iou_type=iou_type, average="macro", backend="pycocotools")
        self._seen = 0

    def update(self, predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> None:
        """Accumulate one batch: per image ``{boxes, scores, labels[, masks]}`` (predictions) and
        ``{boxes, labels[, masks]}`` (targets)."""
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets in one batch.")
        preds = [self._plain(p, with_scores=True) for p in predictions]
        target = [self._plain(t, with_scores=False) for t in targets]
        self.metric.update(preds, target)
        self._seen += len(preds)

    def _plain(self, item: dict[str, Tensor], with_scores: bool) -> dict[str, Tensor]:
        keys = [
            "boxes",
            "labels",
            *(["scores"] if with_scores else []),
            *(["masks"] if self.with_masks else []),
        ]
        out = {}
        for key in keys:
            if key not in item:
                raise KeyError(
                    f"detection {'prediction' if with_scores else 'target'} lacks {key!r}: {sorted(item)}"
                )
            value = item[key].detach()
            out[key] = value.bool() if key == "masks" else value
        out["boxes"] = out["boxes"].float().reshape(-1, 4)
        out["labels"] = out["labels"].long()
        return out

    def compute(self) -> dict[str, Tensor]:
        """``{prefix}mAP``, ``{prefix}mAP_50``, ... (empty before any update)."""
        if self._seen == 0:
            return {}
        raw = self.metric.compute()
        values: dict[str, Tensor] = {}
        groups = [("bbox_", ""), ("segm_", "segm_")] if self.with_masks else [("", "")]
        for source, target in groups:
            for key in _TORCHMETRICS_KEYS:
                value = raw.get(source + key)
                if isinstance(value, Tensor) and value.numel() == 1:
                    values[f"{self.prefix}{target}{_our_name(key)}"] = value.to(torch.float32)
        return values

    def reset(self) -> None:
        """Forget the accumulated batches."""
        self.metric.reset()
        self._seen = 0
