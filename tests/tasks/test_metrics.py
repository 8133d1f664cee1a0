"""Metric values against hand computations, logged names and legacy-name resolution."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from terratorch.tasks.metrics import TaskMetrics, canonical_task_type, metric_names, resolve_metric_name


def _segmentation_case() -> tuple[torch.Tensor, torch.Tensor]:
    preds = torch.tensor([[0, 0, 1, 1, 2, 2]])
    target = torch.tensor([[0, 1, 1, 1, -1, 2]])  # the prediction at the ignored pixel must not count
    return preds, target


def test_segmentation_metrics_hand_values():
    metrics = TaskMetrics("segmentation", "val/", num_classes=3, ignore_index=-1, class_names=["a", "b", "c"])
    preds, target = _segmentation_case()
    metrics.update(preds, target)
    values = {k: v.item() for k, v in metrics.compute().items()}
    assert values["val/IoU_a"] == pytest.approx(1 / 2)
    assert values["val/IoU_b"] == pytest.approx(2 / 3)
    assert values["val/IoU_c"] == pytest.approx(1.0)
    assert values["val/mIoU"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert values["val/mIoU_Micro"] == pytest.approx(4 / 6)
    assert values["val/Pixel_Accuracy"] == pytest.approx(4 / 5)
    assert values["val/Accuracy"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert values["val/F1_Score"] == pytest.approx((2 / 3 + 0.8 + 1) / 3)
    assert sorted(values) == sorted(metric_names("segmentation", ["a", "b", "c"], stages=["val"])[1:])


def test_metrics_accumulate_over_batches_and_reset():
    metrics = TaskMetrics("segmentation", "train/", num_classes=3, ignore_index=-1)
    preds, target = _segmentation_case()
    metrics.update(preds[:, :3], target[:, :3])
    metrics.update(preds[:, 3:], target[:, 3:])
    assert metrics.compute()["train/mIoU"].item() == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert "train/IoU_2" in metrics.compute()
    metrics.reset()
    assert metrics.compute() == {}


def test_classification_metrics_hand_values():
    metrics = TaskMetrics("classification", "test/rural/", num_classes=2, ignore_index=-1)
    metrics.update(torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 1, 0, -1, 1]))
    values = {k: v.item() for k, v in metrics.compute().items()}
    # valid: (0,0) (1,1) (1,0) (1,1); class 0 recall 1/2, class 1 recall 1
    assert values["test/rural/Accuracy"] == pytest.approx(0.75)
    assert values["test/rural/Accuracy_Micro"] == pytest.approx(0.75)
    assert values["test/rural/Precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert values["test/rural/Recall"] == pytest.approx(0.75)
    f1_0, f1_1 = 2 * 1 * 0.5 / 1.5, 2 * (2 / 3) / (5 / 3)
    assert values["test/rural/F1_Score"] == pytest.approx((f1_0 + f1_1) / 2)


def test_multilabel_metrics_hand_values():
    metrics = TaskMetrics("multilabel", "val/", num_classes=2)
    probs = torch.tensor([[0.9, 0.2], [0.8, 0.7]])
    metrics.update(probs, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    values = {k: v.item() for k, v in metrics.compute().items()}
    assert values["val/Accuracy_Micro"] == pytest.approx(3 / 4)
    assert values["val/Accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert set(values) == {
        f"val/{m}" for m in ("Accuracy", "Accuracy_Micro", "F1_Score", "Precision", "Recall")
    }


def test_regression_metrics_skip_ignored_and_nan_targets():
    metrics = TaskMetrics("regression", "val/", ignore_index=-9999)
    preds = torch.tensor([[1.0, 2.0, 3.0], [0.0, 7.0, 5.0]])
    target = torch.tensor([[1.0, 4.0, -9999.0], [1.0, float("nan"), 5.0]])
    metrics.update(preds, target)
    values = {k: v.item() for k, v in metrics.compute().items()}
    # valid pairs: (1,1) (2,4) (0,1) (5,5)
    assert values["val/MSE"] == pytest.approx((0 + 4 + 1 + 0) / 4)
    assert values["val/RMSE"] == pytest.approx(math.sqrt(5 / 4))
    assert values["val/MAE"] == pytest.approx(3 / 4)
    mean = (1 + 4 + 1 + 5) / 4
    ss_tot = sum((t - mean) ** 2 for t in (1, 4, 1, 5))
    assert values["val/R2_Score"] == pytest.approx(1 - 5 / ss_tot)


def test_r2_with_a_single_sample_is_nan_not_an_error():
    metrics = TaskMetrics("scalar_regression", "val/")
    metrics.update(torch.tensor([1.0]), torch.tensor([2.0]))
    values = metrics.compute()
    assert math.isnan(values["val/R2_Score"].item())
    assert values["val/MAE"].item() == pytest.approx(1.0)


def test_reconstruction_has_no_metrics():
    metrics = TaskMetrics("reconstruction", "val/")
    metrics.update(torch.zeros(1), torch.zeros(1))
    assert metrics.compute() == {}


def test_task_metrics_validate_classes():
    with pytest.raises(ValueError, match="needs num_classes >= 1"):
        TaskMetrics("segmentation", "val/")
    with pytest.raises(ValueError, match="class_names has 2 entries but num_classes is 3"):
        TaskMetrics("segmentation", "val/", num_classes=3, class_names=["a", "b"])


def test_metric_names_per_task_type():
    seg = metric_names("segmentation", class_names=["water", "land"])
    assert "val/mIoU" in seg and "test/IoU_water" in seg and "train/loss" in seg
    assert "val/IoU_0" in metric_names("segmentation", num_classes=2)
    assert metric_names("pixel_regression", stages=["val"]) == [
        "val/loss",
        "val/RMSE",
        "val/MSE",
        "val/MAE",
        "val/R2_Score",
    ]
    assert "val/Accuracy_Micro" in metric_names("classification")
    assert metric_names("reconstruction") == ["train/loss", "val/loss", "test/loss"]


def test_unknown_task_type_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown task type 'segmentaton'.*Did you mean: segmentation"):
        canonical_task_type("segmentaton")


def test_resolve_current_names_unchanged_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_metric_name("val/mIoU", "segmentation") == "val/mIoU"
        assert resolve_metric_name("val/IoU_water", "segmentation") == "val/IoU_water"
        assert resolve_metric_name("test/urban/RMSE", "regression") == "test/urban/RMSE"
        assert resolve_metric_name("val/loss", "reconstruction") == "val/loss"


@pytest.mark.parametrize(
    ("legacy", "task_type", "current"),
    [
        ("val/Multiclass_Jaccard_Index", "segmentation", "val/mIoU"),
        ("val/Multiclass_Jaccard_Index_Micro", "segmentation", "val/mIoU_Micro"),
        ("val/Overall_Accuracy", "segmentation", "val/Pixel_Accuracy"),
        ("test/Multiclass_F1_Score", "segmentation", "test/F1_Score"),
        ("val/Overall_Accuracy", "classification", "val/Accuracy_Micro"),
        ("val/Multiclass_Accuracy", "classification", "val/Accuracy"),
        ("val/Multilabel_F1_Score", "multilabel_classification", "val/F1_Score"),
        ("val/rmse", "regression", "val/RMSE"),
        ("test/rural/r2", "scalar_regression", "test/rural/R2_Score"),
    ],
)
def test_resolve_legacy_names_warns(legacy, task_type, current):
    with pytest.warns(DeprecationWarning, match=f"use '{current}' instead"):
        assert resolve_metric_name(legacy, task_type) == current


def test_resolve_rejects_names_the_task_never_logs():
    with pytest.raises(ValueError, match=r"never logs 'val/mIoU'.*It logs: \['train/loss'"):
        resolve_metric_name("val/mIoU", "classification")
    with pytest.raises(ValueError, match=r"never logs 'val/mIoUU'.*Did you mean: val/mIoU"):
        resolve_metric_name("val/mIoUU", "segmentation")
    with pytest.raises(ValueError, match="not of the form '<stage>/<metric>'"):
        resolve_metric_name("mIoU", "segmentation")
    with pytest.raises(ValueError, match="not of the form"):
        resolve_metric_name("validation/mIoU", "segmentation")


def _random_segmentation(ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    target = torch.randint(0, 4, (6, 9, 9), generator=gen)  # class 4 never in the target
    preds = torch.randint(0, 4, (6, 9, 9), generator=gen)  # ... nor predicted: left out of averages
    if ignore_index is not None:
        target[:, :3] = ignore_index
    return preds, target


def _ours(preds: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> dict[str, float]:
    metrics = TaskMetrics("segmentation", "val/", num_classes=5, ignore_index=ignore_index)
    metrics.update(preds[:3], target[:3])
    metrics.update(preds[3:], target[3:])
    return {name: value.item() for name, value in metrics.compute().items()}


@pytest.mark.parametrize("ignore_index", [None, -1, 255])
def test_confusion_matrix_metrics_agree_with_torchmetrics(ignore_index):
    from torchmetrics.functional import classification as tmf

    preds, target = _random_segmentation(ignore_index)
    values = _ours(preds, target, ignore_index)
    common = {"num_classes": 5, "ignore_index": ignore_index}
    expected = {
        "val/mIoU": tmf.multiclass_jaccard_index(preds, target, average="macro", **common),
        "val/mIoU_Micro": tmf.multiclass_jaccard_index(preds, target, average="micro", **common),
        "val/F1_Score": tmf.multiclass_f1_score(preds, target, average="macro", **common),
        "val/Accuracy": tmf.multiclass_accuracy(preds, target, average="macro", **common),
        "val/Pixel_Accuracy": tmf.multiclass_accuracy(preds, target, average="micro", **common),
    }
    per_class = tmf.multiclass_jaccard_index(preds, target, average="none", **common)
    expected.update({f"val/IoU_{i}": per_class[i] for i in range(5)})
    for name, value in expected.items():
        assert values[name] == pytest.approx(value.item(), abs=1e-6), name


def test_in_range_ignore_index_is_left_out_of_every_average():
    """torchmetrics drops an in-range ignore class from mIoU but keeps it (as 0) in macro F1/accuracy;
    we leave it out of all averages, since it is never a valid target."""
    from torchmetrics.functional import classification as tmf

    preds, target = _random_segmentation(0)
    values = _ours(preds, target, 0)
    common = {"num_classes": 5, "ignore_index": 0}
    assert values["val/mIoU"] == pytest.approx(tmf.multiclass_jaccard_index(preds, target, **common).item())
    f1 = tmf.multiclass_f1_score(preds, target, average="none", **common)
    recall = tmf.multiclass_recall(preds, target, average="none", **common)
    assert values["val/F1_Score"] == pytest.approx(f1[1:4].mean().item(), abs=1e-6)  # classes 1-3 occur
    assert values["val/Accuracy"] == pytest.approx(recall[1:4].mean().item(), abs=1e-6)


def test_classification_precision_recall_agree_with_torchmetrics():
    from torchmetrics.functional import classification as tmf

    gen = torch.Generator().manual_seed(4)
    preds, target = torch.randint(0, 4, (50,), generator=gen), torch.randint(0, 4, (50,), generator=gen)
    metrics = TaskMetrics("classification", "val/", num_classes=4)
    metrics.update(preds, target)
    values = metrics.compute()
    for name, fn in (("Precision", tmf.multiclass_precision), ("Recall", tmf.multiclass_recall)):
        assert values[f"val/{name}"].item() == pytest.approx(
            fn(preds, target, num_classes=4).item(), abs=1e-6
        )


def test_regression_metrics_agree_with_torchmetrics():
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    gen = torch.Generator().manual_seed(5)
    preds, target = torch.randn(4, 8, 8, generator=gen), torch.randn(4, 8, 8, generator=gen) * 3 + 1
    metrics = TaskMetrics("regression", "val/")
    metrics.update(preds[:2], target[:2])
    metrics.update(preds[2:], target[2:])
    values = metrics.compute()
    flat_p, flat_t = preds.reshape(-1), target.reshape(-1)
    assert values["val/MSE"].item() == pytest.approx(mean_squared_error(flat_p, flat_t).item(), rel=1e-5)
    assert values["val/MAE"].item() == pytest.approx(mean_absolute_error(flat_p, flat_t).item(), rel=1e-5)
    assert values["val/R2_Score"].item() == pytest.approx(r2_score(flat_p, flat_t).item(), rel=1e-4)
