"""Task types of the benchmark tool: their task class, default metric and direction, valid metrics.

This table is shared by config validation (``config.py``) and config conversion (``convert.py``), so
both agree on what a task type means. Which metric names exist (and which legacy names map to them)
is decided by :mod:`terratorch.tasks.metrics`, the single source of truth for what tasks log.

Default metric choices:
    segmentation: ``val/mIoU`` (max) — mean IoU over classes, the usual segmentation benchmark score.
    regression (pixel-wise) and scalar_regression: ``val/RMSE`` (min).
    classification: ``val/Accuracy`` (max) — macro-averaged accuracy (robust to class imbalance;
        ``val/Accuracy_Micro`` is the overall accuracy).
    multilabel_classification: ``val/F1_Score`` (max) — accuracy is misleading when most labels are 0.
    object_detection: ``val/mAP`` (max) — COCO mAP over IoU 0.50:0.95 (the reference logs it as
        ``val_map``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DIRECTIONS",
    "TASK_TYPES",
    "TaskTypeInfo",
    "default_metric",
    "resolve_metric",
    "task_type_info",
    "test_split_metric",
    "valid_metrics",
]

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class TaskTypeInfo:
    """What the benchmark tool knows about one task type.

    Attributes:
        task_class: Class name in :mod:`terratorch.tasks`.
        factory_task: The ``task`` argument model factories receive (segmentation|regression|classification).
        metric: Default metric to optimise.
        direction: ``"max"`` or ``"min"`` for ``metric``.
        target: Batch key holding the target (``mask`` or ``label``).
    """

    task_class: str
    factory_task: str
    metric: str
    direction: str
    target: str


TASK_TYPES: dict[str, TaskTypeInfo] = {
    "segmentation": TaskTypeInfo("SemanticSegmentationTask", "segmentation", "val/mIoU", "max", "mask"),
    "regression": TaskTypeInfo("PixelwiseRegressionTask", "regression", "val/RMSE", "min", "mask"),
    "classification": TaskTypeInfo("ClassificationTask", "classification", "val/Accuracy", "max", "label"),
    "multilabel_classification": TaskTypeInfo(
        "MultiLabelClassificationTask", "classification", "val/F1_Score", "max", "label"
    ),
    "scalar_regression": TaskTypeInfo("ScalarRegressionTask", "regression", "val/RMSE", "min", "label"),
    "object_detection": TaskTypeInfo("ObjectDetectionTask", "object_detection", "val/mAP", "max", "boxes"),
}


def task_type_info(task_type: str) -> TaskTypeInfo:
    """Look up a task type; unknown types raise ``ValueError`` listing the valid ones."""
    try:
        return TASK_TYPES[task_type]
    except KeyError:
        from terratorch.choices import did_you_mean

        hint = did_you_mean(task_type, TASK_TYPES)
        raise ValueError(
            f"Unknown task type {task_type!r}; valid types are {sorted(TASK_TYPES)}.{hint}"
        ) from None


def default_metric(task_type: str) -> tuple[str, str]:
    """``(metric, direction)`` optimised for ``task_type`` when the config names none."""
    info = task_type_info(task_type)
    return info.metric, info.direction


def valid_metrics(task_type: str, class_names: list[str] | None = None, stage: str = "val") -> list[str]:
    """Every metric name a task of ``task_type`` logs for ``stage`` (``val``/``test``/``train``)."""
    from terratorch.tasks.metrics import metric_names

    task_type_info(task_type)
    return metric_names(task_type, class_names=class_names, stages=(stage,))


def resolve_metric(name: str, task_type: str) -> str:
    """Map a configured metric name to the name the task logs (delegates to ``terratorch.tasks.metrics``).

    Legacy names (``val/Multiclass_Jaccard_Index``) map to current ones with a ``DeprecationWarning``.

    Raises:
        ValueError: ``task_type`` never logs ``name``; the message lists the valid names.
    """
    from terratorch.tasks.metrics import resolve_metric_name

    task_type_info(task_type)
    return resolve_metric_name(name, task_type)


def test_split_metric(metric: str) -> str:
    """The test-split counterpart of a validation metric: ``val/mIoU`` → ``test/mIoU``."""
    _, sep, suffix = metric.partition("/")
    return f"test/{suffix if sep else metric}"
