"""Wrapper giving timm ``features_only`` models the backbone interface of this toolkit."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TimmBackbone(nn.Module):
    """A timm feature extractor with ``out_channels`` and NCHW outputs.

    Args:
        model: A model created with ``timm.create_model(..., features_only=True)``.

    Attributes:
        out_channels: Channels of each returned feature map (``feature_info.channels()``).
        feature_info: timm's ``FeatureInfo`` of the wrapped model.
        patch_size: The side length input sizes should be a multiple of (the ViT patch size or,
            for CNNs, the largest feature reduction).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.feature_info = model.feature_info
        self.out_channels: list[int] = list(self.feature_info.channels())
        self.output_fmt = _output_format(model)
        self.patch_size = _input_multiple(model, self.feature_info)

    def forward(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """Return the list of feature maps, each ``(B, C_i, H_i, W_i)``."""
        features = self.model(x)
        if isinstance(features, torch.Tensor):
            features = [features]
        if self.output_fmt == "NHWC":
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return list(features)


def _output_format(model: nn.Module) -> str:
    fmt = getattr(model, "output_fmt", None)
    if fmt is None:
        inner = getattr(model, "model", None)
        fmt = getattr(inner, "output_fmt", None)
    fmt = getattr(fmt, "value", fmt) if fmt is not None else "NCHW"
    return str(fmt).upper()


def _input_multiple(model: nn.Module, feature_info: Any) -> int:
    for holder in (model, getattr(model, "model", None)):
        patch_embed = getattr(holder, "patch_embed", None)
        size = getattr(patch_embed, "patch_size", None) if patch_embed is not None else None
        if size is not None:
            return int(size[0] if isinstance(size, (tuple, list)) else size)
    reductions = feature_info.reduction()
    return int(max(reductions)) if reductions else 1
