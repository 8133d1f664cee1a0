"""Multi-label image classification: any number of classes per image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from terratorch.tasks.base import TerraTorchTask, _filenames

__all__ = ["MultiLabelClassificationTask"]


class MultiLabelClassificationTask(TerraTorchTask):
    """Multi-label classification task.

    The model maps ``image`` ``(B, C, H, W)`` to logits ``(B, num_classes)``; the target ``label`` is
    ``(B, num_classes)`` with 0/1 entries (``ignore_index`` entries are skipped). A class is
    predicted when its sigmoid probability exceeds 0.5. Default loss ``bce``. Logs ``<stage>/loss``,
    ``Accuracy`` (macro over labels), ``Accuracy_Micro``, ``F1_Score``, ``Precision``, ``Recall``.
    ``predict_step`` returns ``prediction`` ``(B, num_classes)`` 0/1 and ``probabilities``.

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask`.
    """

    task_type = "multilabel_classification"
    model_task = "classification"
    target_key = "label"
    loss_kind = "classification"
    default_loss = "bce"
    has_classes = True
    pixel_wise = False

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
