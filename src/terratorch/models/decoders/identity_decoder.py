"""A decoder that returns one of its input maps unchanged."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["IdentityDecoder"]


@TERRATORCH_DECODER_REGISTRY.register
class IdentityDecoder(nn.Module):
    """Return ``features[out_index]`` as is (the head then works on the backbone's map directly).

    Args:
        embed_dim: Channel list of the features received.
        out_index: Which feature to return (negative counts from the end).

    Attributes:
        out_channels: ``embed_dim[out_index]``.
    """

    def __init__(self, embed_dim: Sequence[int], out_index: int = -1) -> None:
        super().__init__()
        self.embed_dim = list(embed_dim)
        self.out_index = check_index("IdentityDecoder", out_index, self.embed_dim)
        self.out_channels: int = self.embed_dim[self.out_index]

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return the selected feature, e.g. ``(B, C, H, W)``."""
        check_feature_channels("IdentityDecoder", self.embed_dim, features)
        return features[self.out_index]
