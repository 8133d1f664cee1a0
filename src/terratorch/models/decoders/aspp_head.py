"""Atrous spatial pyramid pooling (DeepLabV3-style) heads for segmentation and regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index, conv_norm_relu
from terratorch.models.decoders.mlp_decoder import activation_layer
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["ASPPModule", "ASPPRegressionHead", "ASPPSegmentationHead"]


class ASPPModule(nn.Module):
    """Parallel dilated convolutions plus an image-pooling branch, concatenated and projected.

    Args:
        in_channels: Channels of the input map.
        channels: Channels of every branch and of the output.
        dilations: One branch per dilation (1 → a 1x1 conv, otherwise a dilated 3x3 conv).
    """

    def __init__(self, in_channels: int, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(f"ASPP: dilations must be a non-empty list of ints >= 1, got {list(dilations)}.")
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), conv_norm_relu(in_channels, channels, 1, norm=False)
        )
        self.branches = nn.ModuleList(
            conv_norm_relu(in_channels, channels, kernel_size=1 if d == 1 else 3, dilation=d)
            for d in dilations
        )
        self.project = conv_norm_relu((len(dilations) + 1) * channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, channels, H, W)``."""
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([pooled, *(branch(x) for branch in self.branches)], dim=1))


class _ASPPHead(nn.Module):
    includes_head = True

    def __init__(
        self,
        channel_list: Sequence[int],
        out_channels: int,
        dilations: Sequence[int],
        channels: int,
        in_index: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.channel_list = list(channel_list)
        self.in_index = check_index(type(self).__name__, in_index, self.channel_list, argument="in_index")
        self.aspp = ASPPModule(self.channel_list[self.in_index], channels, dilations)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.out_channels: int = out_channels

    def forward(self, features: list[Tensor]) -> Tensor:
        check_feature_channels(type(self).__name__, self.channel_list, features)
        return self.classifier(self.dropout(self.aspp(features[self.in_index])))


@TERRATORCH_DECODER_REGISTRY.register
class ASPPSegmentationHead(_ASPPHead):
    """ASPP on one map followed by a 1x1 classifier: logits ``(B, num_classes, H, W)``.

    Already ends in the class projection (``includes_head = True``); the output keeps the
    resolution of the chosen map and the model upsamples it.

    Args:
        channel_list: Channel list of the features received.
        dilations: Dilation of each ASPP branch.
        num_classes: Number of classes.
        channels: Width of the ASPP branches.
        in_index: Which feature to use (default: the last).
        dropout: Dropout2d probability before the classifier.
    """

    def __init__(
        self,
        channel_list: Sequence[int],
        dilations: Sequence[int] = (1, 6, 12, 18),
        num_classes: int = 2,
        channels: int = 256,
        in_index: int = -1,
        dropout: float = 0.1,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"ASPPSegmentationHead: num_classes must be >= 1, got {num_classes}.")
        super().__init__(channel_list, num_classes, dilations, channels, in_index, dropout)

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return logits ``(B, num_classes, H, W)`` at the chosen map's resolution."""
        return super().forward(features)


@TERRATORCH_DECODER_REGISTRY.register
class ASPPRegressionHead(_ASPPHead):
    """ASPP on one map followed by a 1x1 conv to one channel: ``(B, 1, H, W)``.

    Args:
        channel_list: Channel list of the features received.
        dilations: Dilation of each ASPP branch.
        channels: Width of the ASPP branches.
        in_index: Which feature to use (default: the last).
        dropout: Dropout2d probability before the output conv.
        final_act: Optional ``torch.nn`` activation name applied to the output (e.g. ``"ReLU"``).
    """

    def __init__(
        self,
        channel_list: Sequence[int],
        dilations: Sequence[int] = (1, 6, 12, 18),
        channels: int = 256,
        in_index: int = -1,
        dropout: float = 0.1,
        final_act: str | None = None,
    ) -> None:
        super().__init__(channel_list, 1, dilations, channels, in_index, dropout)
        self.final_act = activation_layer(final_act, "ASPPRegressionHead") if final_act else nn.Identity()

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return ``(B, 1, H, W)`` at the chosen map's resolution."""
        return self.final_act(super().forward(features))
