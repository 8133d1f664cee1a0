"""Task heads: the last layers that turn a decoder's output into predictions.

* :class:`SegmentationHead`: ``(B, C, H, W) -> (B, num_classes, H, W)`` logits.
* :class:`RegressionHead`: ``(B, C, H, W) -> (B, 1, H', W')``; the channel dimension is kept
  so every head returns NCHW (the model can still resize it) and the model squeezes it to
  ``(B, H, W)``.
* :class:`ClassificationHead`: ``(B, C, H, W)``, ``(B, L, C)`` or ``(B, C)`` ``-> (B, num_classes)``.

Hidden layers are optional (``channel_list`` / ``dim_list``); without them each head is a single
linear projection.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.decoders import conv_norm_relu
from terratorch.models.decoders.mlp_decoder import activation_layer

__all__ = ["ClassificationHead", "RegressionHead", "SegmentationHead"]


def _check_channels(owner: str, expected: int, received: int, shape: Sequence[int]) -> None:
    if expected != received:
        raise ValueError(
            f"{owner} was built with in_channels={expected} but received {received} channels (input shape "
            f"{tuple(shape)}). Set in_channels to the decoder's out_channels."
        )


def _hidden_convs(in_channels: int, channel_list: Sequence[int] | None) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    width = in_channels
    for channels in channel_list or []:
        layers.append(conv_norm_relu(width, channels))
        width = channels
    return nn.Sequential(*layers), width


class SegmentationHead(nn.Module):
    """Optional 3x3 conv blocks, dropout, then a 1x1 conv to ``num_classes``.

    Args:
        in_channels: Channels of the decoder output.
        num_classes: Number of classes.
        channel_list: Widths of hidden ``conv3x3 + BatchNorm + ReLU`` blocks.
        dropout: Dropout2d probability before the classifier.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channel_list: Sequence[int] | None = None,
        dropout: float = 0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"SegmentationHead: num_classes must be >= 1, got {num_classes}.")
        self.in_channels = in_channels
        self.hidden, width = _hidden_convs(in_channels, channel_list)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, num_classes, H, W)``."""
        _check_channels("SegmentationHead", self.in_channels, x.shape[1], x.shape)
        return self.classifier(self.dropout(self.hidden(x)))


class RegressionHead(nn.Module):
    """Optional learned x2 upsampling, optional 3x3 conv blocks, then a 1x1 conv to one channel.

    The output is ``(B, 1, H * 2**learned_upscale_layers, W * 2**learned_upscale_layers)``; the
    model squeezes the channel to return ``(B, H, W)``.

    Args:
        in_channels: Channels of the decoder output.
        final_act: Activation applied to the output: a ``torch.nn`` name (``"ReLU"``,
            ``"Sigmoid"``, ...) or a module; None for none.
        learned_upscale_layers: Number of ``ConvTranspose2d(k=2, s=2) + BatchNorm + ReLU`` blocks.
        channel_list: Widths of hidden ``conv3x3 + BatchNorm + ReLU`` blocks.
        dropout: Dropout2d probability before the output conv.
    """

    def __init__(
        self,
        in_channels: int,
        final_act: str | nn.Module | None = None,
        learned_upscale_layers: int = 0,
        channel_list: Sequence[int] | None = None,
        dropout: float = 0,
    ) -> None:
        super().__init__()
        if learned_upscale_layers < 0:
            raise ValueError(
                f"RegressionHead: learned_upscale_layers must be >= 0, got {learned_upscale_layers}."
            )
        self.in_channels = in_channels
        self.upscale = nn.Sequential(
            *(
                nn.Sequential(
                    nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2, bias=False),
                    nn.BatchNorm2d(in_channels),
                    nn.ReLU(inplace=True),
                )
                for _ in range(learned_upscale_layers)
            )
        )
        self.hidden, width = _hidden_convs(in_channels, channel_list)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.regressor = nn.Conv2d(width, 1, kernel_size=1)
        if isinstance(final_act, str):
            final_act = activation_layer(final_act, "RegressionHead")
        self.final_act = final_act if final_act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, 1, H', W')`` with ``H' = H * 2**learned_upscale_layers``."""
        _check_channels("RegressionHead", self.in_channels, x.shape[1], x.shape)
        x = self.hidden(self.upscale(x))
        return self.final_act(self.regressor(self.dropout(x)))


class ClassificationHead(nn.Module):
    """Global pooling and an MLP giving ``(B, num_classes)`` logits.

    Accepts maps ``(B, C, H, W)`` (pooled over ``H, W``), token sequences ``(B, L, C)`` (pooled over
    ``L``) or vectors ``(B, C)`` (no pooling). The MLP is ``[Linear -> ReLU -> Dropout]`` per
    entry of ``dim_list`` followed by ``Linear(-, num_classes)``.

    Args:
        in_channels: Channels ``C`` of the input.
        num_classes: Number of classes.
        dim_list: Widths of hidden layers.
        dropout: Dropout probability after each hidden layer (and before the last layer).
        linear_after_pool: True: average-pool first, then run the MLP once per sample (cheaper).
            False (default): run the MLP at every position, then average the logits. Without hidden
            layers the two are the same function.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dim_list: Sequence[int] | None = None,
        dropout: float = 0,
        linear_after_pool: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"ClassificationHead: num_classes must be >= 1, got {num_classes}.")
        self.in_channels = in_channels
        self.linear_after_pool = linear_after_pool
        layers: list[nn.Module] = []
        width = in_channels
        for dim in dim_list or []:
            layers += [nn.Linear(width, dim), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = dim
        if not layers and dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)

    def _channels_last(self, x: Tensor) -> Tensor:
        """Return ``(B, N, C)`` (positions x channels) for 2-, 3- and 4-D inputs."""
        if x.dim() == 4:
            _check_channels("ClassificationHead", self.in_channels, x.shape[1], x.shape)
            return x.flatten(2).transpose(1, 2)
        if x.dim() == 3:
            _check_channels("ClassificationHead", self.in_channels, x.shape[2], x.shape)
            return x
        if x.dim() == 2:
            _check_channels("ClassificationHead", self.in_channels, x.shape[1], x.shape)
            return x.unsqueeze(1)
        raise ValueError(
            "ClassificationHead expects (B, C, H, W), (B, L, C) or (B, C) inputs, got shape "
            f"{tuple(x.shape)}."
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``(B, num_classes)`` logits."""
        positions = self._channels_last(x)
        if self.linear_after_pool:
            return self.mlp(positions.mean(dim=1))
        return self.mlp(positions).mean(dim=1)
