"""ScalarRegressionTask end to end on tiny in-memory data."""

from __future__ import annotations

import pytest
import torch

from terratorch.tasks import ScalarRegressionTask

METRICS = ["RMSE", "MSE", "MAE", "R2_Score"]


def test_fit_validate_test_predict_log_contract_names(tiny):
    task = ScalarRegressionTask(model=tiny.Model("scalar"), loss="mae")
    trainer = tiny.trainer(limit_val_batches=2)
    loader = tiny.loader("scalar")
    trainer.fit(task, loader, loader)
    assert {"train/loss", "val/loss", *(f"val/{m}" for m in METRICS)} <= set(trainer.callback_metrics)
    assert {f"test/{m}" for m in METRICS} <= set(trainer.test(task, loader)[0])
    predicted = trainer.predict(task, tiny.loader("scalar", n=4))[0]
    assert predicted["prediction"].shape == (4,)


def test_builds_a_one_output_model_through_the_factory(tiny, tiny_factory):
    task = ScalarRegressionTask(model_factory=tiny_factory, model_args={"backbone": "x"})
    assert tiny.Factory.calls[-1]["task"] == "scalar_regression"
    assert task(torch.zeros(2, 3, 8, 8)).output.shape == (2,)


def test_mae_matches_hand_computation_with_ignored_labels(tiny):
    task = ScalarRegressionTask(model=tiny.Model("scalar"), ignore_index=-1)
    loader = tiny.loader("scalar", n=4, batch_size=4)
    batch = next(iter(loader))
    batch["label"][0] = -1.0
    logged = tiny.trainer().validate(task, torch.utils.data.DataLoader([batch], batch_size=None))[0]
    with torch.no_grad():
        pred = task(batch["image"]).output
    expected = (pred[1:] - batch["label"][1:]).abs().mean().item()
    assert logged["val/MAE"] == pytest.approx(expected, rel=1e-5)


def test_training_reduces_mse(tiny):
    task = ScalarRegressionTask(model=tiny.Model("scalar"), lr=0.01)
    loader = tiny.loader("scalar", n=8, batch_size=8)
    before = tiny.trainer().validate(task, loader)[0]["val/MSE"]
    repeated = torch.utils.data.DataLoader(list(loader) * 10, batch_size=None)
    tiny.trainer(limit_train_batches=None).fit(task, repeated)
    assert tiny.trainer().validate(task, loader)[0]["val/MSE"] < before
