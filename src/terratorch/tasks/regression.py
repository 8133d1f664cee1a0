"""Pixel-wise regression: one value per pixel."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead
from terratorch.tasks.base import TerraTorchTask, task_arguments

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

    def __init__(
        self,
        model_args: dict[str, Any] | None = None,
        model_factory: str | None = None,
        model: nn.Module | None = None,
        loss: str | list[str] | dict[str, float] | nn.Module | None = "mse",
        aux_heads: list[AuxiliaryHead] | None = None,
        aux_loss: dict[str, float] | None = None,
        var_weights: list[float] | None = None,
        ignore_index: float | None = None,
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
        plot_on_val: bool | int = 10,
        tiled_inference_parameters: dict[str, Any] | None = None,
        test_dataloaders_names: list[str] | None = None,
        lr_overrides: dict[str, float] | None = None,
        tiled_inference_on_testing: bool = False,
        tiled_inference_on_validation: bool = False,
        path_to_record_metrics: str | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__(**task_arguments(locals()))

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Values as they are, ``(B, H, W)``."""
        return _squeeze_channel(output)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B, H, W) values}``."""
        return {"prediction": _squeeze_channel(output)}
