"""Pixel-wise regression: one value per pixel."""

from __future__ import annotations

from torch import Tensor

from terratorch.tasks.base import TerraTorchTask

__all__ = ["PixelwiseRegressionTask"]


def _squeeze_channel(output: Tensor) -> Tensor:
    """``(B, 1, H, W)`` → ``(B, H, W)``; other shapes unchanged."""
    return output.squeeze(1) if output.dim() == 4 and output.shape[1] == 1 else output


class PixelwiseRegressionTask(TerraTorchTask):
    """Pixel-wise regression task.

    The model maps ``image`` ``(B, C, H, W)`` to ``(B, H, W)`` values (``(B, 1, H, W)`` is accepted);
    the target ``mask`` is ``(B, H, W)`` float32 where ``ignore_index`` (and non-finite values) mark
    pixels without a label. Default loss ``mse``. Logs ``<stage>/loss``, ``RMSE``, ``MSE``,
    ``MAE``, ``R2_Score``. ``predict_step`` returns ``prediction`` ``(B, H, W)``.

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask` (``num_classes``,
    ``class_names`` and ``class_weights`` do not apply).
    """

    task_type = "regression"
    model_task = "regression"
    target_key = "mask"
    loss_kind = "regression"
    default_loss = "mse"
    has_classes = False
    pixel_wise = True

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Values as they are, ``(B, H, W)``."""
        return _squeeze_channel(output)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B, H, W) values}``."""
        return {"prediction": _squeeze_channel(output)}
