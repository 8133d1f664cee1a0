"""Decoders (terratorch.models.decoders): shapes, registry builds, gradients and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from terratorch.models import decoders
from terratorch.registry import DECODER_REGISTRY, TERRATORCH_DECODER_REGISTRY

CHANNELS = [4, 8, 16, 32]
IMAGE = 64  # the pyramid below is what a stride 4..32 backbone gives for a 64x64 input


def pyramid(channels=CHANNELS, finest=IMAGE // 4, batch=2):
    """Feature maps at strides 4, 8, 16, 32 of a ``IMAGE``-sized input, finest first."""
    torch.manual_seed(0)
    return [torch.randn(batch, c, finest // 2**i, finest // 2**i) for i, c in enumerate(channels)]


# name, kwargs, expected output shape for pyramid(), includes_head
CASES = [
    ("FCNDecoder", {"channels": 6, "num_convs": 2}, (2, 6, 8, 8), False),
    ("IdentityDecoder", {}, (2, 32, 2, 2), False),
    ("IdentityDecoder", {"out_index": 0}, (2, 4, 16, 16), False),
    ("UperNetDecoder", {"channels": 8}, (2, 8, 16, 16), False),
    ("UNetDecoder", {"channels": [16, 8, 8, 4]}, (2, 4, IMAGE, IMAGE), False),
    ("LinearDecoder", {"num_classes": 3, "upsampling_size": 32}, (2, 3, IMAGE, IMAGE), True),
    ("MLPDecoder", {"channels": 12, "out_dim": 5}, (2, 5, 2, 2), False),
    ("ASPPSegmentationHead", {"num_classes": 3, "channels": 8, "dilations": [1, 2]}, (2, 3, 2, 2), True),
    ("ASPPRegressionHead", {"channels": 8, "dilations": [1, 3, 6]}, (2, 1, 2, 2), True),
]


@pytest.mark.parametrize(("name", "kwargs", "shape", "includes_head"), CASES)
def test_decoder_shapes_through_registry(name, kwargs, shape, includes_head):
    decoder = DECODER_REGISTRY.build(name, CHANNELS, **kwargs)
    assert name in TERRATORCH_DECODER_REGISTRY
    out = decoder(pyramid())
    assert tuple(out.shape) == shape
    assert isinstance(decoder.out_channels, int)
    assert decoder.out_channels == shape[1]
    assert getattr(decoder, "includes_head", False) is includes_head


@pytest.mark.parametrize(("name", "kwargs", "shape", "includes_head"), CASES)
def test_gradients_reach_inputs_and_every_parameter(name, kwargs, shape, includes_head):
    decoder = DECODER_REGISTRY.build(name, CHANNELS, **kwargs)
    features = [f.requires_grad_() for f in pyramid()]
    decoder(features).square().mean().backward()
    assert any(f.grad is not None and f.grad.abs().sum() > 0 for f in features)
    missing = [n for n, p in decoder.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize(("name", "kwargs", "shape", "includes_head"), CASES)
def test_channel_mismatch_names_expected_and_received(name, kwargs, shape, includes_head):
    decoder = DECODER_REGISTRY.build(name, CHANNELS, **kwargs)
    wrong = pyramid([4, 8, 16, 64])
    with pytest.raises(
        ValueError, match=r"channels \[4, 8, 16, 32\] but received 4 with channels \[4, 8, 16, 64\]"
    ):
        decoder(wrong)
    with pytest.raises(ValueError, match=r"built for 4 feature maps .* received 3"):
        decoder(pyramid()[:3])


def test_token_inputs_get_a_hint_to_add_the_reshape_neck():
    decoder = DECODER_REGISTRY.build("UperNetDecoder", [16], channels=8)
    with pytest.raises(ValueError, match="add a ReshapeTokensToImage neck"):
        decoder([torch.randn(2, 17, 16)])


def test_unet_reaches_input_resolution_from_a_five_level_resnet_list():
    channels = [4, 8, 8, 16, 16]
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(channels)]  # strides 2..32
    decoder = DECODER_REGISTRY.build("UNetDecoder", channels, channels=[16, 8, 8, 4, 4], final_upsampling=2)
    assert decoder(features).shape == (2, 4, 64, 64)


def test_unet_handles_sizes_that_are_not_exact_halves():
    features = [torch.randn(2, 4, 13, 13), torch.randn(2, 8, 7, 7), torch.randn(2, 16, 4, 4)]
    decoder = DECODER_REGISTRY.build("UNetDecoder", [4, 8, 16], channels=[8, 8, 4], final_upsampling=1)
    assert decoder(features).shape == (2, 4, 13, 13)


def test_unet_rejects_bad_channels_and_upsampling():
    with pytest.raises(ValueError, match=r"embed_dim has 4 maps \[4, 8, 16, 32\] but channels has 3"):
        DECODER_REGISTRY.build("UNetDecoder", CHANNELS, channels=[16, 8, 4])
    with pytest.raises(ValueError, match="final_upsampling must be a power of two >= 1, got 3"):
        DECODER_REGISTRY.build("UNetDecoder", CHANNELS, channels=[8] * 4, final_upsampling=3)


def test_upernet_output_is_at_the_finest_level_and_scale_modules_builds_a_pyramid():
    decoder = DECODER_REGISTRY.build("UperNetDecoder", [8, 8, 8, 8], channels=8, scale_modules=True)
    same_resolution = [torch.randn(2, 8, 4, 4) for _ in range(4)]  # plain ViT layers at stride 16
    assert decoder(same_resolution).shape == (2, 8, 16, 16)


def test_index_arguments_are_validated_against_the_channel_list():
    with pytest.raises(ValueError, match=r"out_index=4 is out of range for 4 feature maps.*-4\.\.3"):
        DECODER_REGISTRY.build("IdentityDecoder", CHANNELS, out_index=4)
    with pytest.raises(ValueError, match="in_index=-5 is out of range"):
        DECODER_REGISTRY.build("FCNDecoder", CHANNELS, in_index=-5)


def test_mlp_decoder_on_vectors_and_bad_input():
    decoder = DECODER_REGISTRY.build("MLPDecoder", [16], channels=8, out_dim=3, activation="GELU")
    assert decoder([torch.randn(2, 16)]).shape == (2, 3)
    with pytest.raises(ValueError, match="expects \\(B, C, H, W\\) maps or \\(B, C\\) vectors"):
        decoder([torch.randn(2, 16, 5, 1, 1)])
    with pytest.raises(
        ValueError, match=r"activation 'Relu' is not a torch\.nn activation\. Did you mean: ReLU"
    ):
        DECODER_REGISTRY.build("MLPDecoder", [16], activation="Relu")


def test_bad_sizes_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        DECODER_REGISTRY.build("LinearDecoder", CHANNELS, num_classes=0)
    with pytest.raises(ValueError, match="dilations must be a non-empty list of ints >= 1"):
        DECODER_REGISTRY.build("ASPPSegmentationHead", CHANNELS, dilations=[0, 6])
    with pytest.raises(ValueError, match="num_convs must be >= 1, got 0"):
        DECODER_REGISTRY.build("FCNDecoder", CHANNELS, num_convs=0)


def test_aspp_regression_final_activation():
    decoder = DECODER_REGISTRY.build("ASPPRegressionHead", CHANNELS, channels=8, final_act="Sigmoid")
    out = decoder(pyramid())
    assert out.min() >= 0 and out.max() <= 1


def test_identity_decoder_returns_the_selected_map_itself():
    features = pyramid()
    assert DECODER_REGISTRY.build("IdentityDecoder", CHANNELS, out_index=1)(features) is features[1]


def test_documented_module_paths_and_package_exports():
    from terratorch.models.decoders.aspp_head import ASPPSegmentationHead
    from terratorch.models.decoders.linear_decoder import LinearDecoder
    from terratorch.models.decoders.unet_decoder import UNetDecoder

    assert decoders.UNetDecoder is UNetDecoder is DECODER_REGISTRY.find_class("UNetDecoder")
    assert decoders.LinearDecoder is LinearDecoder
    assert decoders.ASPPSegmentationHead is ASPPSegmentationHead
    for name in ["FCNDecoder", "IdentityDecoder", "UperNetDecoder", "MLPDecoder", "ASPPRegressionHead"]:
        assert getattr(decoders, name) is DECODER_REGISTRY[name]
    with pytest.raises(AttributeError, match="no attribute 'NoSuchDecoder'"):
        decoders.NoSuchDecoder


def test_decoder_modules_do_not_import_smp_or_timm():
    code = (
        "import sys, terratorch.models.decoders.unet_decoder, terratorch.models.decoders.aspp_head, "
        "terratorch.models.necks, terratorch.models.heads;"
        "print(sorted(m for m in ('segmentation_models_pytorch', 'timm', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
