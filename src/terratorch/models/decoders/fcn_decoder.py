"""Fully convolutional decoder: upsample one map with a stack of transposed convolutions."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["FCNDecoder"]


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@TERRATORCH_DECODER_REGISTRY.register
class FCNDecoder(nn.Module):
    """Upsample ``features[in_index]`` by ``2 ** num_convs`` with transposed-conv blocks.

    Each block is ``ConvTranspose2d(k=2, s=2) + BatchNorm + ReLU``. With the default 4 blocks a
    stride-16 ViT map comes back to input resolution.

    Args:
        embed_dim: Channel list of the features received.
        channels: Channels of every block (and of the output).
        num_convs: Number of x2 upsampling blocks.
        in_index: Which feature to decode (default: the last).
        dropout: Dropout2d probability applied to the output.

    Attributes:
        out_channels: ``channels``.
    """

    def __init__(
        self,
        embed_dim: Sequence[int],
        channels: int = 256,
        num_convs: int = 4,
        in_index: int = -1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"FCNDecoder: num_convs must be >= 1, got {num_convs}.")
        self.embed_dim = list(embed_dim)
        self.in_index = check_index("FCNDecoder", in_index, self.embed_dim, argument="in_index")
        widths = [self.embed_dim[self.in_index]] + [channels] * num_convs
        self.blocks = nn.Sequential(*(_up_block(a, b) for a, b in pairwise(widths)))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.out_channels: int = channels

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return ``(B, channels, H * 2**num_convs, W * 2**num_convs)`` for an input map ``(B, C, H, W)``."""
        check_feature_channels("FCNDecoder", self.embed_dim, features)
        return self.dropout(self.blocks(features[self.in_index]))
