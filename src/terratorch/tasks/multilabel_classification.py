"""Multi-label image classification: any number of classes per image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead
from terratorch.tasks.base import TerraTorchTask, _filenames, task_arguments

__all__ = ["MultiLabelClassificationTask"]


class MultiLabelClassificationTask(TerraTorchTask):
    """Multi-label classification task.

    The model maps ``image`` ``(B, C, H, W)`` to logits ``(B, num_classes)``; the target ``label`` is
    ``(B, num_classes)`` with 0/1 entries (``ignore_index`` entries are skipped). A class is
    predicted when its sigmoid probability exceeds 0.5. Default loss ``bce``. Logs ``<stage>/loss``,
    ``Accuracy`` (macro over labels), ``Accuracy_Micro``, ``F1_Score``, ``Precision``, ``Recall``.
    ``predict_step`` returns ``prediction`` ``(B, num_classes)`` 0/1 and ``probabilities``.

    Constructor arguments (the reference's order and defaults): see
    :class:`~terratorch.tasks.base.TerraTorchTask`.
    """

    task_type = "multilabel_classification"
    model_task = "classification"
    target_key = "label"
    loss_kind = "classification"
    default_loss = "bce"
    has_classes = True
    pixel_wise = False

    def __init__(
        self,
        model_args: dict[str, Any] | None = None,
        model_factory: str | None = None,
        model: nn.Module | None = None,
        loss: str | list[str] | dict[str, float] | nn.Module | None = None,
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

    def check_target(self, target: Tensor, stage: str, batch_idx: int, batch: Mapping[str, Any]) -> None:
        """Labels must be ``(B, num_classes)`` with entries 0, 1 or ``ignore_index``."""
        if target.dim() != 2 or target.shape[1] != self.num_classes:
            raise ValueError(
                f"{stage} batch {batch_idx}: multi-label targets must be (B, {self.num_classes}), got "
                f"{tuple(target.shape)}; files: {_filenames(batch)}."
            )
        invalid = (target != 0) & (target != 1)
        if self.ignore_index is not None:
            invalid &= target != self.ignore_index
        if bool(invalid.any()):
            values = target[invalid].unique()[:10].tolist()
            raise ValueError(
                f"{stage} batch {batch_idx}: multi-label targets must be 0 or 1 (or ignore_index="
                f"{self.ignore_index}), found {values}; files: {_filenames(batch)}."
            )

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Sigmoid probabilities ``(B, num_classes)`` (thresholded at 0.5 by the metrics)."""
        return output.sigmoid()

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B, num_classes) 0/1, "probabilities": (B, num_classes)}``."""
        probabilities = output.sigmoid()
        return {"prediction": (probabilities > 0.5).long(), "probabilities": probabilities}
