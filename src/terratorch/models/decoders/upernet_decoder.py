"""UperNet: pyramid pooling on the coarsest map plus an FPN over the whole pyramid."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels
from terratorch.models.decoders.utils import ConvModule
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["PPM", "UperNetDecoder"]


class PPM(nn.ModuleList):
    """Pyramid pooling: average-pool a map to several grid sizes, project each, upsample back.

    Entry ``i`` is ``Sequential(AdaptiveAvgPool2d(pool_scales[i]), ConvModule(1x1))``.

    Args:
        pool_scales: Output grid sizes of the adaptive average pools.
        in_channels: Channels of the input map.
        channels: Channels of each pooled branch.
        align_corners: Passed to the bilinear upsampling.
    """

    def __init__(
        self, pool_scales: Sequence[int], in_channels: int, channels: int, align_corners: bool
    ) -> None:
        super().__init__()
        self.pool_scales = pool_scales
        self.align_corners = align_corners
        self.in_channels = in_channels
        self.channels = channels
        for scale in pool_scales:
            self.append(
                nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels, channels, 1, inplace=True))
            )

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, C, H, W)`` → one ``(B, channels, H, W)`` map per pooling scale."""
        size = x.shape[2:]
        return [
            F.interpolate(branch(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for branch in self
        ]


@TERRATORCH_DECODER_REGISTRY.register
class UperNetDecoder(nn.Module):
    """UperNet decoder (pyramid pooling module + feature pyramid network fusion).

    The coarsest map goes through pyramid pooling (``psp_modules``) and a 3x3 ``bottleneck``;
    every finer map gets a 1x1 lateral conv (``lateral_convs``), the top-down path adds the
    upsampled coarser level, a 3x3 conv smooths each level (``fpn_convs``), and all levels, resized
    to the finest one, are concatenated and fused by a 3x3 conv (``fpn_bottleneck``). Every conv
    is a :class:`~terratorch.models.decoders.utils.ConvModule` (conv, batch norm, ReLU).

    The output has the resolution of the **finest input map**; the model upsamples it to the
    input size.

    Args:
        embed_dim: Channel list of the pyramid, finest first.
        pool_scales: Grid sizes of the pyramid pooling module.
        channels: Channels of every internal level and of the output.
        align_corners: Passed to bilinear upsampling.
        scale_modules: Deprecated (prefer the ``LearnedInterpolateToPyramidal`` neck). Turn four
            same-resolution maps (plain ViT layers) into a pyramid with learned modules first:
            map 0 is upsampled x4 (two transposed convs, channels / 4), map 1 x2 (one transposed
            conv, channels / 2), map 2 is kept and map 3 is max-pooled /2.

    Attributes:
        embed_dim: The channel list the fusion works on (after ``scale_modules`` if set).
        out_channels: ``channels``.
    """

    def __init__(
        self,
        embed_dim: list[int],
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
        channels: int = 256,
        align_corners: bool = True,
        scale_modules: bool = False,
    ) -> None:
        super().__init__()
        self._feature_channels = [int(c) for c in embed_dim]
        if not self._feature_channels:
            raise ValueError("UperNetDecoder needs at least one feature map, got an empty channel list.")
        self.scale_modules = scale_modules
        if scale_modules:
            warnings.warn(
                "UperNetDecoder(scale_modules=True) is deprecated; use the LearnedInterpolateToPyramidal "
                "neck instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            if len(self._feature_channels) != 4:
                raise ValueError(
                    "UperNetDecoder with scale_modules=True needs exactly 4 feature maps, got "
                    f"{len(self._feature_channels)} (channels {self._feature_channels}). Select 4 layers "
                    "with a SelectIndices neck."
                )
            c0, c1, c2, c3 = self._feature_channels
            self.fpn1 = nn.Sequential(
                nn.ConvTranspose2d(c0, c0 // 2, 2, 2),
                nn.BatchNorm2d(c0 // 2),
                nn.GELU(),
                nn.ConvTranspose2d(c0 // 2, c0 // 4, 2, 2),
            )
            self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c1, c1 // 2, 2, 2))
            self.fpn3 = nn.Sequential(nn.Identity())
            self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
            self.embed_dim = [c0 // 4, c1 // 2, c2, c3]
        else:
            self.embed_dim = list(self._feature_channels)
        self.out_channels: int = channels
        self.channels = channels
        self.align_corners = align_corners
        top = self.embed_dim[-1]
        self.psp_modules = PPM(pool_scales, top, channels, align_corners=align_corners)
        self.bottleneck = ConvModule(top + len(pool_scales) * channels, channels, 3, padding=1, inplace=True)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in self.embed_dim[:-1])
        self.fpn_convs = nn.ModuleList(
            ConvModule(channels, channels, 3, padding=1) for _ in self.embed_dim[:-1]
        )
        self.fpn_bottleneck = ConvModule(len(self.embed_dim) * channels, channels, 3, padding=1, inplace=True)

    def psp_forward(self, inputs: list[Tensor]) -> Tensor:
        """Pyramid pooling on the coarsest map, fused by ``bottleneck``."""
        x = inputs[-1]
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))

    def _resize(self, x: Tensor, size: torch.Size) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        """``[(B, C_i, H_i, W_i)]`` finest first → ``(B, channels, H_0, W_0)``."""
        check_feature_channels("UperNetDecoder", self._feature_channels, inputs)
        if self.scale_modules:
            inputs = [
                self.fpn1(inputs[0]),
                self.fpn2(inputs[1]),
                self.fpn3(inputs[2]),
                self.fpn4(inputs[3]),
            ]
        levels = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        levels.append(self.psp_forward(inputs))
        for i in range(len(levels) - 1, 0, -1):
            levels[i - 1] = levels[i - 1] + self._resize(levels[i], levels[i - 1].shape[2:])
        outputs = [conv(levels[i]) for i, conv in enumerate(self.fpn_convs)]
        outputs.append(levels[-1])
        size = outputs[0].shape[2:]
        outputs = [outputs[0], *(self._resize(o, size) for o in outputs[1:])]
        return self.fpn_bottleneck(torch.cat(outputs, dim=1))
