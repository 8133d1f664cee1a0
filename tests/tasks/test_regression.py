"""PixelwiseRegressionTask end to end on tiny in-memory data."""

from __future__ import annotations

import math

import pytest
import torch

from terratorch.tasks import PixelwiseRegressionTask
from terratorch.tasks.losses import MSELoss


def _task(tiny, **kwargs):
    return PixelwiseRegressionTask(model=tiny.Model("regression"), **kwargs)


def test_fit_validate_test_predict_log_contract_names(tiny):
    task = _task(tiny, lr=0.01, loss="huber")
    trainer = tiny.trainer(limit_val_batches=2)
    loader = tiny.loader("regression")
    trainer.fit(task, loader, loader)
    logged = trainer.callback_metrics
    names = ["train/loss", "val/loss", "val/RMSE", "val/MSE", "val/MAE", "val/R2_Score", "train/RMSE"]
    assert set(names) <= set(logged)
    assert float(logged["val/RMSE"]) == pytest.approx(math.sqrt(float(logged["val/MSE"])), rel=1e-5)
    assert float(logged["val/R2_Score"]) <= 1.0
    results = trainer.test(task, loader)[0]
    assert {"test/loss", "test/RMSE", "test/R2_Score"} <= set(results)
    prediction = trainer.predict(task, tiny.loader("regression", n=2, batch_size=2))[0]["prediction"]
    assert prediction.shape == (2, 32, 32) and prediction.is_floating_point()


def test_ignored_pixels_are_left_out_of_loss_and_metrics(tiny):
    task = _task(tiny, ignore_index=-9999)
    assert isinstance(task.criterion, MSELoss)
    loader = tiny.loader("regression", n=4)
    batches = []
    for batch in loader:
        batch["mask"][:, :, :16] = -9999.0
        batches.append(batch)
    logged = tiny.trainer().validate(task, torch.utils.data.DataLoader(batches, batch_size=None))[0]
    with torch.no_grad():
        pred = torch.cat([task(b["image"]).output[:, :, 16:] for b in batches])
        target = torch.cat([b["mask"][:, :, 16:] for b in batches])
    mse = float(((pred - target) ** 2).mean())
    assert logged["val/MSE"] == pytest.approx(mse, rel=1e-4)
    assert logged["val/loss"] == pytest.approx(mse, rel=1e-4)


def test_class_options_do_not_apply(tiny):
    with pytest.raises(ValueError, match="predicts values; num_classes/class_names do not apply"):
        _task(tiny, num_classes=3)
    with pytest.raises(ValueError, match="class_weights were given but none of the losses"):
        _task(tiny, class_weights=[1.0])
    with pytest.raises(
        ValueError, match=r"Unknown loss 'ce' for a regression task.*'ce' is a loss for classification"
    ):
        _task(tiny, loss="ce")


def test_training_reduces_rmse(tiny):
    task = _task(tiny, lr=0.05, loss="rmse")
    loader = tiny.loader("regression", n=8)
    before = tiny.trainer().validate(task, loader)[0]["val/RMSE"]
    repeated = torch.utils.data.DataLoader(list(loader) * 5, batch_size=None)
    tiny.trainer(limit_train_batches=None).fit(task, repeated)
    assert tiny.trainer().validate(task, loader)[0]["val/RMSE"] < 0.8 * before
