"""Run a single-frame backbone over every time step of a multi-temporal input and pool the features."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["POOLINGS", "TemporalWrapper"]

POOLINGS = ("mean", "max", "diff", "keep", "concat")


class TemporalWrapper(nn.Module):
    """Apply ``encoder`` to each frame of a ``(B, C, T, H, W)`` input and combine the T results.

    All frames go through the encoder as one batch of ``B * T`` images. Each returned feature
    (``(B*T, C_i, H_i, W_i)`` maps or ``(B*T, L, D)`` tokens) is regrouped per sample and pooled
    over time:

    - ``mean`` / ``max``: reduce over T; channels unchanged.
    - ``diff``: ``frame 0 - frame 1``; needs exactly 2 frames (or 2 subsets).
    - ``concat``: frames stacked along the channel axis (channel ``t * C + c``), so channels become
      ``C_i * T``; ``n_timestamps`` is needed to know ``out_channels`` before any data.
    - ``keep``: no pooling; maps become ``(B, T, C_i, H_i, W_i)``, tokens ``(B, T, L, D)``.

    Token features are recognised by being 3-D (the reference release looks for a trailing size-1
    dimension instead, which also mangles ``1 x 1`` feature maps).

    With ``subset_lengths`` the frames are first split into consecutive groups of those lengths and
    averaged within each group; the pooling then runs over the group means.

    Multimodal encoders (TerraMind) take dict inputs ``{modality: (B, C_m, T, H, W)}``: every modality
    is flattened the same way, a static ``(B, C_m, H, W)`` modality (``DEM``) is repeated per frame, and
    dict features (``merge_method="dict"``) are pooled per key.

    Args:
        encoder: A backbone taking ``(B, C, H, W)`` and returning a list of features.
        pooling: One of ``mean``, ``max``, ``diff``, ``keep``, ``concat``.
        concat: Deprecated (use ``pooling="concat"``); accepted and ignored with a warning.
        n_timestamps: Number of frames T; sets ``out_channels`` for ``concat``.
        features_permute_op: Permutation applied to each feature before pooling (and undone after), for
            encoders whose features are neither ``(B, C, H, W)`` nor ``(B, L, C)``.
        subset_lengths: Lengths of consecutive frame groups averaged before pooling.

    Attributes:
        out_channels: Channels of each pooled feature (None for ``concat`` without ``n_timestamps``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        pooling: str = "mean",
        concat: bool | None = None,
        n_timestamps: int | None = None,
        features_permute_op: Sequence[int] | None = None,
        subset_lengths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if concat is not None:
            warnings.warn(
                "TemporalWrapper: 'concat' is deprecated; use pooling='concat'.",
                DeprecationWarning,
                stacklevel=2,
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"TemporalWrapper: Unsupported pooling {pooling!r}, choose from {list(POOLINGS)}."
            )
        if subset_lengths is not None:
            subset_lengths = [int(n) for n in subset_lengths]
            if pooling == "diff" and len(subset_lengths) != 2:
                raise ValueError(
                    "TemporalWrapper: pooling='diff' needs exactly two subsets, got "
                    f"subset_lengths={subset_lengths}."
                )
            if n_timestamps is not None and sum(subset_lengths) != n_timestamps:
                raise ValueError(
                    f"TemporalWrapper: subset_lengths {subset_lengths} sum to {sum(subset_lengths)}, but "
                    f"n_timestamps={n_timestamps}."
                )
        elif pooling == "diff" and n_timestamps not in (None, 2):
            raise ValueError(
                f"TemporalWrapper: pooling='diff' needs exactly 2 frames, got n_timestamps={n_timestamps}."
            )
        from terratorch.models.backbone_adapter import accepted_kwargs

        self.encoder = encoder
        self._encoder_kwargs = accepted_kwargs(encoder)
        self.pooling = pooling
        self.n_timestamps = n_timestamps
        self.subset_lengths = subset_lengths
        self.features_permute_op = list(features_permute_op) if features_permute_op is not None else None
        if self.features_permute_op is not None:
            reverse = [0] * len(self.features_permute_op)
            for position, dim in enumerate(self.features_permute_op):
                reverse[dim] = position
            self.reverse_permute_op: list[int] | None = reverse
        else:
            self.reverse_permute_op = None
        from terratorch.models.backbone_adapter import channel_list_of

        try:
            channels: list[int] | None = channel_list_of(encoder)
        except TypeError:
            channels = None  # like the reference: no out_channels when the encoder does not tell
        if channels is not None:
            if pooling == "concat":
                if n_timestamps is None:
                    warnings.warn(
                        "TemporalWrapper: out_channels of pooling='concat' are unknown without n_timestamps "
                        "(backbone_temporal_n_timestamps); encoder-decoder models need it.",
                        UserWarning,
                        stacklevel=2,
                    )
                    self.out_channels = None
                else:
                    self.out_channels = [c * n_timestamps for c in channels]
            else:
                self.out_channels = channels
        patch_size = getattr(encoder, "patch_size", None)
        if patch_size is not None:
            self.patch_size = patch_size

    def forward(self, x: Tensor | dict[str, Tensor], **kwargs: Any) -> list[Any]:
        """Encode ``x`` of shape ``(B, C, T, H, W)`` (or a dict of such tensors) and pool over T.

        In a dict, a 4-D ``(B, C, H, W)`` entry is a static modality (e.g. ``DEM``) and is repeated
        for every frame; all 5-D entries must share ``B`` and ``T``. Extra keyword arguments reach the
        encoder only if its ``forward`` accepts them.
        """
        if isinstance(x, dict):
            batch, frames = _dict_batch_and_frames(x)
            flat: Any = {k: _frames_into_batch(v, frames) for k, v in x.items()}
        else:
            if x.ndim != 5:
                raise ValueError(
                    f"Expected input shape [B, C, T, H, W], got {tuple(x.shape)}; a single frame needs a "
                    "time axis too (x.unsqueeze(2))."
                )
            batch, frames = x.shape[0], x.shape[2]
            flat = _frames_into_batch(x, frames)
        if self.pooling == "concat" and self.n_timestamps is not None and frames != self.n_timestamps:
            raise ValueError(
                f"TemporalWrapper was built for n_timestamps={self.n_timestamps} frames "
                "(pooling='concat') but "
                f"the input has T={frames} (dim 2 of (B, C, T, H, W))."
            )
        if self._encoder_kwargs is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._encoder_kwargs}
        features = self.encoder(flat, **kwargs)
        features = list(features) if isinstance(features, (list, tuple)) else [features]
        out: list[Any] = []
        for feature in features:
            if isinstance(feature, dict):
                out.append({k: self._process(v, batch, frames) for k, v in feature.items()})
            else:
                out.append(self._process(feature, batch, frames))
        return out

    def _process(self, feature: Tensor, batch: int, frames: int) -> Tensor:
        feature = self.permute_op(feature, self.features_permute_op)
        is_tokens = feature.dim() == 3
        stacked = self.reshape_5d(feature, batch, frames)
        pooled = self.pool_temporal(stacked, self.pooling, self.subset_lengths)
        pooled = self.permute_op(pooled, self.reverse_permute_op)
        if is_tokens:  # tokens carry a helper trailing dim: back to (..., L, C)
            pooled = pooled.squeeze(-1).movedim(-1, -2)
        return pooled

    def reshape_5d(self, tensor: Tensor, B: int, T: int) -> Tensor:
        """Regroup a ``(B*T, ...)`` feature per sample: maps to ``(B, T, C, H, W)``, tokens ``(B*T, L, C)``
        to ``(B, T, C, L, 1)`` (channels second, a helper trailing dim, so every pooling treats both alike).
        """
        return _to_time_major(tensor, B, T)

    def permute_op(self, tensor: Tensor, permute_op: Sequence[int] | None) -> Tensor:
        """Permute ``tensor`` by ``permute_op`` (``None``: unchanged); the order must name every dim."""
        return _permute(tensor, None if permute_op is None else list(permute_op))

    def vit_postprocess(self, tensor: Tensor) -> Tensor:
        """Undo the token layout of :meth:`reshape_5d` after pooling: ``(..., C, L, 1) -> (..., L, C)``.

        A tensor without a trailing size-1 dim is returned unchanged. :meth:`forward` itself decides by
        the encoder's output rank instead, so ``1 x 1`` feature maps are not mistaken for tokens (the
        reference release applied this to any pooled feature ending in a size-1 dim).
        """
        if tensor.shape[-1] != 1:
            return tensor
        return tensor.squeeze(-1).movedim(-1, -2)

    def pool_temporal(self, stacked: Tensor, pooling: str, subset_lengths: Sequence[int] | None) -> Tensor:
        """Pool ``(B, T, C, ...)`` over T (after averaging ``subset_lengths`` groups, if given)."""
        frames = stacked.shape[1]
        if subset_lengths is not None:
            if sum(subset_lengths) != frames:
                raise ValueError(
                    f"TemporalWrapper: the sum of subset_lengths {list(subset_lengths)} "
                    f"({sum(subset_lengths)}) must equal timesteps ({frames}) of the input."
                )
            stacked = torch.stack(
                [part.mean(dim=1) for part in torch.split(stacked, list(subset_lengths), 1)], 1
            )
        if pooling == "concat":
            return stacked.flatten(1, 2)
        if pooling == "max":
            return stacked.max(dim=1).values
        if pooling == "diff":
            if stacked.shape[1] != 2:
                raise ValueError(
                    "TemporalWrapper pooling='diff' needs exactly 2 frames (or 2 subsets via "
                    "subset_lengths), "
                    f"got T={stacked.shape[1]}."
                )
            return stacked[:, 0] - stacked[:, 1]
        if pooling == "mean":
            return stacked.mean(dim=1)
        return stacked


def _permute(tensor: Tensor, order: list[int] | None) -> Tensor:
    if order is None:
        return tensor
    if len(order) != tensor.dim():
        raise ValueError(
            f"TemporalWrapper: features_permute_op {order} has {len(order)} dims but the feature has "
            f"{tensor.dim()} {tuple(tensor.shape)}."
        )
    return tensor.permute(*order)


def _to_time_major(feature: Tensor, batch: int, frames: int) -> Tensor:
    """``(B*T, C, H, W) -> (B, T, C, H, W)``; tokens ``(B*T, L, C) -> (B, T, C, L, 1)``."""
    if feature.dim() == 4:
        return feature.reshape(batch, frames, *feature.shape[1:])
    if feature.dim() == 3:
        return feature.reshape(batch, frames, *feature.shape[1:]).permute(0, 1, 3, 2).unsqueeze(-1)
    raise ValueError(
        f"TemporalWrapper: encoder features must be 3-D tokens or 4-D maps, got shape {tuple(feature.shape)}."
    )


def _dict_batch_and_frames(x: dict[str, Tensor]) -> tuple[int, int]:
    """``(B, T)`` shared by the 5-D entries of a modality dict; raise naming the modalities otherwise."""
    if not x:
        raise ValueError("TemporalWrapper got an empty input dict; give {modality: (B, C, T, H, W)}.")
    shapes = {k: tuple(v.shape) for k, v in x.items()}
    bad = {k: s for k, s in shapes.items() if len(s) not in (4, 5)}
    if bad:
        raise ValueError(
            f"TemporalWrapper: modalities {sorted(bad)} have shapes {bad}; each entry must be "
            "(B, C, T, H, W) (or (B, C, H, W) for a static modality)."
        )
    temporal = {k: s for k, s in shapes.items() if len(s) == 5}
    if not temporal:
        raise ValueError(
            f"TemporalWrapper: no modality has a time axis (shapes {shapes}); expected (B, C, T, H, W) "
            "for at least one of them."
        )
    frames = {s[2] for s in temporal.values()}
    batches = {s[0] for s in shapes.values()}
    if len(frames) > 1 or len(batches) > 1:
        raise ValueError(
            "TemporalWrapper: all modalities must share the batch size B and the number of frames T "
            f"(dims 0 and 2 of (B, C, T, H, W)); got {shapes}."
        )
    return batches.pop(), frames.pop()


def _frames_into_batch(tensor: Tensor, frames: int) -> Tensor:
    """``(B, C, T, H, W) -> (B*T, C, H, W)`` frame-major per sample; a static ``(B, C, H, W)`` is repeated."""
    if tensor.dim() == 4:
        return tensor.repeat_interleave(frames, dim=0)
    return tensor.transpose(1, 2).reshape(-1, tensor.shape[1], *tensor.shape[3:])
