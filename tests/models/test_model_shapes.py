"""Output shapes of assembled models over backbones x decoders x tasks, sizes and band counts.

Every backbone is built once per module (per band count) through ``BACKBONE_REGISTRY`` with the
same kwargs a config would pass, and handed to ``EncoderDecoderFactory`` as an instance; decoders
are kept narrow so the whole matrix stays fast on two CPU cores.

- segmentation: every backbone x every decoder, at an input size that is *not* a multiple of
  the patch size (padding + cropping) with 4 bands.
- regression / classification: every backbone with one decoder, plus a few other decoders.
- 13 bands and a size that *is* a multiple: every backbone, cycling through tasks and decoders.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from terratorch.models import EncoderDecoderFactory
from terratorch.registry import BACKBONE_REGISTRY

NUM_CLASSES = 3
VIT_NECKS = [
    {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
    {"name": "ReshapeTokensToImage"},
    {"name": "LearnedInterpolateToPyramidal"},
]

# name -> (registry name or "pyramid", backbone kwargs, necks, UNet kwargs for its pyramid)
BACKBONES: dict[str, tuple[str, dict[str, Any], list | None, dict[str, Any]]] = {
    "resnet18": ("resnet18", {}, None, {"channels": [32, 16, 16, 8, 8]}),
    "convnext_atto": ("convnext_atto", {}, None, {"channels": [32, 16, 8, 8]}),
    "vit_tiny": (
        "vit_tiny_patch16_224",
        {"img_size": 64, "dynamic_img_size": True, "out_indices": list(range(12))},
        VIT_NECKS,
        {"channels": [32, 16, 8, 8]},
    ),
    "swin_tiny": (
        "swin_tiny_patch4_window7_224",
        {"img_size": 64, "strict_img_size": False, "depths": (2, 2, 2, 2)},  # stage 3 shortened: speed
        None,
        {"channels": [32, 16, 8, 8]},
    ),
    "handwritten": ("pyramid", {}, None, {"channels": [16, 16, 8, 8]}),
}

DECODERS: dict[str, dict[str, Any]] = {
    "FCNDecoder": {"channels": 16, "num_convs": 1},
    "UperNetDecoder": {"channels": 16, "pool_scales": [1, 2]},
    "UNetDecoder": {},  # per-backbone kwargs above
    "IdentityDecoder": {},
    "smp_Unet": {"decoder_channels": [32, 16, 16, 8, 8]},
    "smp_FPN": {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32},
}

_CACHE: dict[tuple[str, int], torch.nn.Module] = {}


def _backbone(name: str, bands: int, classes: dict[str, type]) -> torch.nn.Module:
    key = (name, bands)
    if key not in _CACHE:
        registry_name, kwargs, _, _ = BACKBONES[name]
        torch.manual_seed(0)
        if registry_name == "pyramid":
            _CACHE[key] = classes["pyramid"](in_chans=bands)
        else:
            _CACHE[key] = BACKBONE_REGISTRY.build(registry_name, in_chans=bands, pretrained=False, **kwargs)
    return _CACHE[key]


def _model(task: str, name: str, decoder: str, bands: int, classes: dict[str, type]):
    _, _, necks, unet = BACKBONES[name]
    decoder_kwargs = dict(unet if decoder == "UNetDecoder" else DECODERS[decoder])
    if decoder == "smp_Unet":  # one decoder block per feature map
        decoder_kwargs["decoder_channels"] = unet["channels"][:-1]
    return EncoderDecoderFactory().build_model(
        task=task,
        backbone=_backbone(name, bands, classes),
        decoder=decoder,
        decoder_kwargs=decoder_kwargs,
        necks=necks,
        num_classes=NUM_CLASSES,
    )


def _expected(task: str, size: tuple[int, int]) -> tuple[int, ...]:
    if task == "segmentation":
        return (2, NUM_CLASSES, *size)
    if task == "regression":
        return (2, *size)
    return (2, NUM_CLASSES)


def _run(model, bands: int, size: tuple[int, int]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, bands, *size))
    assert out.output.isfinite().all()
    return out.output


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("name", list(BACKBONES))
def test_segmentation_every_decoder_non_multiple_size(name, decoder, backbone_classes):
    model = _model("segmentation", name, decoder, 4, backbone_classes)
    # the Swin's patch is 4, so (as in the reference) inputs are padded to multiples of 8 only; smp's
    # FPN adds its stride-32 level to the stride-16 one without resizing, so it needs exact sizes
    size = (64, 96) if (name, decoder) == ("swin_tiny", "smp_FPN") else (50, 45)
    assert _run(model, 4, size).shape == _expected("segmentation", size)


@pytest.mark.parametrize(
    ("name", "decoder"),
    [*[(n, "UperNetDecoder") for n in BACKBONES], ("resnet18", "smp_Unet"), ("vit_tiny", "smp_FPN")],
)
def test_regression(name, decoder, backbone_classes):
    model = _model("regression", name, decoder, 4, backbone_classes)
    assert _run(model, 4, (50, 45)).shape == _expected("regression", (50, 45))


@pytest.mark.parametrize(
    ("name", "decoder"),
    [
        *[(n, "IdentityDecoder") for n in BACKBONES],
        ("convnext_atto", "FCNDecoder"),
        ("swin_tiny", "UNetDecoder"),
    ],
)
def test_classification(name, decoder, backbone_classes):
    model = _model("classification", name, decoder, 4, backbone_classes)
    assert _run(model, 4, (50, 45)).shape == _expected("classification", (50, 45))


@pytest.mark.parametrize(
    ("name", "task", "decoder"),
    [
        ("resnet18", "segmentation", "UNetDecoder"),
        ("convnext_atto", "regression", "smp_Unet"),
        ("vit_tiny", "classification", "IdentityDecoder"),
        ("swin_tiny", "segmentation", "UperNetDecoder"),
        ("handwritten", "regression", "FCNDecoder"),
    ],
)
def test_thirteen_bands_multiple_size(name, task, decoder, backbone_classes):
    model = _model(task, name, decoder, 13, backbone_classes)
    assert _run(model, 13, (64, 64)).shape == _expected(task, (64, 64))


def test_vit_pyramid_pads_to_twice_the_patch(backbone_classes):
    """Inputs pad to twice the ViT patch, so LearnedInterpolateToPyramidal's max-pooled level is exact."""
    model = _model("segmentation", "vit_tiny", "smp_FPN", 4, backbone_classes)
    assert model.patch_size == (16, 16)  # timm's patch size; inputs are padded to twice it
    assert _run(model, 4, (48, 40)).shape == _expected("segmentation", (48, 40))
