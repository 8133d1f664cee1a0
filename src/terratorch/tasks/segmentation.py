"""Semantic segmentation: one class per pixel."""

from __future__ import annotations

from terratorch.tasks.base import TerraTorchTask

__all__ = ["SemanticSegmentationTask"]


class SemanticSegmentationTask(TerraTorchTask):
    """Semantic segmentation task.

    The model maps ``image`` ``(B, C, H, W)`` (or ``(B, C, T, H, W)``) to logits
    ``(B, num_classes, H, W)``; the target ``mask`` is ``(B, H, W)`` int64 with values in
    ``[0, num_classes)`` or ``ignore_index``. Default loss ``ce``. Logs ``<stage>/loss``,
    ``mIoU``, ``mIoU_Micro``, ``F1_Score``, ``Accuracy``, ``Pixel_Accuracy`` and ``IoU_<class>``.
    ``predict_step`` returns ``prediction``: the argmax class map ``(B, H, W)``.

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask`.
    """

    task_type = "segmentation"
    model_task = "segmentation"
    target_key = "mask"
    loss_kind = "classification"
    default_loss = "ce"
    has_classes = True
    pixel_wise = True
