"""Wrapper giving timm ``features_only`` models the backbone interface of this toolkit."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TimmBackbone", "TimmBackboneWrapper", "build_timm_backbone"]


class TimmBackbone(nn.Module):
    """A timm feature extractor with ``out_channels`` and NCHW outputs.

    The timm model's child modules are adopted as this module's own children (the timm module itself
    is kept unregistered), so parameter keys read ``encoder.conv1.weight`` rather than
    ``encoder.model.conv1.weight``: the layout of the reference release's ``TimmBackboneWrapper``.

    Args:
        timm_module: A model created with ``timm.create_model(..., features_only=True)`` (the
            reference release's parameter name).

    Attributes:
        out_channels: Channels of each returned feature map (``feature_info.channels()``).
        feature_info: timm's ``FeatureInfo`` of the wrapped model.
    """

    def __init__(self, timm_module: nn.Module) -> None:
        super().__init__()
        model = timm_module
        self._modules.update(model._modules)
        object.__setattr__(self, "_timm", model)  # not a registered child: no duplicate state_dict keys
        self.feature_info = model.feature_info
        self._out_channels: list[int] = list(self.feature_info.channels())
        self.output_fmt = _output_format(model)
        if hasattr(model, "freeze"):
            self.freeze = model.freeze

    @property
    def timm_module(self) -> nn.Module:
        """The wrapped timm module (shares every submodule with this wrapper)."""
        return self._timm

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":  # this package's earlier attribute for the wrapped timm module
                return self.__dict__["_timm"]
            raise

    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned feature map."""
        return self._out_channels

    @property
    def input_multiple(self) -> int:
        """The ViT patch size or, for CNNs, the largest feature reduction."""
        return _input_multiple(self._timm, self.feature_info)

    def train(self, mode: bool = True) -> TimmBackbone:
        """Set train/eval mode here and on the wrapped timm module."""
        super().train(mode)
        self._timm.training = mode
        return self

    def forward(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """Return the list of feature maps, each ``(B, C_i, H_i, W_i)``."""
        features = self._timm(x)
        if isinstance(features, torch.Tensor):
            features = [features]
        if self.output_fmt == "NHWC":
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return list(features)


TimmBackboneWrapper = TimmBackbone
"""The reference release's name of :class:`TimmBackbone`."""


def build_timm_backbone(name: str, **kwargs: Any) -> TimmBackbone:
    """``timm.create_model(name, features_only=True, **kwargs)`` wrapped as a :class:`TimmBackbone`.

    What the ``timm`` source of ``BACKBONE_REGISTRY`` builds; our local-weights options (``bands``,
    ``pretrained_bands``, ``ckpt_path``, ...) are handled by
    :func:`terratorch.models.weights.create_timm_model`.
    """
    from terratorch.models.weights import create_timm_model

    return TimmBackbone(create_timm_model(name, features_only=True, **kwargs))


def _output_format(model: nn.Module) -> str:
    fmt = getattr(model, "output_fmt", None)
    if fmt is None:
        inner = getattr(model, "model", None)
        fmt = getattr(inner, "output_fmt", None)
    fmt = getattr(fmt, "value", fmt) if fmt is not None else "NCHW"
    return str(fmt).upper()


def _input_multiple(model: nn.Module, feature_info: Any) -> int:
    for holder in (model, getattr(model, "model", None)):
        patch_embed = getattr(holder, "patch_embed", None)
        size = getattr(patch_embed, "patch_size", None) if patch_embed is not None else None
        if size is not None:
            return int(size[0] if isinstance(size, (tuple, list)) else size)
    reductions = feature_info.reduction()
    return int(max(reductions)) if reductions else 1
