"""Encoder → necks → decoder → pooled head models with one prediction per image."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from terratorch.models.backbone_adapter import pad_to_multiple
from terratorch.models.model import ModelOutput
from terratorch.models.pixel_wise_model import EncoderDecoderModel

__all__ = ["ScalarOutputModel"]

SCALAR_TASKS = ("classification", "scalar_regression")


class ScalarOutputModel(EncoderDecoderModel):
    """Image classification (or one-value regression) model.

    ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` (or ``(B, C, T, H, W)``) returns
    :class:`ModelOutput` whose ``output`` is ``(B, num_classes)`` logits. For
    ``task="scalar_regression"`` the head has one output and ``output`` is ``(B,)``. Inputs are
    padded to the backbone's patch size like in :class:`PixelWiseModel`; the classification head
    pools the decoder map globally, so no cropping is needed. With a decoder that includes its
    head (``(B, num_classes, h, w)`` maps) the maps are averaged over ``h, w``.

    Constructor arguments are those of :class:`PixelWiseModel` (``rescale`` is accepted and
    ignored, since the output has no spatial extent).
    """

    def __init__(self, task: str, *args: Any, **kwargs: Any) -> None:
        if task not in SCALAR_TASKS:
            raise ValueError(f"ScalarOutputModel task must be one of {list(SCALAR_TASKS)}, got {task!r}.")
        super().__init__(task, *args, **kwargs)

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """Predict one vector (or value) per image; see the class docstring for shapes."""
        padded = pad_to_multiple(x, self.patch_size, self.padding)
        features = self.features(padded, **kwargs)
        output = self._finish(self.head(self.decoder(features)))
        aux = {name: self._finish(module(features)) for name, module in self.aux_heads.items()}
        return ModelOutput(output=output, auxiliary_heads=aux or None)

    def _finish(self, out: Tensor) -> Tensor:
        if out.ndim == 4:  # a decoder that includes its head returns class maps: average them
            out = out.mean(dim=(2, 3))
        if self.task == "scalar_regression" and out.ndim == 2 and out.shape[1] == 1:
            return out.squeeze(1)
        return out
