"""UperNet: pyramid pooling on the coarsest map plus an FPN over the whole pyramid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, conv_norm_relu
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["UperNetDecoder"]


class PyramidPooling(nn.Module):
    """Concatenate a map with its average-pooled versions at several grid sizes, then fuse.

    Args:
        in_channels: Channels of the input map.
        channels: Channels of each pooled branch and of the output.
        pool_scales: Output grid sizes of the adaptive average pools.
        align_corners: Passed to bilinear upsampling.
    """

    def __init__(
        self, in_channels: int, channels: int, pool_scales: Sequence[int], align_corners: bool
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(scale),
                conv_norm_relu(in_channels, channels, kernel_size=1, norm=scale > 1),
            )
            for scale in pool_scales
        )
        self.fuse = conv_norm_relu(in_channels + len(pool_scales) * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, channels, H, W)``."""
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for branch in self.branches
        ]
        return self.fuse(torch.cat([x, *pooled], dim=1))


@TERRATORCH_DECODER_REGISTRY.register
class UperNetDecoder(nn.Module):
    """UperNet decoder (pyramid pooling module + feature pyramid network fusion).

    The coarsest map goes through pyramid pooling; every finer map gets a 1x1 lateral conv, the
    top-down path adds the upsampled coarser level, a 3x3 conv smooths each level, and all levels,
    resized to the finest one, are concatenated and fused by a 3x3 conv.

    The output has the resolution of the **finest input map** (stride 4 for a stride 4..32
    pyramid); the model upsamples it to the input size.

    Args:
        embed_dim: Channel list of the pyramid, finest first.
        pool_scales: Grid sizes of the pyramid pooling module.
        channels: Channels of every internal level and of the output.
        align_corners: Passed to bilinear upsampling.
        scale_modules: Rescale same-resolution maps (plain ViT layers) into a pyramid first, map
            ``i`` of ``N`` by ``2 ** (N - 2 - i)``; the necks ``InterpolateToPyramidal`` or
            ``LearnedInterpolateToPyramidal`` do the same explicitly.

    Attributes:
        out_channels: ``channels``.
    """

    def __init__(
        self,
        embed_dim: Sequence[int],
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        channels: int = 256,
        align_corners: bool = True,
        scale_modules: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = list(embed_dim)
        if not self.embed_dim:
            raise ValueError("UperNetDecoder needs at least one feature map, got an empty channel list.")
        self.align_corners = align_corners
        self.scale_modules = scale_modules
        self.ppm = PyramidPooling(self.embed_dim[-1], channels, pool_scales, align_corners)
        self.laterals = nn.ModuleList(conv_norm_relu(c, channels, kernel_size=1) for c in self.embed_dim[:-1])
        self.smooth = nn.ModuleList(conv_norm_relu(channels, channels) for _ in self.embed_dim[:-1])
        self.fuse = conv_norm_relu(len(self.embed_dim) * channels, channels)
        self.out_channels: int = channels

    def _resize(self, x: Tensor, size: torch.Size) -> Tensor:
        if x.shape[-2:] == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def _to_pyramid(self, features: list[Tensor]) -> list[Tensor]:
        count = len(features)
        return [
            F.interpolate(f, scale_factor=2.0 ** (count - 2 - i), mode="bilinear", align_corners=False)
            if count - 2 - i
            else f
            for i, f in enumerate(features)
        ]

    def forward(self, features: list[Tensor]) -> Tensor:
        """``[(B, C_i, H_i, W_i)]`` finest first → ``(B, channels, H_0, W_0)``."""
        check_feature_channels("UperNetDecoder", self.embed_dim, features)
        if self.scale_modules:
            features = self._to_pyramid(features)
        levels = [lateral(f) for lateral, f in zip(self.laterals, features[:-1])]
        levels.append(self.ppm(features[-1]))
        for i in range(len(levels) - 2, -1, -1):
            levels[i] = levels[i] + self._resize(levels[i + 1], levels[i].shape[-2:])
        outputs = [smooth(level) for smooth, level in zip(self.smooth, levels[:-1])] + [levels[-1]]
        size = outputs[0].shape[-2:]
        return self.fuse(torch.cat([self._resize(o, size) for o in outputs], dim=1))
