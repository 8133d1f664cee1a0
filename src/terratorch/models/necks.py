"""Necks: small adapters between a backbone's feature list and a decoder.

A neck maps ``list[Tensor] -> list[Tensor]`` and can tell, without data, which channel list it
produces (:meth:`Neck.process_channel_list`), so necks can be chained from a config and the decoder
built for the final channel list::

    necks = [
        {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
        {"name": "ReshapeTokensToImage"},
        {"name": "LearnedInterpolateToPyramidal"},
    ]
    neck_modules, channel_list = build_neck_list(necks, backbone.out_channels)

Every neck is registered by class name in ``TERRATORCH_NECK_REGISTRY``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.registry import NECK_REGISTRY, TERRATORCH_NECK_REGISTRY
from terratorch.registry.registry import close_matches

__all__ = [
    "AddBottleneckLayer",
    "AggregateTokens",
    "InterpolateToPyramidal",
    "LearnedInterpolateToPyramidal",
    "MaxpoolToPyramidal",
    "Neck",
    "PermuteDims",
    "ReshapeTokensToImage",
    "SelectIndices",
    "build_neck_list",
]

_INTERPOLATION_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


class Neck(nn.Module, ABC):
    """Base class of necks.

    Args:
        channel_list: Channels of each feature the neck receives (the backbone's ``out_channels``
            or the previous neck's output).

    Attributes:
        channel_list: The input channel list.
        out_channels: The output channel list (``process_channel_list(channel_list)``).
    """

    def __init__(self, channel_list: Sequence[int]) -> None:
        super().__init__()
        if isinstance(channel_list, (int, str)) or not all(isinstance(c, Integral) for c in channel_list):
            raise TypeError(
                f"{type(self).__name__}: channel_list must be a list of ints (channels of each feature "
                f"map), got {channel_list!r}."
            )
        self.channel_list = [int(c) for c in channel_list]

    @abstractmethod
    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Return the channel list this neck produces from ``channel_list`` (no data needed)."""

    @abstractmethod
    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Transform the list of features."""

    @property
    def out_channels(self) -> list[int]:
        """The channel list after this neck."""
        return self.process_channel_list(list(self.channel_list))

    def _check_count(self, features: Sequence[Tensor], needed: int | None = None) -> None:
        needed = len(self.channel_list) if needed is None else needed
        if not isinstance(features, (list, tuple)):
            raise TypeError(
                f"{type(self).__name__} expects a list of feature tensors, got {type(features).__name__}."
            )
        if len(features) != needed:
            raise ValueError(
                f"{type(self).__name__} received {len(features)} feature maps but needs {needed} (it was "
                f"built for channel_list={self.channel_list}). Build it with the channel list of the "
                "features it receives."
            )


def _check_mode(owner: str, mode: str) -> str:
    if mode not in _INTERPOLATION_MODES:
        hint = close_matches(mode, _INTERPOLATION_MODES, n=1)
        suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(
            f"{owner}: unknown interpolation mode {mode!r}; valid: {_INTERPOLATION_MODES}.{suggestion}"
        )
    return mode


def _align(mode: str) -> bool | None:
    return False if mode in ("bilinear", "bicubic") else None


@TERRATORCH_NECK_REGISTRY.register
class SelectIndices(Neck):
    """Keep only the features at ``indices`` (negative indices count from the end).

    Args:
        channel_list: Input channel list.
        indices: Which features to keep, in output order, e.g. ``[2, 5, 8, 11]`` or ``[-1]``.
    """

    def __init__(self, channel_list: Sequence[int], indices: Sequence[int]) -> None:
        super().__init__(channel_list)
        if isinstance(indices, int):
            indices = [indices]
        count = len(self.channel_list)
        bad = [i for i in indices if not isinstance(i, int) or not -count <= i < count]
        if bad or not indices:
            raise ValueError(
                f"SelectIndices: indices {list(indices)} are invalid for {count} feature maps; each index "
                f"must be an int in {-count}..{count - 1} and at least one is needed."
            )
        self.indices = [i % count for i in indices]

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Channels of the selected features."""
        return [channel_list[i] for i in self.indices]

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``[features[i] for i in indices]``."""
        self._check_count(features)
        return [features[i] for i in self.indices]


@TERRATORCH_NECK_REGISTRY.register
class PermuteDims(Neck):
    """Permute the dimensions of every feature, e.g. NHWC → NCHW with ``new_order=[0, 3, 1, 2]``.

    The channel list is unchanged: it describes the channel dimension wherever it sits.
    """

    def __init__(self, channel_list: Sequence[int], new_order: Sequence[int]) -> None:
        super().__init__(channel_list)
        if sorted(new_order) != list(range(len(new_order))):
            raise ValueError(
                f"PermuteDims: new_order {list(new_order)} is not a permutation of 0..{len(new_order) - 1}."
            )
        self.new_order = list(new_order)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Unchanged."""
        return list(channel_list)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return each feature permuted to ``new_order``."""
        self._check_count(features)
        for index, feature in enumerate(features):
            if feature.dim() != len(self.new_order):
                raise ValueError(
                    f"PermuteDims: feature {index} has {feature.dim()} dimensions {tuple(feature.shape)} but "
                    f"new_order={self.new_order} has {len(self.new_order)}."
                )
        return [feature.permute(*self.new_order) for feature in features]


@TERRATORCH_NECK_REGISTRY.register
class InterpolateToPyramidal(Neck):
    """Resize same-resolution maps (ViT layers) into a pyramid by fixed interpolation.

    Feature ``i`` of ``N`` is scaled by ``scale_factor ** (N - 2 - i)``: with 4 maps and the
    default factor 2 the scales are x4, x2, x1, x0.5, i.e. strides 4, 8, 16, 32 for a patch-16 ViT.

    Args:
        channel_list: Input channel list.
        scale_factor: Ratio between consecutive pyramid levels.
        mode: ``torch.nn.functional.interpolate`` mode.
    """

    def __init__(self, channel_list: Sequence[int], scale_factor: int = 2, mode: str = "nearest") -> None:
        super().__init__(channel_list)
        if scale_factor <= 0:
            raise ValueError(f"InterpolateToPyramidal: scale_factor must be positive, got {scale_factor}.")
        self.scale_factor = scale_factor
        self.mode = _check_mode("InterpolateToPyramidal", mode)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Unchanged."""
        return list(channel_list)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return maps ``(B, C_i, H * s_i, W * s_i)`` with ``s_i = scale_factor ** (N - 2 - i)``."""
        self._check_count(features)
        count = len(features)
        out = []
        for index, feature in enumerate(features):
            scale = float(self.scale_factor) ** (count - 2 - index)
            if scale == 1:
                out.append(feature)
                continue
            out.append(
                F.interpolate(feature, scale_factor=scale, mode=self.mode, align_corners=_align(self.mode))
            )
        return out


@TERRATORCH_NECK_REGISTRY.register
class MaxpoolToPyramidal(Neck):
    """Make a pyramid by max-pooling feature ``i`` with a ``kernel_size ** i`` window.

    The first map keeps its resolution, each next one is ``kernel_size`` times coarser (sizes are
    floored, as in ``max_pool2d``).
    """

    def __init__(self, channel_list: Sequence[int], kernel_size: int = 2) -> None:
        super().__init__(channel_list)
        if kernel_size < 1:
            raise ValueError(f"MaxpoolToPyramidal: kernel_size must be >= 1, got {kernel_size}.")
        self.kernel_size = kernel_size

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Unchanged."""
        return list(channel_list)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``[max_pool2d(f_i, kernel_size ** i)]``."""
        self._check_count(features)
        out = [features[0]]
        for index, feature in enumerate(features[1:], start=1):
            window = self.kernel_size**index
            out.append(F.max_pool2d(feature, kernel_size=window, stride=window))
        return out


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"ReshapeTokensToImage: {name} must be an int or (height, width), got {value!r}.")
    return values  # type: ignore[return-value]


@TERRATORCH_NECK_REGISTRY.register
class ReshapeTokensToImage(Neck):
    """Turn ViT token sequences ``(B, L, E)`` into image-like maps ``(B, E * T, H, W)``.

    Tokens are read in ``(t, h, w)`` order (time slowest), after dropping a leading cls token when
    ``remove_cls_token`` is set. The output channel index is ``e * T + t``. Inputs that are
    already 4-D pass through unchanged.

    The grid ``(H, W)`` is taken from, in order: :attr:`grid_size` (a model that knows its
    input size may set it before each forward), ``h``/``w`` (one of them is enough),
    ``image_size // patch_size``, or, failing those, a square grid ``sqrt(L / T)``. Non-square
    images therefore need ``h``/``w``, ``image_size`` + ``patch_size`` or ``grid_size``.

    Args:
        channel_list: Embedding size ``E`` of each token sequence.
        remove_cls_token: Drop the first token of each sequence (set False for backbones without one).
        effective_time_dim: Number of time steps ``T`` folded into the token sequence.
        h: Token-grid height.
        w: Token-grid width.
        image_size: Input image size (int or ``(H, W)``), used with ``patch_size`` to derive the grid.
        patch_size: Patch size (int or ``(H, W)``) of the backbone.
    """

    def __init__(
        self,
        channel_list: Sequence[int],
        remove_cls_token: bool = True,
        effective_time_dim: int = 1,
        h: int | None = None,
        w: int | None = None,
        image_size: int | Sequence[int] | None = None,
        patch_size: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__(channel_list)
        if effective_time_dim < 1:
            raise ValueError(
                f"ReshapeTokensToImage: effective_time_dim must be >= 1, got {effective_time_dim}."
            )
        if (image_size is None) != (patch_size is None):
            raise ValueError(
                "ReshapeTokensToImage: image_size and patch_size must be given together (grid = "
                f"image_size // patch_size); got image_size={image_size!r}, patch_size={patch_size!r}."
            )
        self.remove_cls_token = remove_cls_token
        self.effective_time_dim = effective_time_dim
        self.h = h
        self.w = w
        if image_size is not None and patch_size is not None and h is None and w is None:
            image_h, image_w = _pair(image_size, "image_size")
            patch_h, patch_w = _pair(patch_size, "patch_size")
            self.h, self.w = image_h // patch_h, image_w // patch_w
        self.grid_size: tuple[int, int] | None = None

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Each embedding size times the time dimension."""
        return [channel * self.effective_time_dim for channel in channel_list]

    def _grid(self, spatial_tokens: int) -> tuple[int, int]:
        """The ``(H, W)`` grid for ``spatial_tokens = H * W`` tokens per time step."""
        if self.grid_size is not None:
            return tuple(self.grid_size)  # type: ignore[return-value]
        if self.h is not None and self.w is not None:
            return self.h, self.w
        if self.h is not None or self.w is not None:
            known = self.h if self.h is not None else self.w
            if known <= 0 or spatial_tokens % known:
                raise ValueError(
                    f"ReshapeTokensToImage: {spatial_tokens} tokens per time step are not divisible by the "
                    f"given grid side {known}."
                )
            other = spatial_tokens // known
            return (known, other) if self.h is not None else (other, known)
        side = math.isqrt(spatial_tokens)
        if side * side != spatial_tokens:
            raise ValueError(
                f"ReshapeTokensToImage: {spatial_tokens} tokens per time step do not form a square grid. "
                "For non-square images pass h and w, or image_size and patch_size."
                + self._cls_hint(spatial_tokens)
            )
        return side, side

    def _cls_hint(self, spatial_tokens: int) -> str:
        steps = self.effective_time_dim
        kept = spatial_tokens * steps + 1  # the sequence length with the first token kept
        per_step = kept // steps
        if self.remove_cls_token and kept % steps == 0 and math.isqrt(per_step) ** 2 == per_step:
            return (
                f" Keeping the first token gives {per_step} tokens per time step (a square grid): if the "
                "backbone has no cls token, set remove_cls_token=False."
            )
        return ""

    def _reshape(self, index: int, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(
                f"ReshapeTokensToImage: feature {index} has shape {tuple(tokens.shape)}; expected tokens "
                "(B, L, E) or a 4-D map (B, C, H, W)."
            )
        embed = self.channel_list[index]
        if tokens.shape[-1] != embed:
            raise ValueError(
                f"ReshapeTokensToImage: feature {index} has embedding size {tokens.shape[-1]} but "
                f"channel_list[{index}] is {embed}."
            )
        if self.remove_cls_token:
            tokens = tokens[:, 1:]
        batch, length, _ = tokens.shape
        steps = self.effective_time_dim
        if length % steps:
            raise ValueError(
                f"ReshapeTokensToImage: {length} tokens (cls removed: {self.remove_cls_token}) cannot be "
                f"split into effective_time_dim={steps} equal time steps."
            )
        height, width = self._grid(length // steps)
        if height * width * steps != length:
            raise ValueError(
                f"ReshapeTokensToImage: {length} tokens (cls removed: {self.remove_cls_token}) do not match "
                f"the grid {height}x{width} x {steps} time steps = {height * width * steps}. Check h/w, "
                "image_size/patch_size or grid_size against the input size."
            )
        grid = tokens.reshape(batch, steps, height, width, embed)
        return grid.permute(0, 4, 1, 2, 3).reshape(batch, embed * steps, height, width)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return each token sequence as a ``(B, E * T, H, W)`` map (4-D inputs unchanged)."""
        self._check_count(features)
        return [f if f.dim() == 4 else self._reshape(i, f) for i, f in enumerate(features)]


def _conv_norm_act(in_channels: int, out_channels: int, transpose: bool) -> nn.Sequential:
    if transpose:
        conv: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.GELU())


@TERRATORCH_NECK_REGISTRY.register
class LearnedInterpolateToPyramidal(Neck):
    """Learned 4-level pyramid from 4 same-resolution maps (e.g. ViT layers at stride 16).

    Map 0 is upsampled x4 by two transposed convolutions (channels ``C -> C/2 -> C/4``), map 1
    x2 by one (``C -> C/2``), map 2 is kept, map 3 is downsampled x2 by a stride-2 convolution.
    For a stride-16 backbone this gives strides 4, 8, 16, 32 with channels
    ``[C0/4, C1/2, C2, C3]``.
    """

    def __init__(self, channel_list: Sequence[int]) -> None:
        super().__init__(channel_list)
        if len(self.channel_list) != 4:
            raise ValueError(
                f"LearnedInterpolateToPyramidal needs exactly 4 feature maps but channel_list has "
                f"{len(self.channel_list)} ({self.channel_list}); select 4 first, e.g. with "
                "{'name': 'SelectIndices', 'indices': [...4 layers...]}."
            )
        c0, c1, _, c3 = self.channel_list  # level 2 is used as is
        self.out_list = self.process_channel_list(self.channel_list)
        self.up4 = nn.Sequential(
            _conv_norm_act(c0, max(1, c0 // 2), transpose=True),
            nn.ConvTranspose2d(max(1, c0 // 2), self.out_list[0], kernel_size=2, stride=2),
        )
        self.up2 = nn.ConvTranspose2d(c1, self.out_list[1], kernel_size=2, stride=2)
        self.down2 = nn.Conv2d(c3, self.out_list[3], kernel_size=3, stride=2, padding=1)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """``[C0 // 4, C1 // 2, C2, C3]`` (at least 1 channel each)."""
        if len(channel_list) != 4:
            raise ValueError(
                "LearnedInterpolateToPyramidal needs exactly 4 channels, got "
                f"{len(channel_list)} ({channel_list})."
            )
        return [max(1, channel_list[0] // 4), max(1, channel_list[1] // 2), channel_list[2], channel_list[3]]

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return the 4 maps at scales x4, x2, x1, x0.5."""
        self._check_count(features, needed=4)
        return [self.up4(features[0]), self.up2(features[1]), features[2], self.down2(features[3])]


@TERRATORCH_NECK_REGISTRY.register
class AddBottleneckLayer(Neck):
    """Append one coarser level: a stride-2 3x3 conv + BatchNorm + ReLU on the last map.

    Args:
        channel_list: Input channel list.
        channels: Channels of the new level (default: those of the last map).
    """

    def __init__(self, channel_list: Sequence[int], channels: int | None = None) -> None:
        super().__init__(channel_list)
        last = self.channel_list[-1]
        self.channels = channels or last
        self.bottleneck = nn.Sequential(
            nn.Conv2d(last, self.channels, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(self.channels),
            nn.ReLU(inplace=True),
        )

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """The input list plus the new level's channels."""
        return [*channel_list, self.channels]

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``features + [bottleneck(features[-1])]`` (the new map has half the resolution)."""
        self._check_count(features)
        return [*features, self.bottleneck(features[-1])]


@TERRATORCH_NECK_REGISTRY.register
class AggregateTokens(Neck):
    """Pool every feature into one vector per sample, ``(B, C)``, e.g. for classification.

    Token sequences ``(B, L, E)`` are pooled over ``L``; maps ``(B, C, H, W)`` over ``H, W``;
    ``(B, C)`` vectors pass through.

    Args:
        channel_list: Input channel list (unchanged by this neck).
        pooling: ``"mean"``, ``"max"`` or ``"cls"`` (take the first token; sequences only).
        remove_cls_token: Drop the first token of sequences before mean/max pooling.
    """

    _POOLINGS = ("mean", "max", "cls")

    def __init__(
        self, channel_list: Sequence[int], pooling: str = "mean", remove_cls_token: bool = False
    ) -> None:
        super().__init__(channel_list)
        if pooling not in self._POOLINGS:
            raise ValueError(f"AggregateTokens: pooling must be one of {self._POOLINGS}, got {pooling!r}.")
        self.pooling = pooling
        self.remove_cls_token = remove_cls_token

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Unchanged."""
        return list(channel_list)

    def _pool(self, index: int, feature: Tensor) -> Tensor:
        if feature.dim() == 2:
            return feature
        if feature.dim() == 4:
            if self.pooling == "cls":
                raise ValueError(
                    f"AggregateTokens: pooling='cls' needs token sequences, feature {index} is 4-D."
                )
            tokens = feature.flatten(2).transpose(1, 2)
        elif feature.dim() == 3:
            if self.pooling == "cls":
                return feature[:, 0]
            tokens = feature[:, 1:] if self.remove_cls_token else feature
        else:
            raise ValueError(
                f"AggregateTokens: feature {index} has shape {tuple(feature.shape)}; expected (B, L, E), "
                "(B, C, H, W) or (B, C)."
            )
        return tokens.amax(dim=1) if self.pooling == "max" else tokens.mean(dim=1)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return one ``(B, C_i)`` tensor per feature."""
        self._check_count(features)
        return [self._pool(i, f) for i, f in enumerate(features)]


def build_neck_list(
    neck_configs: Sequence[dict[str, Any] | Neck] | None, channel_list: Sequence[int]
) -> tuple[list[Neck], list[int]]:
    """Build necks from configs and chain their channel lists.

    Args:
        neck_configs: Each ``{"name": <registered neck>, **kwargs}`` (looked up in ``NECK_REGISTRY``
            and built with the current channel list first) or an already built neck.
        channel_list: The backbone's ``out_channels``.

    Returns:
        The neck modules (in order) and the channel list after the last one.

    Raises:
        ValueError: A config has no ``"name"``.
        InvalidModelError: A name is not registered (the message lists close matches).
        TypeError: A neck rejected its keyword arguments (the message says which config).
    """
    channels = list(channel_list)
    necks: list[Neck] = []
    for position, config in enumerate(neck_configs or []):
        neck = config if isinstance(config, nn.Module) else _build_one(position, config, channels)
        if not hasattr(neck, "process_channel_list"):
            raise TypeError(
                f"Neck #{position} ({type(neck).__name__}) has no process_channel_list(channel_list) method; "
                "necks must subclass terratorch.models.necks.Neck."
            )
        channels = list(neck.process_channel_list(channels))
        necks.append(neck)
    return necks, channels


def _build_one(position: int, config: dict[str, Any], channels: list[int]) -> Neck:
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(
            f"Neck config #{position} must be a dict with a 'name' key, e.g. "
            f"{{'name': 'SelectIndices', 'indices': [-1]}}; got {config!r}."
        )
    kwargs = {key: value for key, value in config.items() if key != "name"}
    name = config["name"]
    try:
        return NECK_REGISTRY.build(name, channels, **kwargs)
    except TypeError as error:
        raise TypeError(f"Neck config #{position} ({name}) with kwargs {sorted(kwargs)}: {error}") from error
