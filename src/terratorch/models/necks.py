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

Every neck is registered by class name in ``TERRATORCH_NECK_REGISTRY``. Module attribute names and
numerics follow the reference release, so its checkpoints (``neck.<i>.*`` keys) load unchanged.
Models call necks with ``image_size=`` (the padded input's ``(H, W)``); :class:`NeckSequential`
passes it on to the necks that accept it.
"""

from __future__ import annotations

import inspect
import math
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.choices import did_you_mean
from terratorch.registry import NECK_REGISTRY, TERRATORCH_NECK_REGISTRY

__all__ = [
    "AddBottleneckLayer",
    "AggregateTokens",
    "FeaturePyramidNetworkNeck",
    "InterpolateToPyramidal",
    "LearnedInterpolateToPyramidal",
    "MaxpoolToPyramidal",
    "Neck",
    "NeckSequential",
    "PermuteDims",
    "ReshapeTokensToImage",
    "SelectIndices",
    "build_neck_list",
]

_INTERPOLATION_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


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
    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Transform the list of features."""

    @property
    def out_channels(self) -> list[int]:
        """The channel list after this neck."""
        return self.process_channel_list(list(self.channel_list))

    @property
    def input_multiple(self) -> int:
        """What the side of the incoming feature maps must be a multiple of for exact output sizes.

        The model pads its input so that the backbone's token grid is a multiple of this (and of 2,
        as the reference does); a neck that pools declares it here instead of the factory knowing
        neck classes. 1 for necks that keep or enlarge the resolution.
        """
        return 1

    def _check_list(self, features: Any) -> None:
        if not isinstance(features, (list, tuple)):
            raise TypeError(
                f"{type(self).__name__} expects a list of feature tensors, got {type(features).__name__}."
            )


def _accepts_kwargs(module: nn.Module) -> bool:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class NeckSequential(nn.Sequential):
    """Necks applied in order; keyword arguments (``image_size``) reach the necks whose forward takes them.

    Unlike the reference release (which retries a neck without kwargs on any ``TypeError`` and so can
    hide real errors), which necks get the kwargs is decided from their ``forward`` signature.
    """

    @property
    def input_multiple(self) -> int:
        """The least common multiple of the members' :attr:`Neck.input_multiple` (1 without any)."""
        return math.lcm(1, *(int(getattr(neck, "input_multiple", 1)) for neck in self))

    def forward(self, x: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run every neck on the feature list."""
        for layer in self:
            if kwargs and _accepts_kwargs(layer):
                x = layer(x, **kwargs)
            else:
                accepted = {}
                if kwargs:
                    try:
                        names = inspect.signature(layer.forward).parameters
                    except (TypeError, ValueError):
                        names = {}
                    accepted = {k: v for k, v in kwargs.items() if k in names}
                x = layer(x, **accepted)
        return x


def _check_mode(owner: str, mode: str) -> str:
    if mode not in _INTERPOLATION_MODES:
        raise ValueError(
            f"{owner}: unknown interpolation mode {mode!r}; valid: {_INTERPOLATION_MODES}."
            + did_you_mean(mode, _INTERPOLATION_MODES, n=1)
        )
    return mode


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
        self.indices = list(indices)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Channels of the selected features."""
        return [channel_list[i] for i in self.indices]

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return ``[features[i] for i in indices]``."""
        self._check_list(features)
        count = len(features)
        if any(not -count <= i < count for i in self.indices):
            raise ValueError(
                f"SelectIndices received {count} feature maps but selects indices {self.indices} "
                "(it was built "
                f"for channel_list={self.channel_list})."
            )
        return [features[i] for i in self.indices]


@TERRATORCH_NECK_REGISTRY.register
class PermuteDims(Neck):
    """Permute the dimensions of every feature, e.g. NHWC → NCHW with ``new_order=[0, 3, 1, 2]``.

    The channel list is unchanged.
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

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return each feature permuted to ``new_order`` (contiguous)."""
        self._check_list(features)
        for index, feature in enumerate(features):
            if feature.dim() != len(self.new_order):
                raise ValueError(
                    f"PermuteDims: feature {index} has {feature.dim()} dimensions {tuple(feature.shape)} but "
                    f"new_order={self.new_order} has {len(self.new_order)}."
                )
        return [feature.permute(*self.new_order).contiguous() for feature in features]


@TERRATORCH_NECK_REGISTRY.register
class InterpolateToPyramidal(Neck):
    """Resize same-resolution maps into a pyramid by fixed interpolation.

    Feature ``i`` of ``N`` is scaled by ``scale_factor ** (N - i)`` (as the reference release): with 4
    maps and the default factor 2 the scales are x16, x8, x4, x2.

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

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return maps ``(B, C_i, H * s_i, W * s_i)`` with ``s_i = scale_factor ** (N - i)``."""
        self._check_list(features)
        count = len(features)
        return [
            F.interpolate(feature, scale_factor=self.scale_factor ** (count - index), mode=self.mode)
            for index, feature in enumerate(features)
        ]


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

    @property
    def input_multiple(self) -> int:
        """``kernel_size ** (n - 1)``: the coarsest map is pooled by that window."""
        return self.kernel_size ** max(len(self.channel_list) - 1, 0)

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return ``[max_pool2d(f_i, kernel_size ** i)]`` (the first map copied)."""
        self._check_list(features)
        out = [features[0].clone()]
        for index, feature in enumerate(features[1:], start=1):
            out.append(F.max_pool2d(feature, kernel_size=self.kernel_size**index))
        return out


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"ReshapeTokensToImage: {name} must be an int or (height, width), got {value!r}.")
    return values  # type: ignore[return-value]


def _grid_from_image(image_size: Sequence[int], spatial_tokens: int) -> tuple[int, int] | None:
    """The ``(H, W)`` token grid of an image of ``image_size`` cut into ``spatial_tokens`` square patches."""
    height, width = (int(s) for s in tuple(image_size)[-2:])
    if spatial_tokens <= 0:
        return None
    patch = math.sqrt(height * width / spatial_tokens)
    rounded = round(patch)
    if rounded < 1 or abs(patch - rounded) > 1e-6 or height % rounded or width % rounded:
        return None
    return height // rounded, width // rounded


@TERRATORCH_NECK_REGISTRY.register
class ReshapeTokensToImage(Neck):
    """Turn ViT token sequences ``(B, L, E)`` into image-like maps ``(B, T * E, H, W)``.

    Tokens are read in ``(t, h, w)`` order (time slowest), after dropping a leading cls token when
    ``remove_cls_token`` is set; the output channel index is ``t * E + e``. Inputs that are already
    4-D pass through. The channel list is unchanged: backbones already report ``E * T`` per feature.

    The grid ``(H, W)`` comes from, in order: :attr:`grid_size` (if set), ``h``/``w`` (one is
    enough), a square grid, or the ``image_size`` the model passes at forward time (non-square
    images). When no grid fits and a cls token was assumed, a warning is issued and the first token
    is kept from then on (as the reference release does).

    Args:
        channel_list: Embedding size of each token sequence.
        remove_cls_token: Drop the first token of each sequence.
        effective_time_dim: Number of time steps ``T`` folded into the token sequence.
        h: Token-grid height.
        temporal_inputs: Inputs are ``(B, T, L, E)``; outputs are ``(B, T, C, H, W)``.
        w: Token-grid width (ours).
        image_size: Fixed input size (int or ``(H, W)``), used with ``patch_size`` (ours).
        patch_size: Patch size (int or ``(H, W)``) of the backbone (ours).
    """

    def __init__(
        self,
        channel_list: Sequence[int],
        remove_cls_token: bool = True,
        effective_time_dim: int = 1,
        h: int | None = None,
        temporal_inputs: bool = False,
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
        self.temporal_inputs = temporal_inputs
        self.h = h
        self.w = w
        if image_size is not None and patch_size is not None and h is None and w is None:
            image_h, image_w = _pair(image_size, "image_size")
            patch_h, patch_w = _pair(patch_size, "patch_size")
            self.h, self.w = image_h // patch_h, image_w // patch_w
        self.grid_size: tuple[int, int] | None = None

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """Unchanged."""
        return list(channel_list)

    def _grid(self, spatial_tokens: int, image_size: Sequence[int] | None) -> tuple[int, int] | None:
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
        if side * side == spatial_tokens:
            return side, side
        if image_size is not None:
            return _grid_from_image(image_size, spatial_tokens)
        return None

    def _reshape(self, index: int, tokens: Tensor, image_size: Sequence[int] | None) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(
                f"ReshapeTokensToImage: feature {index} has shape {tuple(tokens.shape)}; expected tokens "
                "(B, L, E) or a 4-D map (B, C, H, W)."
            )
        steps = self.effective_time_dim
        body = tokens[:, 1:] if self.remove_cls_token else tokens
        batch, length, embed = body.shape
        grid = self._grid(length // steps, image_size) if length % steps == 0 else None
        if grid is None or grid[0] * grid[1] * steps != length:
            if self.remove_cls_token and self.h is None and self.w is None and self.grid_size is None:
                warnings.warn(
                    f"ReshapeTokensToImage: {tokens.shape[1]} tokens do not form a grid after removing a cls "
                    "token; keeping the first token from now on. Set remove_cls_token=False for backbones "
                    "without a cls token.",
                    stacklevel=3,
                )
                self.remove_cls_token = False
                return self._reshape(index, tokens, image_size)
            raise ValueError(
                f"ReshapeTokensToImage: cannot lay {length} tokens (cls removed: "
                f"{self.remove_cls_token}) out "
                f"as {steps} time step(s) of a grid (image_size={image_size}, h={self.h}, w={self.w}). For "
                "non-square images pass h and w, or let the model pass image_size."
            )
        height, width = grid
        maps = body.reshape(batch, steps, height, width, embed)
        return maps.permute(0, 1, 4, 2, 3).reshape(batch, steps * embed, height, width)

    def forward(
        self, features: list[Tensor], image_size: Sequence[int] | None = None, **kwargs: Any
    ) -> list[Tensor]:
        """Return each token sequence as a ``(B, T * E, H, W)`` map (4-D inputs unchanged)."""
        self._check_list(features)
        out = []
        for index, feature in enumerate(features):
            steps = None
            if self.temporal_inputs:
                steps = feature.shape[1]
                feature = feature.flatten(0, 1)
            if feature.dim() >= 4:
                result = feature
            else:
                result = self._reshape(index, feature, image_size)
            if steps is not None:
                result = result.unflatten(0, (-1, steps))
            out.append(result)
        return out


@TERRATORCH_NECK_REGISTRY.register
class LearnedInterpolateToPyramidal(Neck):
    """Learned 4-level pyramid from 4 same-resolution maps (e.g. ViT layers at stride 16).

    ``fpn1`` upsamples map 0 x4 (two transposed convs, ``C -> C/2 -> C/4``, BatchNorm + GELU between),
    ``fpn2`` map 1 x2 (``C -> C/2``), ``fpn3`` keeps map 2, ``fpn4`` max-pools map 3 x2. Output
    channels are ``[C0/4, C1/2, C2, C3]``.
    """

    def __init__(self, channel_list: Sequence[int]) -> None:
        super().__init__(channel_list)
        if len(self.channel_list) != 4:
            raise ValueError(
                f"LearnedInterpolateToPyramidal needs exactly 4 feature maps but channel_list has "
                f"{len(self.channel_list)} ({self.channel_list}); select 4 first, e.g. with "
                "{'name': 'SelectIndices', 'indices': [...4 layers...]}."
            )
        c0, c1, c2, c3 = self.channel_list
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(c0, c0 // 2, 2, 2),
            nn.BatchNorm2d(c0 // 2),
            nn.GELU(),
            nn.ConvTranspose2d(c0 // 2, c0 // 4, 2, 2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c1, c1 // 2, 2, 2))
        self.fpn3 = nn.Sequential(nn.Identity())
        self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
        self.embedding_dim = [c0 // 4, c1 // 2, c2, c3]

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """``[C0 // 4, C1 // 2, C2, C3]``."""
        if len(channel_list) != 4:
            raise ValueError(
                "LearnedInterpolateToPyramidal needs exactly 4 channels, got "
                f"{len(channel_list)} ({channel_list})."
            )
        return [channel_list[0] // 4, channel_list[1] // 2, channel_list[2], channel_list[3]]

    @property
    def input_multiple(self) -> int:
        """2: the last map is max-pooled by 2."""
        return 2

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return the 4 maps at scales x4, x2, x1, x0.5."""
        self._check_list(features)
        if len(features) != 4:
            raise ValueError(
                f"LearnedInterpolateToPyramidal received {len(features)} feature maps but needs 4."
            )
        return [
            self.fpn1(features[0]),
            self.fpn2(features[1]),
            self.fpn3(features[2]),
            self.fpn4(features[3]),
        ]


@TERRATORCH_NECK_REGISTRY.register
class AddBottleneckLayer(Neck):
    """Append one more feature: a 1x1 conv halving the channels of the last map (same resolution)."""

    def __init__(self, channel_list: Sequence[int]) -> None:
        super().__init__(channel_list)
        last = self.channel_list[-1]
        self.bottleneck = nn.Conv2d(last, last // 2, kernel_size=1)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """The input list plus ``C_last // 2``."""
        return [*channel_list, channel_list[-1] // 2]

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return ``features + [bottleneck(features[-1])]`` (a new list; the input is not modified)."""
        self._check_list(features)
        return [*features, self.bottleneck(features[-1])]


@TERRATORCH_NECK_REGISTRY.register
class FeaturePyramidNetworkNeck(Neck):
    """torchvision's ``FeaturePyramidNetwork`` over the feature maps (``self.fpn``).

    Args:
        channel_list: Input channel list.
        out_channel: Channels of every output level.
        output_ordered_dict: Return an ``OrderedDict`` ``{"feat0": ..., ...}`` (the reference default);
            False returns a list, which is what decoders take.
    """

    def __init__(
        self, channel_list: Sequence[int], out_channel: int = 256, output_ordered_dict: bool = True
    ) -> None:
        super().__init__(channel_list)
        from torchvision.ops import FeaturePyramidNetwork

        self.out_channel = out_channel
        self.output_ordered_dict = output_ordered_dict
        self.fpn = FeaturePyramidNetwork(self.channel_list, out_channel)

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """``out_channel`` for every level."""
        return [self.out_channel] * len(channel_list)

    def forward(self, features: list[Tensor] | dict[str, Tensor], **kwargs: Any) -> Any:
        """Run the FPN; see ``output_ordered_dict`` for the output type."""
        if not isinstance(features, dict):
            features = OrderedDict((f"feat{i}", f) for i, f in enumerate(features))
        out = self.fpn(features)
        return out if self.output_ordered_dict else list(out.values())


@TERRATORCH_NECK_REGISTRY.register
class AggregateTokens(Neck):
    """Pool selected features into one vector per sample, ``(B, C)``, e.g. for classification.

    Token sequences ``(B, L, E)`` are pooled over ``L``; maps ``(B, C, H, W)`` over ``H, W`` (5-D
    ``(B, C, T, H, W)`` maps over ``H, W`` keeping ``T``).

    Args:
        channel_list: Input channel list.
        pooling: ``"mean"``, ``"max"``, ``"min"``, ``"cls"`` (first token) or an int token index.
        indices: Feature indices to aggregate (default: ``index``).
        index: Deprecated single index, default -1 (the last feature).
        drop_cls: Drop the first token before mean/max/min pooling.
        temporal_inputs: Inputs are ``(B, T, ...)``; the time dimension is kept.
        remove_cls_token: Ours, same as ``drop_cls``.
    """

    _POOLINGS = ("mean", "max", "min", "cls")

    def __init__(
        self,
        channel_list: Sequence[int],
        pooling: str | int = "mean",
        indices: int | list[int] | None = None,
        index: int | None = -1,
        drop_cls: bool = False,
        temporal_inputs: bool = False,
        remove_cls_token: bool = False,
    ) -> None:
        super().__init__(channel_list)
        selected = indices if indices is not None else index
        self.indices = [selected] if isinstance(selected, int) else list(selected or [-1])
        if isinstance(pooling, str):
            pooling = pooling.lower()
            if pooling not in self._POOLINGS:
                raise ValueError(
                    f"AggregateTokens: pooling must be one of {self._POOLINGS} or an int, got {pooling!r}."
                )
        self.pooling = pooling
        self.drop_cls = drop_cls or remove_cls_token
        self.temporal_inputs = temporal_inputs
        if self.drop_cls and self.pooling == "cls":
            raise ValueError("AggregateTokens: drop_cls=True cannot be combined with pooling='cls'.")
        self.latent_dim = [self.channel_list[i] for i in self.indices]

    def process_channel_list(self, channel_list: list[int]) -> list[int]:
        """The channels of the selected features."""
        return [channel_list[i] for i in self.indices]

    def _pool(self, feature: Tensor) -> Tensor:
        steps = None
        if self.temporal_inputs:
            steps = feature.shape[1]
            feature = feature.flatten(0, 1)
        if feature.dim() == 4:
            feature = feature.flatten(2).transpose(1, 2)
        elif feature.dim() == 5:
            feature = feature.flatten(3).permute(0, 3, 2, 1)
        if feature.dim() == 2:
            pooled = feature
        else:
            if self.drop_cls:
                feature = feature[..., 1:, :]
            if isinstance(self.pooling, int):
                pooled = feature[..., self.pooling, :]
            elif self.pooling == "cls":
                pooled = feature[..., 0, :]
            elif self.pooling == "mean":
                pooled = feature.mean(dim=1)
            elif self.pooling == "max":
                pooled = feature.max(dim=1).values
            else:
                pooled = feature.min(dim=1).values
        if steps is not None:
            pooled = pooled.unflatten(0, (-1, steps))
        return pooled

    def forward(self, features: list[Tensor], **kwargs: Any) -> list[Tensor]:
        """Return one pooled tensor per selected feature."""
        self._check_list(features)
        return [self._pool(features[i] if len(features) > 1 else features[0]) for i in self.indices]


def build_neck_list(
    ops: Sequence[dict[str, Any] | Neck] | None, channel_list: Sequence[int]
) -> tuple[list[Neck], list[int]]:
    """Build necks from configs and chain their channel lists.

    Args:
        ops: Neck configs, each ``{"name": <registered neck>, **kwargs}`` (looked up in ``NECK_REGISTRY``
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
    for position, config in enumerate(ops or []):
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
