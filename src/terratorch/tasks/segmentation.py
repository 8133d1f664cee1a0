"""Semantic segmentation: one class per pixel."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead
from terratorch.tasks.base import TerraTorchTask, class_indices, task_arguments

__all__ = ["SemanticSegmentationTask"]

OUTPUT_KINDS = ("prediction", "logits", "probabilities")


def _output_selection(output_on_inference: str | list[str], output_most_probable: bool) -> list[str]:
    """Resolve ``output_on_inference`` (a kind or list of kinds) and deprecated ``output_most_probable``."""
    if not output_most_probable:
        warnings.warn(
            "output_most_probable=False is deprecated; use output_on_inference='probabilities'.",
            DeprecationWarning,
            stacklevel=4,
        )
        output_on_inference = "probabilities"
    kinds = [output_on_inference] if isinstance(output_on_inference, str) else list(output_on_inference)
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"output_on_inference must be one of {list(OUTPUT_KINDS)} or a non-empty list of them, "
            f"got {output_on_inference!r}."
        )
    return kinds


class SemanticSegmentationTask(TerraTorchTask):
    """Semantic segmentation task.

    The model maps ``image`` ``(B, C, H, W)`` (or ``(B, C, T, H, W)``) to logits
    ``(B, num_classes, H, W)``; the target ``mask`` is ``(B, H, W)`` int64 with values in
    ``[0, num_classes)`` or ``ignore_index``. Default loss ``ce``. Logs ``<stage>/loss``,
    ``mIoU``, ``mIoU_Micro``, ``F1_Score``, ``Accuracy``, ``Pixel_Accuracy`` and ``IoU_<class>``.
    ``predict_step`` returns ``prediction`` (the argmax class map ``(B, H, W)`` by default; see
    ``output_on_inference``).

    Constructor arguments: see :class:`~terratorch.tasks.base.TerraTorchTask`; the parameter order
    and defaults are the reference's. Also:

    Args:
        output_on_inference: ``"prediction"``, ``"logits"``, ``"probabilities"`` or a list of them:
            what ``predict_step`` returns (see :meth:`to_prediction`).
        output_most_probable: Deprecated; ``False`` means ``output_on_inference="probabilities"``.
    """

    task_type = "segmentation"
    model_task = "segmentation"
    target_key = "mask"
    loss_kind = "classification"
    default_loss = "ce"
    has_classes = True
    pixel_wise = True

    def __init__(
        self,
        model_args: dict[str, Any] | None = None,
        model_factory: str | None = None,
        model: nn.Module | None = None,
        loss: str | list[str] | dict[str, float] | nn.Module | None = "ce",
        aux_heads: list[AuxiliaryHead] | None = None,
        aux_loss: dict[str, float] | None = None,
        class_weights: list[float] | None = None,
        ignore_index: int | None = None,
        lr: float = 0.001,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        freeze_head: bool = False,
        plot_on_val: bool | int = 10,
        class_names: list[str] | None = None,
        tiled_inference_parameters: dict[str, Any] | None = None,
        test_dataloaders_names: list[str] | None = None,
        lr_overrides: dict[str, float] | None = None,
        output_on_inference: str | list[str] = "prediction",
        output_most_probable: bool = True,
        path_to_record_metrics: str | None = None,
        tiled_inference_on_testing: bool = False,
        tiled_inference_on_validation: bool = False,
        num_classes: int | None = None,
    ) -> None:
        arguments = task_arguments(locals())
        self._outputs = _output_selection(
            arguments.pop("output_on_inference"), arguments.pop("output_most_probable")
        )
        super().__init__(**arguments)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """The outputs chosen by ``output_on_inference``: ``prediction`` (argmax class map ``(B, H, W)``),
        ``probabilities`` (softmax) and/or ``logits``, each ``(B, num_classes, H, W)``.

        When ``prediction`` is not among them, ``prediction`` holds the first chosen output, so
        prediction writers store what was asked for.
        """
        produced: dict[str, Tensor] = {}
        for kind in self._outputs:
            if kind == "prediction":
                produced[kind] = class_indices(output)
            elif kind == "probabilities":
                produced[kind] = output.softmax(dim=1)
            else:
                produced[kind] = output
        if "prediction" not in produced:
            produced = {"prediction": produced[self._outputs[0]], **produced}
        return produced
