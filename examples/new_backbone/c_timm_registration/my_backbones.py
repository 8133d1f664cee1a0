"""Example (c): a backbone registered with timm, imported through ``backbone_registration``.

Registering with timm (``@register_model`` + ``build_model_with_cfg``) gives the model everything
timm offers: ``timm.create_model("tiny_geo_cnn", features_only=True, in_chans=...)``, pretrained
configs, and so the TerraTorch ``BACKBONE_REGISTRY`` (whose second source is timm) finds it by name.
``feature_info`` names the module after which each feature map is taken; timm's feature wrapper
uses it to return those maps.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

__all__ = ["TinyGeoCNN", "tiny_geo_cnn"]


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, the first one with stride 2: ``(B, cin, H, W)`` → ``(B, cout, H/2, W/2)``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyGeoCNN(nn.Module):
    """A four-stage CNN classifier; stage ``i`` outputs ``widths[i]`` channels at stride ``2**(i+1)``.

    Args:
        in_chans: Input bands.
        num_classes: Classifier outputs (0: no classifier, the features are pooled only).
        widths: Channels per stage.
    """

    def __init__(
        self, in_chans: int = 3, num_classes: int = 0, widths: tuple[int, ...] = (16, 32, 64, 96)
    ) -> None:
        super().__init__()
        chans = [in_chans, *widths]
        self.stages = nn.Sequential(*[_block(chans[i], chans[i + 1]) for i in range(len(widths))])
        self.feature_info = [
            {"num_chs": w, "reduction": 2 ** (i + 1), "module": f"stages.{i}"} for i, w in enumerate(widths)
        ]
        self.num_classes = num_classes
        self.head = nn.Linear(widths[-1], num_classes) if num_classes else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → logits ``(B, num_classes)`` (or pooled features)."""
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(x), 1), 1))


# Pretrained configs by model name; register_model reads ``default_cfgs`` of this module. Users with
# weights would put ``file=`` (or ``hf_hub_id=``) here; there are none, so pretrained=True cannot load.
default_cfgs = generate_default_cfgs(
    {"tiny_geo_cnn": {"url": "", "num_classes": 0, "input_size": (3, 64, 64), "first_conv": "stages.0.0"}}
)


@register_model
def tiny_geo_cnn(pretrained: bool = False, **kwargs) -> TinyGeoCNN:
    """timm entry point: ``timm.create_model("tiny_geo_cnn", ...)``."""
    widths = kwargs.get("widths", (16, 32, 64, 96))
    return build_model_with_cfg(
        TinyGeoCNN,
        "tiny_geo_cnn",
        pretrained,
        feature_cfg={"flatten_sequential": True, "out_indices": tuple(range(len(widths)))},
        **kwargs,
    )
