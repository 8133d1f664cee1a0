"""Task types, default metrics and metric-name resolution (terratorch.iterate.metrics_table)."""

from __future__ import annotations

import pytest

from terratorch.iterate import metrics_table as mt


@pytest.mark.parametrize(
    ("task_type", "metric", "direction"),
    [
        ("segmentation", "val/mIoU", "max"),
        ("regression", "val/RMSE", "min"),
        ("classification", "val/Accuracy", "max"),
        ("multilabel_classification", "val/F1_Score", "max"),
        ("scalar_regression", "val/RMSE", "min"),
    ],
)
def test_default_metric_is_logged_by_the_task_type(task_type, metric, direction):
    assert mt.default_metric(task_type) == (metric, direction)
    assert metric in mt.valid_metrics(task_type)


def test_legacy_metric_maps_with_warning():
    with pytest.warns(DeprecationWarning, match="Multiclass_Jaccard_Index"):
        assert mt.resolve_metric("val/Multiclass_Jaccard_Index", "segmentation") == "val/mIoU"


def test_metric_never_logged_lists_valid_names():
    with pytest.raises(ValueError, match=r"never logs 'val/mIoU'.*val/Accuracy"):
        mt.resolve_metric("val/mIoU", "classification")


def test_unknown_task_type_suggests():
    with pytest.raises(ValueError, match="Did you mean 'segmentation'"):
        mt.task_type_info("segmentaton")


def test_test_split_metric():
    assert mt.test_split_metric("val/mIoU") == "test/mIoU"
    assert mt.valid_metrics("classification", stage="test")[0].startswith("test/")
