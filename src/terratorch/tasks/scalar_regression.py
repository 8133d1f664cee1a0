"""Scalar regression (ours): one value per image."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead, ModelOutput
from terratorch.tasks.base import TerraTorchTask, task_arguments

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

    ``var_names`` label the per-variable metrics when ``num_outputs > 1`` and are ignored for a single
    output (as in the reference). A loss given as an ``nn.Module`` receives the ``(B, num_outputs)``
    outputs unchanged (``var_weights`` do not wrap it).

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
        lr: float = 0.001,
        num_outputs: int = 1,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        plot_on_val: bool | int = False,
        freeze_head: bool = False,
        var_names: list[str] | None = None,
        test_dataloaders_names: list[str] | None = None,
        lr_overrides: dict[str, float] | None = None,
        path_to_record_metrics: str | None = None,
        custom_loss: bool = False,
        custom_loss_kwargs: dict[str, Any] | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        class_weights: list[float] | None = None,
        tiled_inference_parameters: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(f"num_outputs must be an integer >= 1, got {num_outputs!r}.")
        if var_names is not None and num_outputs > 1 and len(var_names) != num_outputs:
            raise ValueError(f"var_names has {len(var_names)} names for num_outputs={num_outputs}.")
        if var_weights is not None and len(var_weights) != num_outputs:
            raise ValueError(f"var_weights has {len(var_weights)} weights for num_outputs={num_outputs}.")
        arguments = task_arguments(locals())
        self.num_outputs = arguments.pop("num_outputs")
        self.var_names = arguments.pop("var_names")
        if self.num_outputs != 1 and model_args is not None:
            arguments["model_args"] = {
                **model_args,
                "num_outputs": model_args.get("num_outputs", self.num_outputs),
            }
        super().__init__(**arguments)

    def compute_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """Loss on ``(B,)`` values: a single-output model's ``(B, 1)`` is flattened first."""
        if target.dim() == 1:
            aux = {k: _flatten_single(v) for k, v in (output.auxiliary_heads or {}).items()}
            output = ModelOutput(output=_flatten_single(output.output), auxiliary_heads=aux or None)
        return super().compute_loss(output, target)

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Values ``(B,)``."""
        return _flatten_single(output)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """``{"prediction": (B,) values}``."""
        return {"prediction": _flatten_single(output)}
