"""Linear probing decoder: a per-pixel linear classifier plus upsampling."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["LinearDecoder"]


@TERRATORCH_DECODER_REGISTRY.register
class LinearDecoder(nn.Module):
    """A 1x1 convolution to ``num_classes`` on one map, then bilinear upsampling.

    It already produces class scores, so ``includes_head = True`` and the model adds no head:
    useful to probe frozen backbone features.

    Args:
        embed_dim: Channel list of the features received.
        num_classes: Output channels (classes, or 1 for regression).
        upsampling_size: Upsampling factor applied to the logits (e.g. the patch size).
        in_index: Which feature to use (default: the last).

    Attributes:
        out_channels: ``num_classes``.
    """

    includes_head = True

    def __init__(
        self, embed_dim: Sequence[int], num_classes: int, upsampling_size: int = 1, in_index: int = -1
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"LinearDecoder: num_classes must be >= 1, got {num_classes}.")
        if upsampling_size < 1:
            raise ValueError(f"LinearDecoder: upsampling_size must be >= 1, got {upsampling_size}.")
        self.embed_dim = list(embed_dim)
        self.in_index = check_index("LinearDecoder", in_index, self.embed_dim, argument="in_index")
        self.classifier = nn.Conv2d(self.embed_dim[self.in_index], num_classes, kernel_size=1)
        self.upsampling_size = upsampling_size
        self.out_channels: int = num_classes

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return logits ``(B, num_classes, H * upsampling_size, W * upsampling_size)``."""
        check_feature_channels("LinearDecoder", self.embed_dim, features)
        logits = self.classifier(features[self.in_index])
        if self.upsampling_size == 1:
            return logits
        return F.interpolate(logits, scale_factor=self.upsampling_size, mode="bilinear", align_corners=False)
