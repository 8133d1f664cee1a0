"""The reference's task module paths, ``tasks.utils._instantiate_from_path``, ``configure_losses`` /
``configure_metrics()`` without arguments, and class-score inputs to the classification metrics."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
import torch
from torch import nn

import terratorch.tasks as tasks
from terratorch.tasks.metrics import ConfusionMatrixMetrics
from terratorch.tasks.utils import _instantiate_from_path, get_module_and_class

MODULE_PATHS = {
    "terratorch.tasks.base_task": ["TerraTorchTask"],
    "terratorch.tasks.classification_tasks": ["ClassificationTask"],
    "terratorch.tasks.segmentation_tasks": ["SemanticSegmentationTask"],
    "terratorch.tasks.regression_tasks": ["PixelwiseRegressionTask", "ScalarRegressionTask"],
    "terratorch.tasks.multilabel_classification_tasks": ["MultiLabelClassificationTask"],
    "terratorch.tasks.reconstruction_tasks": ["ReconstructionTask"],
}


@pytest.mark.parametrize("module_name", sorted(MODULE_PATHS))
def test_reference_module_paths_export_our_classes(module_name):
    module = importlib.import_module(module_name)
    for name in MODULE_PATHS[module_name]:
        assert getattr(module, name) is getattr(tasks, name)


def test_classification_task_lives_at_the_reference_module():
    from terratorch.tasks.classification import ClassificationTask

    assert ClassificationTask is tasks.ClassificationTask
    assert ClassificationTask.__module__ == "terratorch.tasks.classification_tasks"


def test_instantiate_from_path_builds_and_reports_errors():
    assert get_module_and_class("torch.nn.L1Loss") == ("torch.nn", "L1Loss")
    loss = _instantiate_from_path("torch.nn.HuberLoss", delta=2.0)
    assert isinstance(loss, nn.HuberLoss) and loss.delta == 2.0
    with pytest.raises(ImportError, match="no_such_package"):
        _instantiate_from_path("no_such_package.Loss")
    with pytest.raises(AttributeError, match="has no 'NoSuchLoss'"):
        _instantiate_from_path("torch.nn.NoSuchLoss")


class ScaledL1(nn.Module):
    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, preds, target):
        return (preds - nn.functional.one_hot(target, preds.shape[1]).float()).abs().mean() * self.factor


def test_custom_loss_goes_through_the_classification_module_helper(tiny):
    with mock.patch("terratorch.tasks.classification_tasks._instantiate_from_path") as instantiate:
        instantiate.return_value = ScaledL1(2.0)
        task = tasks.ClassificationTask(
            model=tiny.Model("classification", num_classes=3),
            num_classes=3,
            loss="somewhere.ScaledL1",
            custom_loss=True,
            custom_loss_kwargs={"factor": 2.0},
        )
    instantiate.assert_called_once_with("somewhere.ScaledL1", factor=2.0)
    assert isinstance(task.criterion, ScaledL1) and task.criterion.factor == 2.0


def test_loss_module_is_used_as_given_and_configure_hooks_rebuild(tiny):
    loss = ScaledL1(3.0)
    task = tasks.ClassificationTask(
        model=tiny.Model("classification", num_classes=3), num_classes=3, loss=loss, custom_loss=True
    )
    assert task.criterion is loss
    task.criterion = None
    task.configure_losses()
    assert task.criterion is loss
    old = task.train_metrics
    assert task.configure_metrics() is None
    assert task.train_metrics is not old and task.val_metrics.prefix == "val/"
    assert task.test_metrics[0].prefix == "test/"
    batch = {"image": torch.randn(2, 3, 32, 32), "label": torch.tensor([0, 2])}
    assert task.training_step(batch, batch_idx=0).ndim == 0


def test_confusion_metrics_accept_class_scores():
    from_scores, from_indices = ConfusionMatrixMetrics(3), ConfusionMatrixMetrics(3)
    scores = torch.randn(6, 3)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    from_scores.update(scores, target)
    from_indices.update(scores.argmax(1), target)
    assert torch.equal(from_scores.confmat, from_indices.confmat)
    with pytest.raises(ValueError, match="num_classes=3"):
        from_scores.update(torch.randn(6, 4), target)
    with pytest.raises(ValueError, match="do not match targets"):
        from_scores.update(torch.zeros(5, dtype=torch.long), target)


def test_scalar_regression_ignores_var_names_for_one_output_and_passes_module_losses(tiny):
    single = tasks.ScalarRegressionTask(model=tiny.Model("scalar"), var_names=["P", "K", "Mg", "pH"])
    assert single.num_outputs == 1
    with pytest.raises(ValueError, match="var_names has 3 names for num_outputs=4"):
        tasks.ScalarRegressionTask(model=tiny.Model("scalar"), num_outputs=4, var_names=["a", "b", "c"])

    seen = []

    class Recording(nn.Module):
        def forward(self, preds, target):
            seen.append(tuple(preds.shape))
            return ((preds - target) ** 2).mean()

    loss = Recording()
    multi = tasks.ScalarRegressionTask(
        model=tiny.Model("scalar"), num_outputs=4, var_weights=[0.1, 0.2, 0.3, 0.4], loss=loss
    )
    assert multi.criterion is loss
    multi.criterion(torch.randn(2, 4), torch.randn(2, 4))
    assert seen == [(2, 4)]
