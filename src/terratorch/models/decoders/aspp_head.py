"""Atrous spatial pyramid pooling (DeepLabV3-style) decoders and heads for segmentation and regression.

Unlike the other decoders, these are sized by ``in_channels`` (channels of the map they read) and
``channels`` (width of the ASPP branches), both required; the channel list the registry passes
first (``channel_list``) is accepted for compatibility but does not size anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.decoders.utils import ConvModule, resize
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["ASPPHead", "ASPPModule", "ASPPRegressionHead", "ASPPSegmentationHead"]

_INPUT_TRANSFORMS = (None, "resize_concat", "multiple_select")
# Accepted for configuration compatibility; the blocks are always conv (no bias) + BatchNorm + ReLU.
_CFG_KWARGS = ("conv_cfg", "norm_cfg", "act_cfg")


@TERRATORCH_DECODER_REGISTRY.register
class ASPPModule(nn.Module):
    """One :class:`~terratorch.models.decoders.utils.ConvModule` per dilation, applied in parallel.

    Dilation 1 gives a 1x1 conv, any other dilation ``d`` a 3x3 conv with dilation and padding
    ``d``, so every branch keeps the input resolution.

    Args:
        dilations: One branch per dilation.
        in_channels: Channels of the input map.
        channels: Channels of every branch.
        conv_cfg: Stored only (the blocks are fixed).
        norm_cfg: Stored only.
        act_cfg: Stored only.
    """

    def __init__(
        self,
        dilations: Sequence[int],
        in_channels: int,
        channels: int,
        conv_cfg: dict[str, Any] | None,
        norm_cfg: dict[str, Any] | None,
        act_cfg: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f"ASPP: dilations must be a non-empty list of ints >= 1, got {list(dilations)}.")
        self.dilations = dilations
        self.in_channels = in_channels
        self.channels = channels
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.model_sequence = nn.ModuleList(
            ConvModule(
                in_channels,
                channels,
                1 if d == 1 else 3,
                dilation=d,
                padding=0 if d == 1 else d,
            )
            for d in dilations
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, in_channels, H, W)`` → one ``(B, channels, H, W)`` map per dilation."""
        return [branch(x) for branch in self.model_sequence]


@TERRATORCH_DECODER_REGISTRY.register
class ASPPHead(nn.Module):
    """DeepLabV3's ASPP decoder: image pooling + dilated branches, concatenated and fused.

    Modules: ``image_pool`` (global average pool + 1x1 ConvModule, upsampled back),
    ``aspp_modules`` (:class:`ASPPModule`) and ``bottleneck`` (3x3 ConvModule). The output
    ``(B, channels, H, W)`` keeps the resolution of the selected map.

    Args:
        dilations: Dilation of each ASPP branch.
        in_channels: Channels of the selected input (the sum of the selected maps for
            ``input_transform="resize_concat"``). Required.
        channels: Width of the branches and of the output. Required.
        out_dim: Stored only (heads set their own output width).
        align_corners: Passed to the bilinear upsampling.
        head_dropout_ratio: Dropout2d probability used by the heads before their last conv
            (``dropout`` is ``None`` when 0).
        input_transform: ``None`` (use ``inputs[in_index]``), ``"resize_concat"`` (resize the maps
            ``in_index`` (a list) to the first of them and concatenate) or ``"multiple_select"``.
        in_index: Index (or list of indices for the transforms) of the maps to use.
        **kwargs: Only ``conv_cfg``, ``norm_cfg`` and ``act_cfg``, stored for compatibility.

    Attributes:
        out_channels: ``channels``.
    """

    def __init__(
        self,
        dilations: list | tuple = (1, 6, 12, 18),
        in_channels: int | None = None,
        channels: int | None = None,
        out_dim: int = 3,
        align_corners: bool = False,
        head_dropout_ratio: float = 0.3,
        input_transform: str | None = None,
        in_index: int | list[int] = -1,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        unknown = sorted(set(kwargs) - set(_CFG_KWARGS))
        if unknown:
            raise TypeError(
                f"{name} got unexpected keyword arguments {unknown}; valid extras: {list(_CFG_KWARGS)}."
            )
        if in_channels is None or channels is None:
            raise ValueError(
                f"{name} needs in_channels (channels of the map it reads) and channels (width of the ASPP "
                f"branches); got in_channels={in_channels}, channels={channels}."
            )
        if input_transform not in _INPUT_TRANSFORMS:
            raise ValueError(
                f"{name}: input_transform must be one of {list(_INPUT_TRANSFORMS)}, got {input_transform!r}."
            )
        super().__init__()
        self.dilations = dilations
        self.in_channels = in_channels
        self.channels = channels
        self.out_dim = out_dim
        self.align_corners = align_corners
        self.input_transform = input_transform
        self.in_index = in_index
        self.conv_cfg = kwargs.get("conv_cfg", {"kernel_size": 3, "padding": 0, "bias": False})
        self.norm_cfg = kwargs.get("norm_cfg", {})
        self.act_cfg = kwargs.get("act_cfg", {})
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(in_channels, channels, 1))
        self.aspp_modules = ASPPModule(
            dilations,
            in_channels,
            channels,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, padding=1)
        self.dropout = nn.Dropout2d(head_dropout_ratio) if head_dropout_ratio > 0 else None
        self.out_channels: int = channels

    def _transform_inputs(self, inputs: list[Tensor]) -> Tensor | list[Tensor]:
        """Select (and for ``resize_concat`` merge) the maps this head reads."""
        if self.input_transform is None:
            return inputs[self.in_index]
        selected = [inputs[i] for i in self.in_index]
        if self.input_transform == "multiple_select":
            return selected
        size = selected[0].shape[2:]
        return torch.cat(
            [resize(x, size=size, mode="bilinear", align_corners=self.align_corners) for x in selected], dim=1
        )

    def _forward_feature(self, inputs: list[Tensor]) -> Tensor:
        """``(B, channels, H, W)`` ASPP features of the selected map."""
        x = self._transform_inputs(inputs)
        if not isinstance(x, Tensor):
            raise ValueError(
                f"{type(self).__name__}: input_transform='multiple_select' yields a list of maps, but ASPP "
                "needs one map; use input_transform='resize_concat' or None."
            )
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built with in_channels={self.in_channels} but the selected input "
                f"has shape {tuple(x.shape)}; set in_channels to the channels of features[in_index]."
            )
        pooled = resize(
            self.image_pool(x), size=x.shape[2:], mode="bilinear", align_corners=self.align_corners
        )
        return self.bottleneck(torch.cat([pooled, *self.aspp_modules(x)], dim=1))

    def forward(self, inputs: list[Tensor]) -> Tensor:
        """Return ``(B, channels, H, W)`` for the selected map ``(B, in_channels, H, W)``."""
        return self._forward_feature(inputs)


@TERRATORCH_DECODER_REGISTRY.register
class ASPPSegmentationHead(ASPPHead):
    """:class:`ASPPHead` followed by dropout and a 1x1 classifier (``conv_seg``).

    Output: logits ``(B, num_classes, H, W)`` at the selected map's resolution.

    Args:
        channel_list: The registry's channel list (not used for sizing; see the module docstring).
        dilations: Dilation of each ASPP branch.
        in_channels: Channels of the selected input. Required.
        channels: Width of the ASPP branches. Required.
        num_classes: Number of classes.
        align_corners: Passed to the bilinear upsampling.
        head_dropout_ratio: Dropout2d probability before the classifier (0 disables it; the
            reference fails at forward in that case).
        input_transform: See :class:`ASPPHead`.
        in_index: See :class:`ASPPHead`.
        **kwargs: See :class:`ASPPHead`.

    Attributes:
        out_channels: ``num_classes`` (added so the head can also be used where a decoder is
            expected).
    """

    def __init__(
        self,
        channel_list: list[int],
        dilations: list | tuple = (1, 6, 12, 18),
        in_channels: int | None = None,
        channels: int | None = None,
        num_classes: int = 2,
        align_corners: bool = False,
        head_dropout_ratio: float = 0.3,
        input_transform: str | None = None,
        in_index: int | list[int] = -1,
        **kwargs: Any,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"ASPPSegmentationHead: num_classes must be >= 1, got {num_classes}.")
        super().__init__(
            dilations=dilations,
            in_channels=in_channels,
            channels=channels,
            align_corners=align_corners,
            head_dropout_ratio=head_dropout_ratio,
            input_transform=input_transform,
            in_index=in_index,
            **kwargs,
        )
        self.num_classes = num_classes
        self.conv_seg = nn.Conv2d(self.channels, num_classes, kernel_size=1)
        self.out_channels = num_classes

    def segmentation_head(self, features: Tensor) -> Tensor:
        """Dropout (if any) and the 1x1 classifier."""
        if self.dropout is not None:
            features = self.dropout(features)
        return self.conv_seg(features)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        """Return logits ``(B, num_classes, H, W)``."""
        return self.segmentation_head(self._forward_feature(inputs))


@TERRATORCH_DECODER_REGISTRY.register
class ASPPRegressionHead(ASPPHead):
    """:class:`ASPPHead` followed by dropout and a 1x1 conv to ``out_channels`` (``conv_reg``).

    Args:
        channel_list: The registry's channel list (not used for sizing; see the module docstring).
        dilations: Dilation of each ASPP branch.
        in_channels: Channels of the selected input. Required.
        channels: Width of the ASPP branches. Required.
        out_channels: Output channels.
        align_corners: Passed to the bilinear upsampling.
        head_dropout_ratio: Dropout2d probability before the output conv (0 disables it; the
            reference fails at forward in that case).
        input_transform: See :class:`ASPPHead`.
        in_index: See :class:`ASPPHead`.
        **kwargs: See :class:`ASPPHead`.
    """

    def __init__(
        self,
        channel_list: list[int],
        dilations: list | tuple = (1, 6, 12, 18),
        in_channels: int | None = None,
        channels: int | None = None,
        out_channels: int = 1,
        align_corners: bool = False,
        head_dropout_ratio: float = 0.3,
        input_transform: str | None = None,
        in_index: int | list[int] = -1,
        **kwargs: Any,
    ) -> None:
        if out_channels < 1:
            raise ValueError(f"ASPPRegressionHead: out_channels must be >= 1, got {out_channels}.")
        super().__init__(
            dilations=dilations,
            in_channels=in_channels,
            channels=channels,
            out_dim=out_channels,
            align_corners=align_corners,
            head_dropout_ratio=head_dropout_ratio,
            input_transform=input_transform,
            in_index=in_index,
            **kwargs,
        )
        self.out_channels = out_channels
        self.conv_reg = nn.Conv2d(self.channels, out_channels, kernel_size=1)

    def regression_head(self, features: Tensor) -> Tensor:
        """Dropout (if any) and the 1x1 output conv."""
        if self.dropout is not None:
            features = self.dropout(features)
        return self.conv_reg(features)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        """Return ``(B, out_channels, H, W)``."""
        return self.regression_head(self._forward_feature(inputs))
