"""Scalar regression (ours): one value per image."""

from __future__ import annotations

from torch import Tensor

from terratorch.tasks.base import TerraTorchTask

__all__ = ["ScalarRegressionTask"]


def _flatten_single(output: Tensor) -> Tensor:
    """``(B, 1)`` → ``(B,)``; other shapes unchanged."""
    return output.squeeze(1) if output.dim() == 2 and output.shape[1] == 1 else output


class ScalarRegressionTask(TerraTorchTask):
    """Predict one value per image (e.g. biomass or crop yield of a chip).

    The factory builds a model for ``task="scalar_regression"`` (a ScalarOutputModel with one
    output) mapping ``image`` ``(B, C, H, W)`` to ``(B,)`` (``(B, 1)`` is accepted); the target
    ``label`` is ``(B,)`` float32, ``ignore_index``/non-finite values are skipped. Default loss
    ``mse``. Logs ``<stage>/loss``, ``RMSE``, ``MSE``, ``MAE``, ``R2_Score``. ``predict_step`` returns
    ``prediction`` ``(B,)``.

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask` (``num_classes``,
    ``class_names``, ``class_weights`` and tiled inference do not apply).
    """

    task_type = "scalar_regression"
    model_task = "scalar_regression"
    target_key = "label"
    loss_kind = "regression"
    default_loss = "mse"
    has_classes = False
    pixel_wise = False

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Values ``(B,)``."""
        return _flatten_single(output)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B,) values}``."""
        return {"prediction": _flatten_single(output)}
