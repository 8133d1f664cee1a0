"""A decoder that returns one of its input maps unchanged."""

from __future__ import annotations

from torch import Tensor, nn

from terratorch.models.decoders import check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["IdentityDecoder"]


@TERRATORCH_DECODER_REGISTRY.register
class IdentityDecoder(nn.Module):
    """Return ``features[out_index]`` as is (the head then works on the backbone's map directly).

    The features are not checked against ``embed_dim``: whatever the selected entry is (a map, a
    pooled vector, a token sequence) goes to the head unchanged.

    Args:
        embed_dim: Channel list of the features received.
        out_index: Which feature to return (negative counts from the end).

    Attributes:
        dim: ``out_index``.
        out_channels: ``embed_dim[out_index]``.
    """

    def __init__(self, embed_dim: list[int], out_index: int = -1) -> None:
        super().__init__()
        check_index("IdentityDecoder", out_index, embed_dim)
        self.embed_dim = embed_dim
        self.dim = out_index

    @property
    def out_channels(self) -> int:
        """Channels of the selected feature."""
        return int(self.embed_dim[self.dim])

    def forward(self, x: list[Tensor]) -> Tensor:
        """Return the selected feature, e.g. ``(B, C, H, W)``."""
        return x[self.dim]
