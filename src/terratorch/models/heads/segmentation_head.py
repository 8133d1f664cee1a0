"""Segmentation head: ``(B, C, H, W)`` decoder maps to ``(B, num_classes, H, W)`` logits."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.heads._common import check_channels

__all__ = ["SegmentationHead"]


class SegmentationHead(nn.Module):
    """Optional ``conv3x3 + ReLU`` blocks, dropout, then a 1x1 conv to ``num_classes``.

    All layers live in ``self.head`` (an ``nn.Sequential`` of ``[hidden blocks, dropout, conv]``), so
    checkpoint keys read ``head.head.0.<i>.0.*`` (hidden blocks) and ``head.head.2.*`` (classifier),
    as in the reference release.

    Args:
        in_channels: Channels of the decoder output.
        num_classes: Number of classes.
        channel_list: Widths of hidden ``conv3x3 + ReLU`` blocks.
        dropout: Dropout probability before the classifier (``nn.Dropout``).
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
        self.num_classes = num_classes
        width = in_channels
        if channel_list is None:
            hidden: nn.Module = nn.Identity()
        else:
            blocks = []
            for channels in channel_list:
                blocks.append(nn.Sequential(nn.Conv2d(width, channels, kernel_size=3, padding=1), nn.ReLU()))
                width = channels
            hidden = nn.Sequential(*blocks)
        drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Sequential(hidden, drop, nn.Conv2d(width, num_classes, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, num_classes, H, W)``."""
        check_channels("SegmentationHead", self.in_channels, x.shape[1], x.shape)
        return self.head(x)
