"""A small convolutional backbone registered in TerraTorch's backbone registry.

Any module in this folder is imported by ``terratorch`` before the config is parsed when the config
sets ``custom_modules_path`` to the folder (or ``--custom_modules_path``, or the environment
variable ``TERRATORCH_CUSTOM_MODULE_PATH``). The ``@register`` decorator then makes
``backbone: small_cnn`` available to every model factory.
"""

from __future__ import annotations

from torch import Tensor, nn

from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY


class SmallCNN(nn.Module):
    """Three conv stages at strides 2, 4 and 8.

    Args:
        in_chans: Input bands.
        width: Channels of the first stage (doubled at each stage).

    Forward: ``(B, in_chans, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)`` maps, finest first;
    ``out_channels`` lists the ``C_i`` (what decoders are built from).
    """

    def __init__(self, in_chans: int = 6, width: int = 16) -> None:
        super().__init__()
        channels = [width, 2 * width, 4 * width]
        self.out_channels = channels
        inputs = [in_chans, *channels[:-1]]
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )
            for c_in, c_out in zip(inputs, channels)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


@TERRATORCH_BACKBONE_REGISTRY.register
def small_cnn(in_chans: int = 6, width: int = 16) -> SmallCNN:
    """The registered name: a constructor function (one per variant) named as configs will write it."""
    return SmallCNN(in_chans=in_chans, width=width)
