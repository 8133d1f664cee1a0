"""Building blocks shared by the decoders: a conv + batch norm + ReLU block and a resize helper."""

from __future__ import annotations

import warnings

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvModule", "resize"]


class ConvModule(nn.Module):
    """``conv`` (no bias) → ``norm`` (``BatchNorm2d``) → ``act`` (``ReLU``).

    The three sub-modules are named ``conv``, ``norm`` and ``act`` so checkpoints address their
    weights as ``<block>.conv.weight`` and ``<block>.norm.*``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Convolution kernel size.
        padding: Convolution padding (not "same" by default: pass ``kernel_size // 2`` for that).
        dilation: Convolution dilation.
        stride: Convolution stride (ignored when ``transpose``).
        inplace: Whether the ReLU works in place.
        transpose: Use ``ConvTranspose2d`` upsampling by ``scale_factor`` instead of ``Conv2d``.
        scale_factor: Upsampling factor of the transposed convolution (its stride); the padding
            becomes ``(kernel_size - scale_factor) // 2``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 0,
        dilation: int = 1,
        stride: int = 1,
        inplace: bool = False,
        transpose: bool = False,
        scale_factor: int | None = None,
    ) -> None:
        super().__init__()
        if transpose:
            if scale_factor is None:
                raise ValueError("ConvModule: transpose=True needs scale_factor (the upsampling factor).")
            stride = scale_factor
            padding = (kernel_size - scale_factor) // 2
        conv_class = nn.ConvTranspose2d if transpose else nn.Conv2d
        self.conv = conv_class(
            in_channels,
            out_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            stride=stride,
            bias=False,
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=inplace)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, H', W')``."""
        return self.act(self.norm(self.conv(x)))


def resize(
    input: Tensor,
    size: tuple[int, ...] | None = None,
    scale_factor: float | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    warning: bool = True,
) -> Tensor:
    """``F.interpolate`` that warns when ``align_corners=True`` upsampling cannot align the grids.

    With ``align_corners=True`` an upsampling from ``h`` to ``H`` lines the corner pixels up exactly
    only when ``H - 1`` is a multiple of ``h - 1``; otherwise the output is slightly shifted.
    """
    if warning and size is not None and align_corners:
        in_h, in_w = (int(s) for s in input.shape[2:])
        out_h, out_w = (int(s) for s in size)
        upsampling = out_h > in_h or out_w > in_w
        if (
            upsampling
            and min(out_h, out_w, in_h, in_w) > 1
            and (out_h - 1) % (in_h - 1)
            and (out_w - 1) % (in_w - 1)
        ):
            warnings.warn(
                f"resize with align_corners=True from {(in_h, in_w)} to {(out_h, out_w)}: the grids align "
                "only when the output size is n*x+1 for an input size x+1.",
                stacklevel=2,
            )
    return F.interpolate(input, size, scale_factor, mode, align_corners)
