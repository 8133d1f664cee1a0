"""Metrics of the fine-tuning tasks and the names they are logged under.

Every task logs ``<stage>/loss`` plus the metrics of its type, where ``<stage>`` is ``train``, ``val``
or ``test`` (``test/<dataloader name>`` when a task has several named test dataloaders):

- segmentation: ``mIoU`` (macro IoU over classes seen in target or prediction), ``mIoU_Micro``,
  ``F1_Score`` (macro), ``Accuracy`` (macro = mean per-class recall), ``Pixel_Accuracy`` (micro),
  ``IoU_<class>`` (class name from ``class_names``, else the index);
- classification and multi-label classification: ``Accuracy`` (macro), ``Accuracy_Micro``,
  ``F1_Score``, ``Precision``, ``Recall`` (macro);
- regression (pixel-wise and scalar): ``RMSE``, ``MSE``, ``MAE``, ``R2_Score``;
- reconstruction: only the loss.

Targets equal to ``ignore_index`` never count. Older names used by upstream configs
(``val/Multiclass_Jaccard_Index``, ``val/Overall_Accuracy``, ...) are mapped by
:func:`resolve_metric_name` with a ``DeprecationWarning``.

The name helpers (:func:`metric_names`, :func:`resolve_metric_name`) need no torchmetrics, so config
validation can use them before anything is built.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from terratorch.choices import did_you_mean
from terratorch.tasks.detection_metrics import detection_metric_names

__all__ = [
    "LEGACY_METRIC_NAMES",
    "TASK_METRICS",
    "ConfusionMatrixMetrics",
    "RegressionMetrics",
    "TaskMetrics",
    "canonical_task_type",
    "metric_names",
    "resolve_metric_name",
]

STAGES = ("train", "val", "test")

TASK_METRICS: dict[str, list[str]] = {
    "segmentation": ["mIoU", "mIoU_Micro", "F1_Score", "Accuracy", "Pixel_Accuracy"],
    "classification": ["Accuracy", "Accuracy_Micro", "F1_Score", "Precision", "Recall"],
    "multilabel_classification": ["Accuracy", "Accuracy_Micro", "F1_Score", "Precision", "Recall"],
    "regression": ["RMSE", "MSE", "MAE", "R2_Score"],
    "scalar_regression": ["RMSE", "MSE", "MAE", "R2_Score"],
    "reconstruction": [],
    "object_detection": detection_metric_names(),
}
"""Metric names (without stage prefix) each task type logs, besides ``loss``."""

_TASK_ALIASES = {
    "semantic_segmentation": "segmentation",
    "pixel_regression": "regression",
    "pixelwise_regression": "regression",
    "multilabel": "multilabel_classification",
    "multi_label_classification": "multilabel_classification",
    "scalar": "scalar_regression",
}

_REGRESSION_LEGACY = {
    "rmse": "RMSE",
    "mse": "MSE",
    "mae": "MAE",
    "r2": "R2_Score",
    "r2_score": "R2_Score",
    "R2": "R2_Score",
    "Mean_Squared_Error": "MSE",
    "Mean_Absolute_Error": "MAE",
    "Root_Mean_Squared_Error": "RMSE",
}

LEGACY_METRIC_NAMES: dict[str, dict[str, str]] = {
    "segmentation": {
        "Multiclass_Jaccard_Index": "mIoU",
        "Multiclass_Jaccard_Index_Micro": "mIoU_Micro",
        "Jaccard_Index": "mIoU",
        "Overall_Accuracy": "Pixel_Accuracy",
        "Average_Accuracy": "Accuracy",
        "Multiclass_Accuracy": "Accuracy",
        "Multiclass_F1_Score": "F1_Score",
    },
    "classification": {
        "Overall_Accuracy": "Accuracy_Micro",
        "Average_Accuracy": "Accuracy",
        "Multiclass_Accuracy": "Accuracy",
        "Multiclass_F1_Score": "F1_Score",
        "Multiclass_Precision": "Precision",
        "Multiclass_Recall": "Recall",
    },
    "multilabel_classification": {
        "Overall_Accuracy": "Accuracy_Micro",
        "Average_Accuracy": "Accuracy",
        "Multilabel_Accuracy": "Accuracy",
        "Multilabel_F1_Score": "F1_Score",
        "Multilabel_Precision": "Precision",
        "Multilabel_Recall": "Recall",
    },
    "regression": dict(_REGRESSION_LEGACY),
    "scalar_regression": dict(_REGRESSION_LEGACY),
    "reconstruction": {},
    "object_detection": {"map": "mAP", "map_50": "mAP_50", "map_75": "mAP_75", "segm_map": "segm_mAP"},
}
"""Old metric names (without stage prefix) → current name, per task type."""

_NAME_PATTERN = re.compile(r"^(?P<stage>train|val|test)/(?:(?P<loader>[^/]+)/)?(?P<metric>[^/]+)$")


def canonical_task_type(task_type: str) -> str:
    """Normalise a task type (``"pixel_regression"`` → ``"regression"``, ...).

    Raises:
        ValueError: Unknown task type (lists the valid ones).
    """
    key = _TASK_ALIASES.get(task_type, task_type)
    if key not in TASK_METRICS:
        valid = sorted(TASK_METRICS)
        hint = did_you_mean(task_type, [*valid, *_TASK_ALIASES], n=5, bare=True)
        raise ValueError(f"Unknown task type {task_type!r}.{hint} Valid task types: {valid}.")
    return key


def per_class_labels(num_classes: int | None, class_names: Sequence[str] | None) -> list[str]:
    """Labels used in per-class metric names: ``class_names`` if given, else ``"0"``, ``"1"``, ..."""
    if class_names is not None:
        return [str(name) for name in class_names]
    return [str(i) for i in range(num_classes or 0)]


def _metric_suffixes(task_type: str, class_names: Sequence[str] | None, num_classes: int | None) -> list[str]:
    names = ["loss", *TASK_METRICS[task_type]]
    if task_type == "segmentation":
        names += [f"IoU_{label}" for label in per_class_labels(num_classes, class_names)]
    return names


def metric_names(
    task_type: str,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    stages: Sequence[str] = STAGES,
) -> list[str]:
    """Every name a task of ``task_type`` logs, e.g. ``["train/loss", "train/mIoU", ..., "test/IoU_water"]``.

    Args:
        task_type: ``segmentation``, ``regression``, ``classification``,
            ``multilabel_classification``, ``scalar_regression`` or ``reconstruction`` (aliases such
            as ``pixel_regression`` and ``multilabel`` are accepted).
        class_names: Names used for per-class metrics (segmentation ``IoU_<class>``).
        num_classes: Without ``class_names``, per-class metrics use indices ``0..num_classes-1``.
        stages: Which stage prefixes to list.
    """
    kind = canonical_task_type(task_type)
    suffixes = _metric_suffixes(kind, class_names, num_classes)
    return [f"{stage}/{name}" for stage in stages for name in suffixes]


def _is_current(metric: str, task_type: str) -> bool:
    if metric == "loss" or metric in TASK_METRICS[task_type]:
        return True
    return task_type == "segmentation" and metric.startswith("IoU_") and len(metric) > len("IoU_")


def resolve_metric_name(name: str, task_type: str) -> str:
    """Map a metric name from a config to the name the task logs.

    Current names come back unchanged; legacy names (``val/Multiclass_Jaccard_Index``) are mapped
    to current ones (``val/mIoU``) with a ``DeprecationWarning``.

    Args:
        name: ``<stage>/<metric>`` or ``test/<dataloader name>/<metric>``.
        task_type: The task type (see :func:`metric_names`).

    Raises:
        ValueError: The task never logs such a metric (the message lists the valid names).
    """
    kind = canonical_task_type(task_type)
    valid = metric_names(kind)
    match = _NAME_PATTERN.match(name)
    if match is None:
        hint = did_you_mean(name, valid, n=5, bare=True)
        raise ValueError(
            f"Metric name {name!r} is not of the form '<stage>/<metric>' with stage in {list(STAGES)}."
            f"{hint} A {kind} task logs: {valid}."
        )
    metric = match["metric"]
    if _is_current(metric, kind):
        return name
    legacy = LEGACY_METRIC_NAMES[kind]
    if metric in legacy:
        prefix = name[: len(name) - len(metric)]
        new_name = prefix + legacy[metric]
        warnings.warn(
            f"Metric name {name!r} is deprecated; use {new_name!r} instead.", DeprecationWarning, stacklevel=2
        )
        return new_name
    hint = did_you_mean(name, valid, n=5, bare=True)
    per_class = " (plus IoU_<class> per class)" if kind == "segmentation" else ""
    raise ValueError(f"A {kind} task never logs {name!r}.{hint} It logs: {valid}{per_class}.")


def _safe_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with ``0`` where the denominator is ``0``."""
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-12), torch.zeros_like(numerator))


def _macro(per_class: Tensor, counted: Tensor) -> Tensor:
    """Mean of per-class values over the classes marked in ``counted``."""
    weights = counted.to(per_class.dtype)
    return (per_class * weights).sum() / weights.sum().clamp_min(1.0)


class ConfusionMatrixMetrics(Metric):
    """Multi-class metrics derived from one confusion matrix (segmentation and classification).

    Each update adds one ``index_add_`` of ``target * C + pred`` into a ``(C, C)`` count matrix (no
    host sync, deterministic on GPU), which is much cheaper per step than one torchmetrics object
    per metric. ``compute`` derives every value with torchmetrics' conventions: macro averages run
    over classes that occur in the target or the prediction. An ``ignore_index`` inside ``[0, C)``
    is left out of every average (torchmetrics drops it from IoU but keeps it, as 0, in macro
    F1/accuracy, although it can never be a valid target).

    Args:
        num_classes: ``C``.
        ignore_index: Target value that never counts.
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", default=torch.zeros(num_classes * num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """``target`` class indices ``(B,)`` or ``(B, H, W)``; ``preds`` class indices of the same shape,
        or scores (logits/probabilities) with classes on dimension 1 (``(B, C)``, ``(B, C, H, W)``),
        which count as their argmax, as torchmetrics does."""
        c = self.num_classes
        if preds.dim() == target.dim() + 1:
            if preds.shape[1] != c:
                raise ValueError(
                    f"Class scores of shape {tuple(preds.shape)} have {preds.shape[1]} classes on "
                    "dimension 1; "
                    f"the metrics were built for num_classes={c}."
                )
            preds = preds.argmax(dim=1)
        elif preds.shape != target.shape:
            raise ValueError(
                f"Predictions of shape {tuple(preds.shape)} do not match targets of shape "
                f"{tuple(target.shape)}: "
                "pass class indices of the target's shape or scores with classes on dimension 1."
            )
        valid = (target >= 0) & (target < c)
        if self.ignore_index is not None:
            valid &= target != self.ignore_index
        index = torch.where(valid, target.long() * c + preds.long(), c * c).reshape(-1)
        counts = torch.zeros(c * c + 1, dtype=torch.long, device=index.device)
        counts.index_add_(0, index, torch.ones_like(index))
        self.confmat += counts[: c * c]

    def compute(self) -> dict[str, Tensor]:
        """``mIoU``, ``mIoU_Micro``, ``IoU`` (per class), ``Accuracy`` (macro), ``Accuracy_Micro`` (=
        ``Pixel_Accuracy``), ``F1_Score``, ``Precision``, ``Recall`` (macro)."""
        c = self.num_classes
        confmat = self.confmat.reshape(c, c).double()  # rows: target, columns: prediction
        tp = confmat.diag()
        fp = confmat.sum(0) - tp
        fn = confmat.sum(1) - tp
        counted = (tp + fp + fn) > 0
        if self.ignore_index is not None and 0 <= self.ignore_index < c:
            counted[self.ignore_index] = False
        iou = _safe_ratio(tp, tp + fp + fn)
        recall = _safe_ratio(tp, tp + fn)
        values = {
            "IoU": iou,
            "mIoU": _macro(iou, counted),
            "mIoU_Micro": _safe_ratio(tp[counted].sum(), (tp + fp + fn)[counted].sum()),
            "Accuracy": _macro(recall, counted),
            "Accuracy_Micro": _safe_ratio(tp.sum(), confmat.sum()),
            "Pixel_Accuracy": _safe_ratio(tp.sum(), confmat.sum()),
            "F1_Score": _macro(_safe_ratio(2 * tp, 2 * tp + fp + fn), counted),
            "Precision": _macro(_safe_ratio(tp, tp + fp), counted),
            "Recall": _macro(recall, counted),
        }
        return {name: value.float() for name, value in values.items()}


class RegressionMetrics(Metric):
    """MSE, RMSE, MAE and R2 from running sums over valid targets (no boolean indexing, no sync).

    Targets equal to ``ignore_index`` or not finite are skipped. ``R2_Score`` is ``NaN`` with fewer
    than two valid targets (torchmetrics would raise).

    Args:
        ignore_index: Target value that never counts.
    """

    full_state_update = False

    def __init__(self, ignore_index: int | float | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        for name in ("count", "sum_sq_error", "sum_abs_error", "sum_target", "sum_sq_target"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Predictions and targets of one shape (``(B,)``, ``(B, H, W)``; ``(B, 1, ...)`` is squeezed)."""
        if preds.shape != target.shape and preds.dim() == target.dim() + 1 and preds.shape[1] == 1:
            preds = preds.squeeze(1)
        valid = torch.isfinite(target)
        if self.ignore_index is not None:
            valid &= target != self.ignore_index
        weight = valid.float()
        safe_target = torch.where(valid, target, torch.zeros_like(target)).float()
        error = (preds.float() - safe_target) * weight
        self.count += weight.sum()
        self.sum_sq_error += (error**2).sum()
        self.sum_abs_error += error.abs().sum()
        self.sum_target += safe_target.sum()
        self.sum_sq_target += (safe_target**2).sum()

    def compute(self) -> dict[str, Tensor]:
        """``MSE``, ``RMSE``, ``MAE``, ``R2_Score``."""
        count = self.count.clamp_min(1.0)
        mse = self.sum_sq_error / count
        total = self.sum_sq_target - self.sum_target**2 / count
        r2 = torch.where(self.count >= 2, 1.0 - self.sum_sq_error / total, torch.tensor(float("nan")))
        return {"MSE": mse, "RMSE": mse.sqrt(), "MAE": self.sum_abs_error / count, "R2_Score": r2}


def _multilabel_metrics(num_labels: int, ignore_index: int | None) -> Any:
    """torchmetrics collection for multi-label classification (thresholded at 0.5)."""
    from torchmetrics import MetricCollection
    from torchmetrics import classification as tmc

    common: dict[str, Any] = {"num_labels": num_labels, "ignore_index": ignore_index, "validate_args": False}
    return MetricCollection(
        {
            "Accuracy": tmc.MultilabelAccuracy(average="macro", **common),
            "Accuracy_Micro": tmc.MultilabelAccuracy(average="micro", **common),
            "F1_Score": tmc.MultilabelF1Score(average="macro", **common),
            "Precision": tmc.MultilabelPrecision(average="macro", **common),
            "Recall": tmc.MultilabelRecall(average="macro", **common),
        }
    )


class TaskMetrics(nn.Module):
    """The metrics of one stage of one task, computed under their final logged names.

    Args:
        task_type: Task type (see :func:`metric_names`).
        prefix: Stage prefix including a trailing slash, e.g. ``"val/"`` or ``"test/rural/"``.
        num_classes: Number of classes (segmentation, classification, multi-label).
        ignore_index: Target value that never counts.
        class_names: Labels for per-class metrics (length ``num_classes``).

    ``update`` expects, per task type: segmentation/classification class-index predictions
    ``(B, ...)`` (or class scores ``(B, C, ...)``, counted as their argmax) and integer targets
    ``(B, ...)``; multi-label probabilities ``(B, C)`` and
    0/1 targets ``(B, C)``; regression predictions and targets of the same shape.
    """

    def __init__(
        self,
        task_type: str,
        prefix: str,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.task_type = canonical_task_type(task_type)
        self.prefix = prefix
        self.labels: list[str] = []
        self.metric: nn.Module | None = None
        if self.task_type in ("segmentation", "classification", "multilabel_classification"):
            self._check_classes(num_classes, class_names)
            self.labels = per_class_labels(num_classes, class_names)
            if self.task_type == "multilabel_classification":
                self.metric = _multilabel_metrics(num_classes, ignore_index)
            else:
                self.metric = ConfusionMatrixMetrics(num_classes, ignore_index)
        elif self.task_type in ("regression", "scalar_regression"):
            self.metric = RegressionMetrics(ignore_index)
        self._seen = 0

    def _check_classes(self, num_classes: int | None, class_names: Sequence[str] | None) -> None:
        if not num_classes or num_classes < 1:
            raise ValueError(f"A {self.task_type} task needs num_classes >= 1 for its metrics.")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} entries but num_classes is {num_classes}: "
                f"{list(class_names)}."
            )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate one batch (shapes in the class docstring)."""
        if self.metric is None:
            return
        if self.task_type == "multilabel_classification":
            target = target.long()
        self._seen += int(target.numel())
        self.metric.update(preds, target)

    def compute(self) -> dict[str, Tensor]:
        """Final values by logged name (``{prefix}mIoU``, ``{prefix}IoU_<class>``, ...)."""
        if self.metric is None or self._seen == 0:
            return {}
        values: dict[str, Tensor] = dict(self.metric.compute())
        wanted = TASK_METRICS[self.task_type]
        result = {name: values[name] for name in wanted}
        if self.task_type == "segmentation":
            result.update({f"IoU_{label}": values["IoU"][i] for i, label in enumerate(self.labels)})
        return {f"{self.prefix}{name}": value for name, value in result.items()}

    def reset(self) -> None:
        """Forget the accumulated state (called at the end of each epoch)."""
        if self.metric is not None:
            self.metric.reset()
        self._seen = 0
