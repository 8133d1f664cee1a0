"""Tiny hand-written backbones shared by the model-factory tests (no weights, no downloads)."""

from __future__ import annotations

import huggingface_hub
import pytest
import torch
from timm.models import FeatureInfo
from torch import Tensor, nn


class PyramidBackbone(nn.Module):
    """A 4-stage conv pyramid (strides 4, 8, 16, 32) that only exposes a timm ``FeatureInfo``.

    This is the "bring your own backbone" shape from the benchmarking docs: ``feature_info`` with
    ``num_chs`` per output and ``forward`` returning a list of ``(B, C_i, H/s_i, W/s_i)`` maps.
    """

    def __init__(self, in_chans: int = 4, channels: tuple[int, ...] = (8, 16, 24, 32)) -> None:
        super().__init__()
        stages, info, previous = [], [], in_chans
        for i, width in enumerate(channels):
            stride = 4 if i == 0 else 2
            stages.append(nn.Sequential(nn.Conv2d(previous, width, stride, stride=stride), nn.ReLU()))
            info.append({"num_chs": width, "reduction": 4 * 2**i, "module": f"stages.{i}"})
            previous = width
        self.stages = nn.ModuleList(stages)
        self.feature_info = FeatureInfo(info, out_indices=tuple(range(len(channels))))

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class TokenBackbone(nn.Module):
    """A ViT-like backbone returning ``depth`` token tensors ``(B, 1 + L, dim)`` (cls token first)."""

    def __init__(self, in_chans: int = 4, dim: int = 16, depth: int = 4, patch: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_chans, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.out_channels = [dim] * depth
        self.patch_size = patch

    def forward(self, x: Tensor) -> list[Tensor]:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        out = []
        for block in self.blocks:
            tokens = block(tokens)
            out.append(tokens)
        return out


@pytest.fixture
def pyramid_backbone() -> PyramidBackbone:
    """A fresh 4-band :class:`PyramidBackbone` (channels 8, 16, 24, 32)."""
    torch.manual_seed(0)
    return PyramidBackbone()


@pytest.fixture
def token_backbone() -> TokenBackbone:
    """A fresh 4-band :class:`TokenBackbone` (4 blocks of 16-dim tokens, patch 8)."""
    torch.manual_seed(0)
    return TokenBackbone()


@pytest.fixture
def backbone_classes() -> dict[str, type[nn.Module]]:
    """The backbone classes themselves, for tests that need non-default arguments."""
    return {"pyramid": PyramidBackbone, "tokens": TokenBackbone}


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the Hugging Face and torch hub caches at empty folders; returns the HF cache folder."""
    hf_cache = tmp_path / "hf"
    hf_cache.mkdir()
    original = huggingface_hub.try_to_load_from_cache

    def lookup(repo_id, filename, **kwargs):
        return original(repo_id, filename, cache_dir=hf_cache)

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lookup)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield hf_cache
    torch.hub.set_dir(previous)
