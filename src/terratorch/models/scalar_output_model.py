"""Encoder → necks → decoder → pooled head models with one prediction per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHeadWithDecoderWithoutInstantiatedHead, ModelOutput
from terratorch.models.pixel_wise_model import EncoderDecoderModel, _clones

__all__ = ["ScalarOutputModel"]

SCALAR_TASKS = ("classification", "scalar_regression")


class ScalarOutputModel(EncoderDecoderModel):
    """Image classification (or scalar regression) model.

    ``forward(x)`` returns :class:`ModelOutput` whose ``output`` is ``(B, num_classes)`` logits
    (``(B, num_outputs)`` for ``scalar_regression``). Inputs are padded like in
    :class:`~terratorch.models.pixel_wise_model.PixelWiseModel` (default ``padding="reflect"``, used
    when ``patch_size`` is set). Ours: a decoder that includes its head and returns maps
    ``(B, num_classes, h, w)`` has them averaged over ``h, w``.

    Args:
        task: ``classification`` or ``scalar_regression``.
        encoder: Backbone returning a list of features.
        decoder: Module mapping the feature list to one feature map or vector.
        head_kwargs: :class:`~terratorch.models.heads.ScalarHead` arguments (``num_classes``, ...).
        patch_size: Backbone patch size used for padding.
        padding: ``F.pad`` mode.
        decoder_includes_head: The decoder already ends in the class projection; no head is added.
        auxiliary_heads: Extra decoders whose heads are built here.
        neck: Module (or list of necks) applied to the features before the decoder.
        prepare_features_for_image_model: Ours: callable applied to the encoder output before the necks.
        channel_list: Ours: channels the decoder was built for; checked against the features once.
        rescale: Ours: accepted and ignored (outputs have no spatial extent).
    """

    def __init__(
        self,
        task: str,
        encoder: nn.Module,
        decoder: nn.Module,
        head_kwargs: dict[str, Any],
        patch_size: int | Sequence[int] | None = None,
        padding: str = "reflect",
        decoder_includes_head: bool = False,
        auxiliary_heads: Sequence[AuxiliaryHeadWithDecoderWithoutInstantiatedHead] | None = None,
        neck: nn.Module | None = None,
        prepare_features_for_image_model: Callable[[Any], list[Tensor]] | None = None,
        channel_list: list[int] | None = None,
        rescale: bool = True,
    ) -> None:
        if task not in SCALAR_TASKS:
            raise ValueError(f"ScalarOutputModel task must be one of {list(SCALAR_TASKS)}, got {task!r}.")
        super().__init__(
            task,
            encoder,
            decoder,
            head_kwargs,
            patch_size=patch_size,
            padding=padding,
            decoder_includes_head=decoder_includes_head,
            auxiliary_heads=auxiliary_heads,
            neck=neck,
            prepare_features_for_image_model=prepare_features_for_image_model,
            channel_list=channel_list,
        )

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """Predict one vector per image; see the class docstring for shapes."""
        kwargs.pop("image_size", None)
        features = self.features(self.pad(x), **kwargs)
        output = self._finish(self.head(self.decoder(_clones(features, bool(self.aux_heads)))))
        aux = {name: self._finish(module(_clones(features, True))) for name, module in self.aux_heads.items()}
        return ModelOutput(output=output, auxiliary_heads=aux)

    @staticmethod
    def _finish(out: Tensor) -> Tensor:
        if out.ndim == 4:  # a decoder that includes its head returns class maps: average them
            out = out.mean(dim=(2, 3))
        return out
