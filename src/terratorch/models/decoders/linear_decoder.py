"""Linear probing decoder: one transposed convolution from a feature map straight to class scores."""

from __future__ import annotations

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels, check_index
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["LinearDecoder"]


@TERRATORCH_DECODER_REGISTRY.register
class LinearDecoder(nn.Module):
    """A ``ConvTranspose2d`` (kernel = stride = ``upsampling_size``) from one map to ``num_classes``.

    Every feature pixel is mapped linearly to an ``upsampling_size x upsampling_size`` patch of
    class scores, so a stride-``upsampling_size`` map comes back to input resolution. It already
    produces class scores, so ``includes_head = True`` and the model adds no head: useful to probe
    frozen backbone features.

    Args:
        embed_dim: Channel list of the features received.
        num_classes: Output channels (classes, or 1 for regression).
        upsampling_size: Upsampling factor (kernel size and stride), e.g. the patch size.
        in_index: Which feature to use (default: the last).

    Attributes:
        embed_dim: Channels of the used feature (``embed_dim[in_index]`` of the argument).
        out_channels: ``num_classes``.
    """

    includes_head: bool = True

    def __init__(
        self, embed_dim: list[int], num_classes: int, upsampling_size: int, in_index: int = -1
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"LinearDecoder: num_classes must be >= 1, got {num_classes}.")
        if upsampling_size < 1:
            raise ValueError(f"LinearDecoder: upsampling_size must be >= 1, got {upsampling_size}.")
        self._feature_channels = [int(c) for c in embed_dim]
        check_index("LinearDecoder", in_index, self._feature_channels, argument="in_index")
        self.num_classes = num_classes
        self.in_index = in_index
        self.embed_dim = self._feature_channels[in_index]
        self.conv = nn.ConvTranspose2d(
            in_channels=self.embed_dim,
            out_channels=num_classes,
            kernel_size=upsampling_size,
            stride=upsampling_size,
            padding=0,
            output_padding=0,
        )

    @property
    def out_channels(self) -> int:
        """``num_classes``."""
        return self.num_classes

    def forward(self, x: list[Tensor]) -> Tensor:
        """Return scores ``(B, num_classes, H * upsampling_size, W * upsampling_size)``."""
        check_feature_channels("LinearDecoder", self._feature_channels, x)
        return self.conv(x[self.in_index])
