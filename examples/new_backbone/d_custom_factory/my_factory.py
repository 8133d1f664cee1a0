"""Example (d): a custom model factory registered in ``MODEL_FACTORY_REGISTRY``.

The factory decides how the whole model is built; the benchmark config names it in
``model_factory`` and its ``build_model`` arguments come from ``model_args`` (or from the search
space: ``width`` below is tuned by the example config, which the tool routes to ``model_args``
because it is a ``build_model`` parameter). This one builds a small UNet trained from scratch,
the kind of supervised baseline a foundation-model benchmark is compared with.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from terratorch.models.model import Model, ModelOutput, register_factory

__all__ = ["TinyUNet", "TinyUNetFactory"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyUNet(Model):
    """Two-level UNet: ``(B, C, H, W)`` → ``ModelOutput((B, num_classes, H, W))`` (H, W even)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.encoder = nn.ModuleList([_double_conv(in_channels, width), _double_conv(width, 2 * width)])
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.decoder = _double_conv(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor, **kwargs) -> ModelOutput:
        skip = self.encoder[0](x)
        deep = self.encoder[1](nn.functional.max_pool2d(skip, 2))
        features = self.decoder(torch.cat([skip, self.up(deep)], dim=1))
        return ModelOutput(output=self.head(features))

    def freeze_encoder(self) -> None:
        self.encoder.requires_grad_(False)

    def freeze_decoder(self) -> None:
        self.decoder.requires_grad_(False)
        self.up.requires_grad_(False)


@register_factory
class TinyUNetFactory:
    """Builds :class:`TinyUNet` for segmentation; ``width`` sets the channels of the first level."""

    def build_model(self, task: str, in_channels: int, num_classes: int, width: int = 16, **kwargs) -> Model:
        """Return a TinyUNet (only ``task="segmentation"`` is supported)."""
        if task != "segmentation":
            raise ValueError(f"TinyUNetFactory builds segmentation models only, got task={task!r}")
        if kwargs:
            raise ValueError(f"TinyUNetFactory got unused arguments {sorted(kwargs)}")
        return TinyUNet(in_channels=in_channels, num_classes=num_classes, width=width)
