"""MultiLabelClassificationTask end to end on tiny in-memory data."""

from __future__ import annotations

import pytest
import torch

from terratorch.tasks import MultiLabelClassificationTask
from terratorch.tasks.losses import BCELoss

METRICS = ["Accuracy", "Accuracy_Micro", "F1_Score", "Precision", "Recall"]


def _task(tiny, **kwargs):
    return MultiLabelClassificationTask(
        model=tiny.Model("classification", num_classes=3), class_names=["a", "b", "c"], **kwargs
    )


def test_fit_validate_test_predict_log_contract_names(tiny):
    task = _task(tiny)
    assert isinstance(task.criterion, BCELoss)
    trainer = tiny.trainer(limit_val_batches=2)
    loader = tiny.loader("multilabel")
    trainer.fit(task, loader, loader)
    logged = trainer.callback_metrics
    assert {"train/loss", "val/loss", *(f"val/{m}" for m in METRICS)} <= set(logged)
    assert all(0.0 <= float(logged[f"val/{m}"]) <= 1.0 for m in METRICS)
    assert {f"test/{m}" for m in METRICS} <= set(trainer.test(task, loader)[0])
    predicted = trainer.predict(task, tiny.loader("multilabel", n=4))[0]
    assert predicted["prediction"].shape == (4, 3)
    assert set(predicted["prediction"].unique().tolist()) <= {0, 1}
    assert torch.equal(predicted["prediction"], (predicted["probabilities"] > 0.5).long())


def test_micro_accuracy_matches_thresholded_predictions(tiny):
    task = _task(tiny)
    loader = tiny.loader("multilabel", n=8)
    logged = tiny.trainer().validate(task, loader)[0]
    with torch.no_grad():
        correct = sum(
            int(((task(b["image"]).output.sigmoid() > 0.5).float() == b["label"]).sum()) for b in loader
        )
    assert logged["val/Accuracy_Micro"] == pytest.approx(correct / 24)


def test_target_shape_and_values_are_checked(tiny):
    task = _task(tiny, ignore_index=-1)
    batch = {"label": torch.tensor([[1.0, 0.0, -1.0]]), "filename": ["x.tif"]}
    task.check_target(batch["label"], "train", 0, batch)
    with pytest.raises(ValueError, match=r"multi-label targets must be \(B, 3\), got \(1, 2\)"):
        task.check_target(torch.zeros(1, 2), "train", 0, batch)
    with pytest.raises(
        ValueError, match=r"must be 0 or 1 \(or ignore_index=-1\), found \[2.0\]; files: \['x.tif'\]"
    ):
        task.check_target(torch.tensor([[2.0, 0.0, 1.0]]), "train", 0, batch)
