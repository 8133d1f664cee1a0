"""Source of the smallest backbone the encoder-decoder factory accepts, for custom-module test packages.

Tests that drive the CLI or the benchmark tool write it into a throw-away ``custom_modules`` folder,
so the config names a backbone that only exists once that folder is imported.
"""

from __future__ import annotations


def tiny_cnn_module(name: str, channels: tuple[int, int] = (8, 16)) -> str:
    """Python source registering ``name``: two strided 3x3 convolutions returning both feature maps."""
    first, second = channels
    return f'''
from torch import nn
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY


@TERRATORCH_BACKBONE_REGISTRY.register
class {name}(nn.Module):
    """Two strided convolutions: the smallest backbone the encoder-decoder factory accepts."""

    def __init__(self, in_chans=6):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, {first}, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d({first}, {second}, 3, stride=2, padding=1)
        self.out_channels = [{first}, {second}]

    def forward(self, x):
        a = self.conv1(x).relu()
        return [a, self.conv2(a).relu()]
'''
