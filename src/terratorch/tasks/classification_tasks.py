"""Image classification: one class per image (the reference's module path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead
from terratorch.tasks.base import TerraTorchTask, class_indices, task_arguments
from terratorch.tasks.utils import _instantiate_from_path

__all__ = ["ClassificationTask"]


class ClassificationTask(TerraTorchTask):
    """Multi-class image classification task.

    The model maps ``image`` ``(B, C, H, W)`` to logits ``(B, num_classes)``; the target ``label`` is
    ``(B,)`` int64. Default loss ``ce``. Logs ``<stage>/loss``, ``Accuracy`` (macro),
    ``Accuracy_Micro``, ``F1_Score``, ``Precision``, ``Recall``. ``predict_step`` returns
    ``prediction`` ``(B,)`` class indices and ``probabilities`` ``(B, num_classes)``.

    Constructor arguments (the reference's order and defaults): see
    :class:`~terratorch.tasks.base.TerraTorchTask`
    (``tiled_inference_parameters`` does not apply).
    """

    task_type = "classification"
    model_task = "classification"
    target_key = "label"
    loss_kind = "classification"
    default_loss = "ce"
    has_classes = True
    pixel_wise = False

    def __init__(
        self,
        model_args: dict[str, Any] | None = None,
        model_factory: str | None = None,
        model: nn.Module | None = None,
        loss: str | list[str] | dict[str, float] | nn.Module | None = "ce",
        aux_heads: list[AuxiliaryHead] | None = None,
        aux_loss: dict[str, float] | None = None,
        class_weights: list[float] | None = None,
        ignore_index: int | None = -100,
        custom_loss: bool = False,
        custom_loss_kwargs: dict[str, Any] | None = None,
        lr: float = 0.001,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        freeze_head: bool = False,
        plot_on_val: bool | int = False,
        class_names: list[str] | None = None,
        test_dataloaders_names: list[str] | None = None,
        lr_overrides: dict[str, float] | None = None,
        path_to_record_metrics: str | None = None,
        num_classes: int | None = None,
        tiled_inference_parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(**task_arguments(locals()))

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B,) class index, "probabilities": (B, num_classes) softmax}``."""
        return {"prediction": class_indices(output), "probabilities": output.softmax(dim=1)}

    def instantiate_custom_loss(self, path: str, kwargs: Mapping[str, Any]) -> nn.Module:
        """Build the ``custom_loss=True`` loss through this module's ``_instantiate_from_path``.

        Looked up here at call time, as in the reference, so patching
        ``terratorch.tasks.classification_tasks._instantiate_from_path`` takes effect.
        """
        return _instantiate_from_path(path, **kwargs)
