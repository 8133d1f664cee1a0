"""SemanticSegmentationTask end to end on tiny in-memory data."""

from __future__ import annotations

import math

import pytest
import torch

from terratorch.tasks import SemanticSegmentationTask
from terratorch.tasks.losses import CombinedLoss, CrossEntropyLoss

NAMES = ["water", "land", "cloud"]


def _task(tiny, **kwargs):
    return SemanticSegmentationTask(
        model=tiny.Model("segmentation", num_classes=3), class_names=NAMES, ignore_index=-1, **kwargs
    )


def test_fit_validate_test_predict_log_contract_names(tiny):
    task = _task(tiny, lr=0.01)
    trainer = tiny.trainer(limit_val_batches=2)
    train = tiny.loader("segmentation", ignore_index=-1)
    trainer.fit(task, train, train)
    logged = trainer.callback_metrics
    expected = ["train/loss", "val/loss", "val/mIoU", "val/mIoU_Micro", "val/F1_Score", "val/Accuracy"]
    expected += ["val/Pixel_Accuracy", "train/mIoU", *(f"val/IoU_{name}" for name in NAMES)]
    assert set(expected) <= set(logged)
    for name in expected[2:]:
        assert 0.0 <= float(logged[name]) <= 1.0, name
    assert math.isfinite(float(logged["val/loss"]))

    results = trainer.test(task, tiny.loader("segmentation", ignore_index=-1))[0]
    assert {"test/loss", "test/mIoU", "test/IoU_cloud", "test/Pixel_Accuracy"} <= set(results)

    predictions = trainer.predict(task, tiny.loader("segmentation", n=4))
    assert predictions[0]["prediction"].shape == (4, 32, 32)
    assert int(predictions[0]["prediction"].max()) < 3
    assert predictions[0]["filename"][0] == "chip_0.tif"


def test_validation_metrics_match_predictions(tiny):
    task = _task(tiny)
    loader = tiny.loader("segmentation", ignore_index=-1)
    logged = tiny.trainer().validate(task, loader)[0]
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            pred = task(batch["image"]).output.argmax(1)
            valid = batch["mask"] != -1
            correct += int((pred[valid] == batch["mask"][valid]).sum())
            total += int(valid.sum())
    assert logged["val/Pixel_Accuracy"] == pytest.approx(correct / total, abs=1e-6)


def test_training_reduces_the_loss(tiny):
    task = _task(tiny, lr=0.05)
    loader = tiny.loader("segmentation", n=8, ignore_index=-1)
    before = tiny.trainer().validate(task, loader)[0]["val/loss"]
    repeated = torch.utils.data.DataLoader(list(loader) * 5, batch_size=None)
    tiny.trainer(limit_train_batches=None).fit(task, repeated)
    after = tiny.trainer().validate(task, loader)[0]["val/loss"]
    assert after < 0.8 * before


def test_combined_loss_with_class_weights(tiny):
    task = _task(tiny, loss={"ce": 1.0, "dice": 0.5}, class_weights=[1.0, 2.0, 3.0])
    assert isinstance(task.criterion, CombinedLoss)
    assert task.criterion.losses["ce"].class_weights == [1.0, 2.0, 3.0]
    assert isinstance(_task(tiny).criterion, CrossEntropyLoss)
    tiny.trainer().fit(task, tiny.loader("segmentation", ignore_index=-1))


@pytest.mark.parametrize("loss", ["focal", "jaccard", "lovasz", "bce"])
def test_every_segmentation_loss_trains(tiny, loss):
    task = _task(tiny, loss=loss)
    trainer = tiny.trainer(limit_train_batches=1)
    trainer.fit(task, tiny.loader("segmentation", ignore_index=-1))
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
