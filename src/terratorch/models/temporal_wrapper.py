"""Run a single-frame backbone over every time step of a multi-temporal input and pool the features."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["POOLINGS", "TemporalWrapper"]

POOLINGS = ("mean", "max", "diff", "concat", "keep")


class TemporalWrapper(nn.Module):
    """Apply ``encoder`` to each frame of a ``(B, C, T, H, W)`` input and combine the T results.

    All frames go through the encoder as one batch of ``B * T`` images. Each returned feature
    (``(B*T, C_i, H_i, W_i)`` maps or ``(B*T, L, D)`` tokens) is regrouped per sample and pooled
    over time:

    - ``mean`` / ``max``: reduce over T; channels unchanged.
    - ``diff``: ``frame 0 - frame 1``; needs exactly T = 2.
    - ``concat``: frames concatenated along the channel axis (dim 1), so channels become
      ``C_i * T``; ``n_timestamps`` must be given so ``out_channels`` is known before any data.
    - ``keep``: no pooling; maps become ``(B, C_i, T, H_i, W_i)`` (tokens ``(B, T, L, D)``) for
      necks or decoders that handle time themselves.

    Args:
        encoder: A backbone taking ``(B, C, H, W)`` and returning a list of features.
        pooling: One of ``mean``, ``max``, ``diff``, ``concat``, ``keep``.
        n_timestamps: Number of frames T; required for ``concat``, checked against the input when given.

    Attributes:
        out_channels: Channels of each pooled feature.
        patch_size: Copied from the encoder (if it has one) so inputs are padded the same way.
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean", n_timestamps: int | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(
                f"TemporalWrapper: unknown pooling {pooling!r}; valid values are {list(POOLINGS)}."
            )
        if pooling == "concat" and not n_timestamps:
            raise ValueError(
                "TemporalWrapper: pooling='concat' multiplies the channels by the number of frames, so "
                "n_timestamps (backbone_temporal_n_timestamps) must be given."
            )
        if pooling == "diff" and n_timestamps not in (None, 2):
            raise ValueError(
                f"TemporalWrapper: pooling='diff' needs exactly 2 frames, got n_timestamps={n_timestamps}."
            )
        from terratorch.models.backbone_adapter import accepted_kwargs, channel_list_of

        self.encoder = encoder
        self._encoder_kwargs = accepted_kwargs(encoder)
        self.pooling = pooling
        self.n_timestamps = n_timestamps
        factor = n_timestamps if pooling == "concat" else 1
        self.out_channels = [c * factor for c in channel_list_of(encoder)]
        patch_size = getattr(encoder, "patch_size", None)
        if patch_size is not None:
            self.patch_size = patch_size

    def forward(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """Encode ``x`` of shape ``(B, C, T, H, W)`` (a 4-D input counts as T = 1) and pool over T.

        Extra keyword arguments reach the encoder only if its ``forward`` accepts them.
        """
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ValueError(f"TemporalWrapper expects (B, C, T, H, W) input, got shape {tuple(x.shape)}.")
        batch, channels, frames, height, width = x.shape
        self._check_frames(frames)
        flat = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        if self._encoder_kwargs is not None:  # pass only the batch keys the encoder accepts
            kwargs = {k: v for k, v in kwargs.items() if k in self._encoder_kwargs}
        features = self.encoder(flat, **kwargs)
        if isinstance(features, Tensor):
            features = [features]
        if hasattr(self.encoder, "prepare_features_for_image_model"):
            features = self.encoder.prepare_features_for_image_model(features)
        return [self._pool(f.reshape(batch, frames, *f.shape[1:])) for f in features]

    def _check_frames(self, frames: int) -> None:
        if self.n_timestamps is not None and frames != self.n_timestamps:
            raise ValueError(
                f"TemporalWrapper was built for n_timestamps={self.n_timestamps} frames but the input has "
                f"T={frames} (dim 2 of (B, C, T, H, W))."
            )
        if self.pooling == "diff" and frames != 2:
            raise ValueError(
                f"TemporalWrapper pooling='diff' needs exactly 2 frames, the input has T={frames}."
            )

    def _pool(self, feature: Tensor) -> Tensor:
        """Pool ``(B, T, ...)`` over T according to ``self.pooling``."""
        if self.pooling == "mean":
            return feature.mean(dim=1)
        if self.pooling == "max":
            return feature.amax(dim=1)
        if self.pooling == "diff":
            return feature[:, 0] - feature[:, 1]
        if self.pooling == "concat":  # channels are dim 1 of maps, the last dim of tokens
            return torch.cat(feature.unbind(dim=1), dim=1 if feature.ndim == 5 else -1)
        # keep: maps go to (B, C, T, H, W); tokens stay (B, T, L, D)
        return feature.transpose(1, 2) if feature.ndim == 5 else feature
