"""One training of the benchmark (terratorch.iterate.trial): callbacks and a real tiny fit + test."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch

from terratorch.iterate.config import build_plan, parse_config
from terratorch.iterate.trial import MetricWatcher, PruningCallback, build_task, run_training, watch_callbacks


def _trainer(metrics, epoch=0, sanity=False):
    return SimpleNamespace(
        sanity_checking=sanity,
        current_epoch=epoch,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
    )


@pytest.mark.parametrize("direction", ["max", "min"])
def test_early_stopping_and_checkpoint_watch_the_task_metric(direction, tmp_path):
    # Config specs, built by the CLI parser like the callbacks of a `terratorch fit` config.
    early, checkpoint, timer = watch_callbacks("val/RMSE", direction, 3, tmp_path, "00:01:00:00")
    assert early["class_path"].endswith("EarlyStopping") and checkpoint["class_path"].endswith(
        "ModelCheckpoint"
    )
    assert timer == {
        "class_path": "lightning.pytorch.callbacks.Timer",
        "init_args": {"duration": "00:01:00:00"},
    }
    assert early["init_args"]["monitor"] == checkpoint["init_args"]["monitor"] == "val/RMSE"
    assert early["init_args"]["patience"] == 3
    assert early["init_args"]["mode"] == checkpoint["init_args"]["mode"] == direction
    assert watch_callbacks("val/mIoU", "max", None, None) == []
    from terratorch.iterate.lightning_bridge import validate_section

    assert validate_section("trainer", {"callbacks": [early, checkpoint, timer]}) is None


@pytest.mark.parametrize(("direction", "best"), [("max", 0.7), ("min", 0.2)])
def test_metric_watcher_keeps_the_best_epoch(direction, best):
    logged = []
    watcher = MetricWatcher("val/mIoU", direction, on_epoch=lambda epoch, m: logged.append((epoch, m)))
    watcher.on_validation_end(_trainer({"val/mIoU": 0.9}, sanity=True), None)  # sanity check ignored
    for epoch, value in enumerate([0.5, 0.7, float("nan"), 0.2]):
        watcher.on_validation_end(
            _trainer({"val/mIoU": value, "val/loss": 1.0, "train/loss": 2.0}, epoch), None
        )
    assert watcher.best == pytest.approx(best)
    assert len(watcher.history) == 4
    assert logged[0] == (0, {"val/mIoU": pytest.approx(0.5), "val/loss": 1.0})


def test_metric_watcher_names_the_logged_metrics_when_its_metric_is_missing():
    watcher = MetricWatcher("val/mIoU", "max")
    with pytest.raises(
        KeyError, match=r"never logged the benchmark metric 'val/mIoU'; it logged \['val/loss'\]"
    ):
        watcher.on_validation_end(_trainer({"val/loss": 1.0}), None)


def test_pruning_callback_reports_and_prunes_in_the_study_direction():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    callback = PruningCallback(trial, "val/mIoU")
    callback.on_validation_end(_trainer({"val/mIoU": 0.6}, epoch=0), None)
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 1"):
        callback.on_validation_end(_trainer({"val/mIoU": 0.4}, epoch=1), None)
    assert study.trials[0].intermediate_values == {0: pytest.approx(0.6), 1: pytest.approx(0.4)}


def test_build_task_instantiates_class_path_backbones():
    task = build_task(
        {
            "class": "ClassificationTask",
            "model_factory": "EncoderDecoderFactory",
            "model_args": {
                "backbone": {
                    "class_path": "timm.models.resnet.resnet18",
                    "init_args": {"features_only": True, "in_chans": 6, "pretrained": False},
                },
                "decoder": "IdentityDecoder",
                "num_classes": 3,
            },
        }
    )
    assert task.model(torch.zeros(2, 6, 32, 32)).output.shape == (2, 3)


def test_real_training_reports_best_epoch_and_tests_best_checkpoint(helpers, tmp_path, demo_roots):
    raw = helpers.base_config(tmp_path / "store", seg_root=demo_roots["segmentation"])
    task = build_plan(parse_config(raw)).tasks[0]
    resolved = task.resolved({"lr": 1e-3})
    epochs = []
    result = run_training(
        resolved,
        metric=task.metric,
        direction=task.direction,
        seed=3,
        on_epoch=lambda epoch, metrics: epochs.append((epoch, sorted(metrics))),
        checkpoint_dir=tmp_path / "ckpt",
        test=True,
    )
    assert result.epochs == 2 and len(result.history) == 2
    assert result.value == max(result.history) and result.history[result.best_epoch] == result.value
    assert result.input_shape == (6, 32, 32)
    assert result.best_checkpoint and result.best_checkpoint.endswith("best.ckpt")
    assert 0.0 <= result.test_metrics["test/mIoU"] <= 1.0
    assert (0, sorted(m for m in epochs[0][1] if m.startswith("val/"))) in epochs
    assert any("train/loss" in names for _, names in epochs)
