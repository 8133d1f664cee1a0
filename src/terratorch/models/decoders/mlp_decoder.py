"""A per-position two-layer perceptron decoder."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY
from terratorch.registry.registry import close_matches

__all__ = ["MLPDecoder"]


def activation_layer(name: str, owner: str) -> nn.Module:
    """Instantiate ``torch.nn.<name>()`` (e.g. ``"ReLU"``, ``"GELU"``) with a helpful error."""
    layer = getattr(nn, name, None)
    if not isinstance(layer, type) or not issubclass(layer, nn.Module):
        options = [n for n in dir(nn.modules.activation) if n[0].isupper()]
        hint = close_matches(name, options, n=3)
        raise ValueError(
            f"{owner}: activation {name!r} is not a torch.nn activation."
            + (f" Did you mean: {', '.join(hint)}?" if hint else " Examples: ReLU, GELU, SiLU.")
        )
    return layer()


@TERRATORCH_DECODER_REGISTRY.register
class MLPDecoder(nn.Module):
    """``Linear(C, channels) -> act -> Linear(channels, out_dim) -> act`` at every position.

    Works on maps ``(B, C, H, W)`` (applied per pixel) and on vectors ``(B, C)`` (e.g. after an
    ``AggregateTokens`` neck).

    Args:
        embed_dim: Channel list of the features received.
        channels: Hidden width.
        out_dim: Output channels.
        activation: Name of a ``torch.nn`` activation.
        out_index: Which feature to use (default: the last).

    Attributes:
        out_channels: ``out_dim``.
    """

    def __init__(
        self,
        embed_dim: Sequence[int],
        channels: int = 100,
        out_dim: int = 100,
        activation: str = "ReLU",
        out_index: int = -1,
    ) -> None:
        super().__init__()
        self.embed_dim = list(embed_dim)
        self.out_index = check_index("MLPDecoder", out_index, self.embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(self.embed_dim[self.out_index], channels),
            activation_layer(activation, "MLPDecoder"),
            nn.Linear(channels, out_dim),
            activation_layer(activation, "MLPDecoder"),
        )
        self.out_channels: int = out_dim

    def forward(self, features: list[Tensor]) -> Tensor:
        """Return ``(B, out_dim, H, W)`` for a map input or ``(B, out_dim)`` for a vector input."""
        check_feature_channels("MLPDecoder", self.embed_dim, features)
        feature = features[self.out_index]
        if feature.dim() not in (2, 4):
            raise ValueError(
                f"MLPDecoder expects (B, C, H, W) maps or (B, C) vectors, got shape {tuple(feature.shape)}."
            )
        return self.mlp(feature.movedim(1, -1)).movedim(-1, 1)
