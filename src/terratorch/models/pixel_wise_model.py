"""Encoder → necks → decoder → head models with one prediction per pixel (segmentation, regression)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbone_adapter import (
    accepted_kwargs,
    check_feature_channels,
    pad_to_multiple,
    patch_size_of,
)
from terratorch.models.model import AuxiliaryHeadWithDecoderWithoutInstantiatedHead, Model, ModelOutput
from terratorch.models.necks import ReshapeTokensToImage

__all__ = ["EncoderDecoderModel", "PixelWiseModel", "build_head"]

PIXEL_TASKS = ("segmentation", "regression")


def build_head(task: str, in_channels: int, head_kwargs: dict[str, Any]) -> nn.Module:
    """Build the task head on top of a decoder with ``in_channels`` output channels.

    ``head_kwargs`` holds the head's own arguments plus ``num_classes`` for segmentation and
    classification (it is ignored for regression).
    """
    from terratorch.models import heads

    kwargs = dict(head_kwargs)
    if task == "segmentation":
        return heads.SegmentationHead(in_channels, **kwargs)
    if task == "regression":
        kwargs.pop("num_classes", None)
        return heads.RegressionHead(in_channels, **kwargs)
    if task in ("classification", "scalar_regression"):
        return heads.ClassificationHead(in_channels, **kwargs)
    raise ValueError(f"No head for task {task!r}; valid tasks: segmentation, regression, classification.")


class EncoderDecoderModel(Model):
    """Shared plumbing of :class:`PixelWiseModel` and the scalar-output model.

    Holds ``encoder``, optional ``neck`` (an ``nn.Sequential`` of necks), ``decoder``, ``head`` and
    ``aux_heads``; pads inputs to the backbone's patch size, passes extra batch keys the encoder
    accepts, applies ``prepare_features_for_image_model`` and checks the feature channels once.
    """

    def __init__(
        self,
        task: str,
        encoder: nn.Module,
        decoder: nn.Module,
        head_kwargs: dict[str, Any],
        patch_size: int | tuple[int, int] | None = None,
        padding: str = "reflect",
        decoder_includes_head: bool = False,
        auxiliary_heads: Sequence[AuxiliaryHeadWithDecoderWithoutInstantiatedHead] | None = None,
        neck: nn.Module | Sequence[nn.Module] | None = None,
        rescale: bool = True,
        prepare_features_for_image_model: Callable[[Any], list[Tensor]] | None = None,
        channel_list: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.encoder = encoder
        if neck is not None and not isinstance(neck, nn.Module):
            neck = nn.Sequential(*neck) if len(neck) else None
        self.neck = neck
        self.decoder = decoder
        decoder_channels = int(decoder.out_channels)
        self.head = (
            nn.Identity() if decoder_includes_head else build_head(task, decoder_channels, head_kwargs)
        )
        self.aux_heads = nn.ModuleDict()
        for aux in auxiliary_heads or []:
            if getattr(aux.decoder, "includes_head", False):
                aux_head: nn.Module = nn.Identity()
            else:
                aux_head = build_head(task, int(aux.decoder.out_channels), aux.head_kwargs)
            self.aux_heads[aux.name] = nn.Sequential(aux.decoder, aux_head)
        if patch_size is None:
            self.patch_size = patch_size_of(encoder)
        else:
            self.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.padding = padding
        self.rescale = rescale
        self.prepare_features = prepare_features_for_image_model
        self.channel_list = list(channel_list) if channel_list is not None else None
        self._encoder_kwargs = accepted_kwargs(encoder)
        self._checked = False

    def features(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """Encoder features after ``prepare_features_for_image_model`` and the necks."""
        if self._encoder_kwargs is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._encoder_kwargs}
        features = self.encoder(x, **kwargs)
        if isinstance(features, Tensor):
            features = [features]
        if self.prepare_features is not None:
            features = self.prepare_features(features)
        elif hasattr(self.encoder, "prepare_features_for_image_model"):
            features = self.encoder.prepare_features_for_image_model(features)
        if self.neck is not None:
            self._set_token_grids(x)
            features = self.neck(list(features))
        features = list(features)
        if not self._checked and self.channel_list is not None:
            check_feature_channels(features, self.channel_list, type(self).__name__)
            self._checked = True
        return features

    def _set_token_grids(self, x: Tensor) -> None:
        """Tell token-reshaping necks the patch grid of this (padded) input, so non-square images work."""
        patch = getattr(self.encoder, "patch_size", None)
        if isinstance(patch, int):
            patch = (patch, patch)
        if not isinstance(patch, (tuple, list)) or len(patch) < 2:
            return
        grid = (x.shape[-2] // int(patch[-2]), x.shape[-1] // int(patch[-1]))
        for module in self.neck.modules():
            if isinstance(module, ReshapeTokensToImage) and module.h is None and module.w is None:
                module.grid_size = grid

    def freeze_encoder(self) -> None:
        """Stop gradients through the backbone."""
        _freeze(self.encoder)

    def freeze_decoder(self) -> None:
        """Stop gradients through the necks and the decoder (task-specific layers before the head)."""
        _freeze(self.decoder)
        if self.neck is not None:
            _freeze(self.neck)

    def freeze_head(self) -> None:
        """Stop gradients through the main head."""
        _freeze(self.head)

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:  # pragma: no cover - subclasses
        """Run the model; implemented by subclasses."""
        raise NotImplementedError


class PixelWiseModel(EncoderDecoderModel):
    """Segmentation / pixel-wise regression model.

    ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` (or ``(B, C, T, H, W)`` for temporal
    backbones) returns :class:`ModelOutput` whose ``output`` is ``(B, num_classes, H, W)`` logits
    for segmentation or ``(B, H, W)`` values for regression. Inputs whose H/W are not multiples of
    the backbone's ``patch_size`` are padded (``padding`` mode) and the output is cropped back.
    With ``rescale=True`` the head output is interpolated (bilinear) to the padded input size
    first, so decoders may work at a coarser resolution.

    Args:
        task: ``segmentation`` or ``regression``.
        encoder: Backbone returning a list of features.
        decoder: Module mapping the feature list to one ``(B, out_channels, h, w)`` map.
        head_kwargs: Head arguments (``num_classes`` for segmentation, ``dropout``, ...).
        patch_size: Pad multiple; defaults to ``encoder.patch_size`` when present.
        padding: ``F.pad`` mode used for padding (``reflect``, ``replicate``, ``constant``).
        decoder_includes_head: The decoder already ends in the class projection; no head is added.
        auxiliary_heads: Extra decoders whose heads are built here; their outputs land in
            ``ModelOutput.auxiliary_heads``.
        neck: A module or list of necks applied to the features before the decoder.
        rescale: Interpolate the output to the input size.
        prepare_features_for_image_model: Callable applied to the encoder output (overrides a
            method of the same name on the encoder).
        channel_list: Channels the decoder was built for; checked against the features once.
    """

    def __init__(self, task: str, *args: Any, **kwargs: Any) -> None:
        if task not in PIXEL_TASKS:
            raise ValueError(f"PixelWiseModel task must be one of {list(PIXEL_TASKS)}, got {task!r}.")
        super().__init__(task, *args, **kwargs)

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """Predict per pixel; see the class docstring for shapes."""
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.patch_size, self.padding)
        features = self.features(padded, **kwargs)
        size = padded.shape[-2:]
        output = self._finish(self.head(self.decoder(features)), size, height, width)
        aux = {
            name: self._finish(module(features), size, height, width)
            for name, module in self.aux_heads.items()
        }
        return ModelOutput(output=output, auxiliary_heads=aux or None)

    def _finish(self, out: Tensor, size: Any, height: int, width: int) -> Tensor:
        squeeze = out.ndim == 3  # a head that already squeezed the regression channel
        if squeeze:
            out = out.unsqueeze(1)
        if self.rescale and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        out = out[..., :height, :width]
        if (self.task == "regression" and out.shape[1] == 1) or squeeze:
            out = out.squeeze(1)
        return out


def _freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)
