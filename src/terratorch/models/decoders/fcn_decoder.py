"""Fully convolutional decoder: upsample one map with a stack of transposed convolutions."""

from __future__ import annotations

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["FCNDecoder", "Norm2d"]


class Norm2d(nn.Module):
    """``LayerNorm`` (eps 1e-6) over the channel dimension of a ``(B, C, H, W)`` map.

    Args:
        embed_dim: Number of channels.
    """

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector; the shape is unchanged."""
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


def _upscale_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """x2 ``ConvTranspose2d`` → 3x3 ``Conv2d`` → channel ``LayerNorm`` → ``GELU``."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
        Norm2d(out_channels),
        nn.GELU(),
    )


@TERRATORCH_DECODER_REGISTRY.register
class FCNDecoder(nn.Module):
    """Upsample ``features[in_index]`` by ``2 ** num_convs`` with ``num_convs`` blocks (``convs``).

    Each block is ``ConvTranspose2d(k=2, s=2)``, a 3x3 conv, a LayerNorm over channels and GELU.
    With the default 4 blocks a stride-16 ViT map comes back to input resolution.

    Args:
        embed_dim: Channel list of the features received.
        channels: Channels of every block (and of the output).
        num_convs: Number of x2 upsampling blocks.
        in_index: Which feature to decode (default: the last).

    Attributes:
        embed_dim: Channels of the decoded feature (``embed_dim[in_index]`` of the argument).
        out_channels: ``channels``.
    """

    def __init__(
        self, embed_dim: list[int], channels: int = 256, num_convs: int = 4, in_index: int = -1
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"FCNDecoder: num_convs must be >= 1, got {num_convs}.")
        self._feature_channels = [int(c) for c in embed_dim]
        check_index("FCNDecoder", in_index, self._feature_channels, argument="in_index")
        self.channels = channels
        self.num_convs = num_convs
        self.in_index = in_index
        self.embed_dim = self._feature_channels[in_index]
        widths = [self.embed_dim] + [channels] * num_convs
        self.convs = nn.Sequential(*(_upscale_block(widths[i], widths[i + 1]) for i in range(num_convs)))

    @property
    def out_channels(self) -> int:
        """Channels of the decoded map."""
        return self.channels

    def forward(self, x: list[Tensor]) -> Tensor:
        """Return ``(B, channels, H * 2**num_convs, W * 2**num_convs)`` for the map ``(B, C, H, W)``."""
        check_feature_channels("FCNDecoder", self._feature_channels, x)
        return self.convs(x[self.in_index])
