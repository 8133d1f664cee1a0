"""A per-position linear layer over the concatenation of all input features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from terratorch.choices import did_you_mean
from terratorch.models.decoders import check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["MLPDecoder"]


def activation_layer(name: str, owner: str) -> nn.Module:
    """Instantiate ``torch.nn.<name>()`` (e.g. ``"ReLU"``, ``"GELU"``) with a helpful error."""
    layer = getattr(nn, name, None)
    if not isinstance(layer, type) or not issubclass(layer, nn.Module):
        options = [n for n in dir(nn.modules.activation) if n[0].isupper()]
        hint = did_you_mean(name, options, bare=True) or " Examples: ReLU, GELU, SiLU."
        raise ValueError(f"{owner}: activation {name!r} is not a torch.nn activation.{hint}")
    return layer()


@TERRATORCH_DECODER_REGISTRY.register
class MLPDecoder(nn.Module):
    """Concatenate all features on the channel axis, then ``hidden_layer`` (Linear) + activation.

    The linear layer maps ``len(embed_dim) * embed_dim[out_index]`` channels to
    ``embed_dim[out_index]`` at every position, so all features are expected to have
    ``embed_dim[out_index]`` channels. Works on maps ``(B, C, H, W)`` and vectors ``(B, C)``.

    Args:
        embed_dim: Channel list of the features received.
        channels: Unused; kept for configuration compatibility.
        out_dim: Unused; kept for configuration compatibility (the output width is
            ``embed_dim[out_index]``).
        activation: Name of a ``torch.nn`` activation applied after the linear layer.
        out_index: Which entry of ``embed_dim`` sets the width.

    Attributes:
        dim: ``out_index``.
        n_inputs: ``len(embed_dim)``.
        out_channels: ``embed_dim[out_index]``.
    """

    def __init__(
        self,
        embed_dim: list[int],
        channels: int = 100,
        out_dim: int = 100,
        activation: str = "ReLU",
        out_index: int = -1,
    ) -> None:
        super().__init__()
        check_index("MLPDecoder", out_index, embed_dim)
        self.embed_dim = embed_dim
        self.channels = channels
        self.dim = out_index
        self.n_inputs = len(embed_dim)
        self.out_channels: int = int(embed_dim[out_index])
        self.hidden_layer = nn.Linear(self.out_channels * self.n_inputs, self.out_channels)
        self.activation = activation_layer(activation, "MLPDecoder")

    def forward(self, x: list[Tensor]) -> Tensor:
        """Return ``(B, out_channels, H, W)`` for map inputs or ``(B, out_channels)`` for vectors."""
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"MLPDecoder expects a list of feature tensors, got {type(x).__name__}.")
        data = torch.cat(list(x), dim=1)
        if data.dim() not in (2, 4):
            raise ValueError(
                f"MLPDecoder expects (B, C, H, W) maps or (B, C) vectors, got shape {tuple(data.shape)}."
            )
        if data.shape[1] != self.hidden_layer.in_features:
            raise ValueError(
                f"MLPDecoder was built for features with channels {list(self.embed_dim)} (concatenated: "
                f"{self.hidden_layer.in_features}) but received channels {[int(f.shape[1]) for f in x]} "
                f"(concatenated: {data.shape[1]})."
            )
        if data.dim() == 4:
            return self.activation(self.hidden_layer(data.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return self.activation(self.hidden_layer(data))
