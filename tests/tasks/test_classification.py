"""ClassificationTask end to end on tiny in-memory data."""

from __future__ import annotations

import pytest
import torch

from terratorch.tasks import ClassificationTask

METRICS = ["Accuracy", "Accuracy_Micro", "F1_Score", "Precision", "Recall"]


def _task(tiny, **kwargs):
    kwargs.setdefault("model", tiny.Model("classification", num_classes=3))
    return ClassificationTask(num_classes=3, **kwargs)


def test_fit_validate_test_predict_log_contract_names(tiny):
    task = _task(tiny, loss="focal", class_weights=[1.0, 1.0, 2.0])
    trainer = tiny.trainer(limit_val_batches=2)
    loader = tiny.loader("classification")
    trainer.fit(task, loader, loader)
    logged = trainer.callback_metrics
    assert {"train/loss", "val/loss", *(f"val/{m}" for m in METRICS), "train/Accuracy"} <= set(logged)
    assert all(0.0 <= float(logged[f"val/{m}"]) <= 1.0 for m in METRICS)
    assert {f"test/{m}" for m in METRICS} <= set(trainer.test(task, loader)[0])
    predicted = trainer.predict(task, tiny.loader("classification", n=4))[0]
    assert predicted["prediction"].shape == (4,) and predicted["prediction"].dtype == torch.int64
    assert predicted["probabilities"].shape == (4, 3)
    assert torch.allclose(predicted["probabilities"].sum(1), torch.ones(4))


def test_accuracy_micro_matches_predictions(tiny):
    task = _task(tiny)
    loader = tiny.loader("classification", n=8)
    logged = tiny.trainer().validate(task, loader)[0]
    with torch.no_grad():
        correct = sum(int((task(b["image"]).output.argmax(1) == b["label"]).sum()) for b in loader)
    assert logged["val/Accuracy_Micro"] == pytest.approx(correct / 8)


def test_ignored_labels_and_out_of_range_labels(tiny):
    task = _task(tiny, ignore_index=-1)
    batch = next(iter(tiny.loader("classification", n=4)))
    batch["label"][0] = -1
    task.check_target(batch["label"], "val", 0, batch)
    batch["label"][1] = 3
    with pytest.raises(ValueError, match=r"val batch 0: label values \[3\] are outside \[0, 2\]"):
        task.check_target(batch["label"], "val", 0, batch)


def test_tiled_inference_does_not_apply(tiny):
    with pytest.raises(ValueError, match="tiled_inference_parameters only apply to pixel-wise tasks"):
        _task(tiny, tiled_inference_parameters={"crop": 16})


def test_training_reduces_the_loss(tiny):
    task = _task(tiny, lr=0.05)
    loader = tiny.loader("classification", n=6, batch_size=6)
    before = tiny.trainer().validate(task, loader)[0]["val/loss"]
    repeated = torch.utils.data.DataLoader(list(loader) * 10, batch_size=None)
    tiny.trainer(limit_train_batches=None).fit(task, repeated)
    assert tiny.trainer().validate(task, loader)[0]["val/loss"] < before
