"""Pixel-wise regression head: ``(B, C, H, W)`` maps to ``(B, num_outputs, H', W')`` values."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.heads._common import check_channels, resolve_activation

__all__ = ["PixelShuffleUpscale", "RegressionHead"]


class PixelShuffleUpscale(nn.Module):
    """x2 learned upsampling: 3x3 conv to ``4 * C`` channels, pixel shuffle, BatchNorm, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels * 4, kernel_size=3, stride=1, padding=1)
        self.upscale = nn.PixelShuffle(2)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, C, 2H, 2W)``."""
        return self.relu(self.bn(self.upscale(self.conv(x))))


class RegressionHead(nn.Module):
    """Optional x2 upscaling blocks, optional ``conv3x3 + BN + ReLU`` blocks, Dropout2d, 1x1 conv.

    ``self.head`` is ``nn.Sequential([upscale?, hidden?, Dropout2d, conv])`` (entries only present when
    configured), matching the reference release's checkpoint keys (``head.head.1.*`` for the output
    conv of a plain head). The channel dimension is kept; the model squeezes a single output channel.

    Args:
        in_channels: Channels of the decoder output.
        num_outputs: Number of regressed variables per pixel.
        final_act: Activation on the output: a module, a ``torch.nn`` class name (``"ReLU"``) or a
            dotted path (``"torch.nn.Sigmoid"``); None for none.
        learned_upscale_layers: Number of :class:`PixelShuffleUpscale` (x2) blocks.
        channel_list: Widths of hidden ``conv3x3 + BatchNorm + ReLU`` blocks.
        batch_norm: Accepted for compatibility; the hidden blocks always use BatchNorm (as the reference).
        dropout: Dropout2d probability before the output conv.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int = 1,
        final_act: nn.Module | str | None = None,
        learned_upscale_layers: int = 0,
        channel_list: Sequence[int] | None = None,
        batch_norm: bool = True,
        dropout: float = 0,
    ) -> None:
        super().__init__()
        if learned_upscale_layers < 0:
            raise ValueError(
                f"RegressionHead: learned_upscale_layers must be >= 0, got {learned_upscale_layers}."
            )
        if num_outputs < 1:
            raise ValueError(f"RegressionHead: num_outputs must be >= 1, got {num_outputs}.")
        self.in_channels = in_channels
        self.num_outputs = num_outputs
        self.learned_upscale_layers = learned_upscale_layers
        self.final_act = resolve_activation(final_act, "RegressionHead")
        layers: list[nn.Module] = []
        if learned_upscale_layers:
            layers.append(
                nn.Sequential(*(PixelShuffleUpscale(in_channels) for _ in range(learned_upscale_layers)))
            )
        width = in_channels
        if channel_list is not None:
            blocks = []
            for channels in channel_list:
                blocks.append(
                    nn.Sequential(
                        nn.Conv2d(width, channels, kernel_size=3, padding=1, bias=False),
                        nn.BatchNorm2d(channels),
                        nn.ReLU(inplace=True),
                    )
                )
                width = channels
            layers.append(nn.Sequential(*blocks))
        layers += [nn.Dropout2d(dropout), nn.Conv2d(width, num_outputs, kernel_size=1)]
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, num_outputs, H * 2**k, W * 2**k)``, ``k = "
        "learned_upscale_layers``."""
        check_channels("RegressionHead", self.in_channels, x.shape[1], x.shape)
        return self.final_act(self.head(x))
