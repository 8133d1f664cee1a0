"""Task parameters of the reference release: output selection, metrics record, custom/weighted losses,
the scheduler ``monitor`` key, the reference ``CombinedLoss`` and the positional tiled-inference call."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
from torch import nn

from terratorch.tasks import ClassificationTask, PixelwiseRegressionTask, SemanticSegmentationTask


def _segmentation(tiny, **kwargs):
    return SemanticSegmentationTask(model=tiny.Model("segmentation", num_classes=3), num_classes=3, **kwargs)


def test_output_on_inference_selects_prediction_entries(tiny):
    logits = torch.randn(2, 3, 8, 8)
    default = _segmentation(tiny).to_prediction(logits)
    assert set(default) == {"prediction"} and default["prediction"].shape == (2, 8, 8)
    probs = _segmentation(tiny, output_on_inference="probabilities").to_prediction(logits)
    torch.testing.assert_close(probs["probabilities"], logits.softmax(dim=1))
    assert probs["prediction"] is probs["probabilities"]  # what writers store
    both = _segmentation(tiny, output_on_inference=["prediction", "logits"]).to_prediction(logits)
    assert torch.equal(both["prediction"], logits.argmax(dim=1)) and both["logits"] is logits
    with pytest.warns(DeprecationWarning, match="output_most_probable"):
        legacy = _segmentation(tiny, output_most_probable=False)
    assert "probabilities" in legacy.to_prediction(logits)
    with pytest.raises(ValueError, match="output_on_inference must be one of"):
        _segmentation(tiny, output_on_inference="argmax")


def test_path_to_record_metrics_writes_test_metrics(tiny, tmp_path):
    task = _segmentation(tiny, path_to_record_metrics=str(tmp_path / "record"))
    tiny.trainer().test(task, tiny.loader("segmentation"))
    rows = list(csv.reader((tmp_path / "record" / "metrics.csv").read_text().splitlines()))
    assert rows[0] == ["", "Metric", "Value"]
    names = {row[1] for row in rows[1:]}
    assert "test/mIoU" in names and all(float(row[2]) >= 0 for row in rows[1:])


def test_custom_loss_is_built_from_its_dotted_path(tiny):
    task = ClassificationTask(
        model=tiny.Model("classification", num_classes=3),
        num_classes=3,
        loss="torch.nn.CrossEntropyLoss",
        custom_loss=True,
        custom_loss_kwargs={"label_smoothing": 0.1},
    )
    assert isinstance(task.criterion, nn.CrossEntropyLoss) and task.criterion.label_smoothing == 0.1
    # The reference lets the AttributeError of the failed lookup through.
    with pytest.raises(AttributeError, match=r"cannot import 'torch\.nn\.NoSuchLoss'"):
        ClassificationTask(
            model=tiny.Model("classification", num_classes=3),
            num_classes=3,
            loss="torch.nn.NoSuchLoss",
            custom_loss=True,
        )


def test_var_weights_weight_each_variable(tiny):
    task = PixelwiseRegressionTask(model=tiny.Model("regression"), var_weights=[3.0, 1.0])
    output, target = torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)
    target[:, 0] = 1.0  # mse 1 on variable 0, 0 on variable 1
    assert float(task.criterion(output, target)) == pytest.approx(3.0 / 4.0)
    with pytest.raises(ValueError, match="var_weights has 2 entries"):
        task.criterion(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_defaults_follow_the_reference(tiny):
    task = _segmentation(tiny)
    assert task.optimizer is None and task.hparams.loss == "ce"
    assert type(task.configure_optimizers()["optimizer"]) is torch.optim.Adam
    classification = ClassificationTask(model=tiny.Model("classification", num_classes=3), num_classes=3)
    assert classification.ignore_index == -100 and classification.plot_on_val == 0


def test_monitor_in_scheduler_hparams_sets_the_monitored_metric(tiny):
    task = _segmentation(
        tiny, scheduler="ReduceLROnPlateau", scheduler_hparams={"monitor": "val/mIoU", "mode": "max"}
    )
    config = task.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/mIoU"
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (
        _segmentation(tiny, scheduler="ReduceLROnPlateau").configure_optimizers()["lr_scheduler"]["monitor"]
        == "val/loss"
    )


def test_optimizer_factory_reference_keywords():
    from terratorch.tasks.optimizer_factory import optimizer_factory

    net = nn.Linear(2, 2)
    config = optimizer_factory(
        optimizer="SGD", lr=0.1, params_to_be_optimized=net.parameters(), scheduler="ReduceLROnPlateau"
    )
    assert config["lr_scheduler"]["monitor"] == "val_loss"


def test_reference_combined_loss_returns_parts_and_total():
    from terratorch.tasks.loss_handler import CombinedLoss

    loss = CombinedLoss({"mse": nn.MSELoss(), "l1": nn.L1Loss()}, weight=[2.0, 1.0])
    out = loss(torch.zeros(3), torch.full((3,), 2.0))
    assert float(out["mse"]) == 4.0 and float(out["l1"]) == 2.0 and float(out["loss"]) == 10.0
    assert float(CombinedLoss({"l1": nn.L1Loss()})(torch.zeros(1), torch.ones(1))["loss"]) == 1.0
    with pytest.raises(ValueError, match="1 weights for 2 losses"):
        CombinedLoss({"mse": nn.MSELoss(), "l1": nn.L1Loss()}, weight=[1.0])


def test_tiled_inference_positional_parameters_and_tuple_defaults():
    from terratorch.tasks.tiled_inference import TiledInferenceParameters, tiled_inference

    image = torch.randn(1, 2, 40, 36)
    params = TiledInferenceParameters(h_crop=16, h_stride=12, w_crop=16, w_stride=12, delta=2)
    with pytest.warns(DeprecationWarning, match="inference_parameters is deprecated"):
        out = tiled_inference(lambda x: x * 2, image, 2, params)
    torch.testing.assert_close(out, image * 2)
    tupled = TiledInferenceParameters(h_crop=(16,), h_stride=(12,), w_crop=(16,), w_stride=(12,), delta=(2,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(tiled_inference(lambda x: x * 2, image, None, tupled), image * 2)
    assert TiledInferenceParameters().h_crop == 224 and TiledInferenceParameters().delta == 4
