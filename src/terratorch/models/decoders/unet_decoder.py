"""U-Net decoder over a feature pyramid, up to the input resolution."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, conv_norm_relu
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["UNetDecoder"]


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        conv_norm_relu(in_channels, out_channels), conv_norm_relu(out_channels, out_channels)
    )


@TERRATORCH_DECODER_REGISTRY.register
class UNetDecoder(nn.Module):
    """U-Net decoder: from the coarsest map, repeatedly upsample, concatenate the next finer map
    and apply two 3x3 conv blocks; then upsample past the finest map to the input resolution.

    With a pyramid at strides 4, 8, 16, 32 the three fusion stages end at stride 4; the last
    stage upsamples x4 more (``final_upsampling``, in x2 steps each followed by a 3x3 conv block)
    so the output has the **input resolution**. For a pyramid whose finest map has stride 2 (e.g. a
    5-level ResNet) set ``final_upsampling=2``.

    Args:
        embed_dim: Channel list of the pyramid, finest first.
        channels: Output channels of each stage: ``len(embed_dim) - 1`` fusion stages (coarse to
            fine) followed by the final upsampling stage, so ``len(channels) == len(embed_dim)``.
        final_upsampling: Stride of the finest map, i.e. how much the last stage upsamples
            (a power of two; 1 disables it).

    Attributes:
        out_channels: ``channels[-1]``.
    """

    def __init__(self, embed_dim: Sequence[int], channels: Sequence[int], final_upsampling: int = 4) -> None:
        super().__init__()
        self.embed_dim = list(embed_dim)
        self.channels = list(channels)
        if len(self.channels) != len(self.embed_dim):
            raise ValueError(
                "UNetDecoder needs one entry in channels per feature map: embed_dim has "
                f"{len(self.embed_dim)} maps {self.embed_dim} but channels has {len(self.channels)} "
                f"{self.channels} (stages: "
                f"{len(self.embed_dim) - 1} fusions + 1 final upsampling)."
            )
        steps = int(math.log2(final_upsampling)) if final_upsampling >= 1 else -1
        if steps < 0 or 2**steps != final_upsampling:
            raise ValueError(
                f"UNetDecoder: final_upsampling must be a power of two >= 1, got {final_upsampling}."
            )
        skips = self.embed_dim[-2::-1]  # finer maps, coarse to fine
        widths = [self.embed_dim[-1], *self.channels[:-1]]
        self.fusions = nn.ModuleList(
            _double_conv(width + skip, out) for width, skip, out in zip(widths, skips, self.channels)
        )
        last_in = widths[-1]
        self.final = nn.ModuleList(
            conv_norm_relu(last_in if step == 0 else self.channels[-1], self.channels[-1])
            for step in range(max(steps, 1))
        )
        self.final_steps = steps
        self.out_channels: int = self.channels[-1]

    def forward(self, features: list[Tensor]) -> Tensor:
        """``[(B, C_i, H_i, W_i)]`` finest first → ``(B, channels[-1], H_0 * f, W_0 * f)``.

        ``f`` is ``final_upsampling``.
        """
        check_feature_channels("UNetDecoder", self.embed_dim, features)
        x = features[-1]
        for fusion, skip in zip(self.fusions, features[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fusion(torch.cat([x, skip], dim=1))
        for block in self.final:
            if self.final_steps:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(x)
        return x
