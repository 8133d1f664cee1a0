"""Image classification: one class per image."""

from __future__ import annotations

from torch import Tensor

from terratorch.tasks.base import TerraTorchTask, class_indices

__all__ = ["ClassificationTask"]


class ClassificationTask(TerraTorchTask):
    """Multi-class image classification task.

    The model maps ``image`` ``(B, C, H, W)`` to logits ``(B, num_classes)``; the target ``label`` is
    ``(B,)`` int64. Default loss ``ce``. Logs ``<stage>/loss``, ``Accuracy`` (macro),
    ``Accuracy_Micro``, ``F1_Score``, ``Precision``, ``Recall``. ``predict_step`` returns
    ``prediction`` ``(B,)`` class indices and ``probabilities`` ``(B, num_classes)``.

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask`
    (``tiled_inference_parameters`` does not apply).
    """

    task_type = "classification"
    model_task = "classification"
    target_key = "label"
    loss_kind = "classification"
    default_loss = "ce"
    has_classes = True
    pixel_wise = False

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B,) class index, "probabilities": (B, num_classes) softmax}``."""
        return {"prediction": class_indices(output), "probabilities": output.softmax(dim=1)}
