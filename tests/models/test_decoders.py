"""Decoders (terratorch.models.decoders): shapes, registry builds, gradients and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

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
    ("UNetDecoder", {"channels": [16, 8, 8, 4]}, (2, 4, 16, 16), False),
    ("LinearDecoder", {"num_classes": 3, "upsampling_size": 32}, (2, 3, IMAGE, IMAGE), True),
    (
        "ASPPSegmentationHead",
        {"num_classes": 3, "in_channels": 32, "channels": 8, "dilations": [1, 2]},
        (2, 3, 2, 2),
        False,
    ),
    ("ASPPRegressionHead", {"in_channels": 32, "channels": 8, "dilations": [1, 3, 6]}, (2, 1, 2, 2), False),
]
# decoders that check the whole feature list against the channel list they were built for
CHECKED = [
    case for case in CASES if case[0] in {"FCNDecoder", "UperNetDecoder", "UNetDecoder", "LinearDecoder"}
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


@pytest.mark.parametrize(("name", "kwargs", "shape", "includes_head"), CHECKED)
def test_channel_mismatch_names_expected_and_received(name, kwargs, shape, includes_head):
    decoder = DECODER_REGISTRY.build(name, CHANNELS, **kwargs)
    wrong = pyramid([4, 8, 16, 64])
    with pytest.raises(
        ValueError, match=r"channels \[4, 8, 16, 32\] but received 4 with channels \[4, 8, 16, 64\]"
    ):
        decoder(wrong)
    with pytest.raises(ValueError, match=r"built for 4 feature maps .* received 3"):
        decoder(pyramid()[:3])


def test_layouts_use_the_reference_module_names():
    upernet = DECODER_REGISTRY.build("UperNetDecoder", CHANNELS, channels=8)
    keys = set(upernet.state_dict())
    assert {"bottleneck.conv.weight", "bottleneck.norm.running_var", "fpn_bottleneck.conv.weight"} <= keys
    assert {"psp_modules.0.1.conv.weight", "lateral_convs.2.norm.weight", "fpn_convs.0.conv.weight"} <= keys
    fcn = DECODER_REGISTRY.build("FCNDecoder", CHANNELS, channels=6, num_convs=2)
    assert {"convs.0.0.weight", "convs.0.1.bias", "convs.1.2.ln.weight"} <= set(fcn.state_dict())
    unet = DECODER_REGISTRY.build("UNetDecoder", CHANNELS, channels=[16, 8, 8, 4])
    assert "decoder.blocks.0.conv1.0.weight" in unet.state_dict()
    linear = DECODER_REGISTRY.build("LinearDecoder", CHANNELS, num_classes=3, upsampling_size=4)
    assert isinstance(linear.conv, nn.ConvTranspose2d) and linear.conv.stride == (4, 4)
    mlp = DECODER_REGISTRY.build("MLPDecoder", [8, 8])
    assert sorted(mlp.state_dict()) == ["hidden_layer.bias", "hidden_layer.weight"]
    assert mlp.hidden_layer.in_features == 16 and mlp.out_channels == 8


def test_aspp_heads_check_the_selected_map_against_in_channels():
    head = DECODER_REGISTRY.build(
        "ASPPSegmentationHead", CHANNELS, in_channels=32, channels=8, dilations=[1, 2]
    )
    with pytest.raises(ValueError, match=r"in_channels=32 but the selected input has shape \(2, 64, 2, 2\)"):
        head(pyramid([4, 8, 16, 64]))


def test_aspp_heads_need_their_sizes_and_work_without_dropout():
    with pytest.raises(ValueError, match=r"needs in_channels .* and channels"):
        DECODER_REGISTRY.build("ASPPSegmentationHead", CHANNELS, num_classes=3)
    head = DECODER_REGISTRY.build(
        "ASPPRegressionHead", CHANNELS, in_channels=16, channels=4, in_index=2, head_dropout_ratio=0
    )
    assert head.dropout is None
    assert head(pyramid()).shape == (2, 1, 4, 4)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['channel'\]"):
        DECODER_REGISTRY.build("ASPPHead", [1, 2], in_channels=8, channels=4, channel=3)


def test_aspp_resize_concat_reads_several_maps():
    head = DECODER_REGISTRY.build(
        "ASPPSegmentationHead",
        CHANNELS,
        in_channels=48,
        channels=4,
        num_classes=2,
        dilations=[1, 2],
        input_transform="resize_concat",
        in_index=[2, 3],
    )
    assert head(pyramid()).shape == (2, 2, 4, 4)


def test_token_inputs_get_a_hint_to_add_the_reshape_neck():
    decoder = DECODER_REGISTRY.build("UperNetDecoder", [16], channels=8)
    with pytest.raises(ValueError, match="add a ReshapeTokensToImage neck"):
        decoder([torch.randn(2, 17, 16)])


def test_unet_output_is_at_the_finest_map_of_a_five_level_resnet_list():
    channels = [4, 8, 8, 16, 16]
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(channels)]  # strides 2..32
    decoder = DECODER_REGISTRY.build("UNetDecoder", channels, channels=[16, 8, 8, 4, 4])
    assert decoder(features).shape == (2, 4, 32, 32)


def test_unet_handles_sizes_that_are_not_exact_halves():
    features = [torch.randn(2, 4, 13, 13), torch.randn(2, 8, 7, 7), torch.randn(2, 16, 4, 4)]
    decoder = DECODER_REGISTRY.build("UNetDecoder", [4, 8, 16], channels=[8, 8, 4])
    assert decoder(features).shape == (2, 4, 13, 13)


def test_unet_options_and_bad_channels():
    with pytest.raises(ValueError, match=r"embed_dim has 4 maps \[4, 8, 16, 32\] but channels has 3"):
        DECODER_REGISTRY.build("UNetDecoder", CHANNELS, channels=[16, 8, 4])
    plain = DECODER_REGISTRY.build(
        "UNetDecoder", CHANNELS, channels=[16, 16, 16, 16], use_batchnorm=False, attention_type="scse"
    )
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert any("attention" in k for k in plain.state_dict())


def test_upernet_scale_modules_builds_a_pyramid_from_same_resolution_maps():
    with pytest.warns(DeprecationWarning, match="LearnedInterpolateToPyramidal"):
        decoder = DECODER_REGISTRY.build("UperNetDecoder", [8, 8, 8, 8], channels=8, scale_modules=True)
    assert decoder.embed_dim == [2, 4, 8, 8]
    same_resolution = [torch.randn(2, 8, 4, 4) for _ in range(4)]  # plain ViT layers at stride 16
    assert decoder(same_resolution).shape == (2, 8, 16, 16)
    with pytest.raises(ValueError, match="scale_modules=True needs exactly 4 feature maps, got 3"):
        DECODER_REGISTRY.build("UperNetDecoder", [8, 8, 8], scale_modules=True)


def test_index_arguments_are_validated_against_the_channel_list():
    with pytest.raises(ValueError, match=r"out_index=4 is out of range for 4 feature maps.*-4\.\.3"):
        DECODER_REGISTRY.build("IdentityDecoder", CHANNELS, out_index=4)
    with pytest.raises(ValueError, match="in_index=-5 is out of range"):
        DECODER_REGISTRY.build("FCNDecoder", CHANNELS, in_index=-5)


def test_mlp_decoder_on_maps_vectors_and_bad_input():
    decoder = DECODER_REGISTRY.build("MLPDecoder", [16], channels=8, out_dim=3, activation="GELU")
    assert decoder([torch.randn(2, 16)]).shape == (2, 16)
    assert decoder([torch.randn(2, 16, 3, 3)]).shape == (2, 16, 3, 3)
    with pytest.raises(ValueError, match="expects \\(B, C, H, W\\) maps or \\(B, C\\) vectors"):
        decoder([torch.randn(2, 16, 5, 1, 1)])
    with pytest.raises(ValueError, match=r"channels \[16\] \(concatenated: 16\) but received channels \[8\]"):
        decoder([torch.randn(2, 8)])
    with pytest.raises(
        ValueError, match=r"activation 'Relu' is not a torch\.nn activation\. Did you mean: ReLU"
    ):
        DECODER_REGISTRY.build("MLPDecoder", [16], activation="Relu")


def test_bad_sizes_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        DECODER_REGISTRY.build("LinearDecoder", CHANNELS, num_classes=0, upsampling_size=4)
    with pytest.raises(ValueError, match="dilations must be a non-empty list of ints >= 1"):
        DECODER_REGISTRY.build("ASPPSegmentationHead", CHANNELS, in_channels=32, channels=8, dilations=[0, 6])
    with pytest.raises(ValueError, match="num_convs must be >= 1, got 0"):
        DECODER_REGISTRY.build("FCNDecoder", CHANNELS, num_convs=0)


def test_identity_decoder_returns_the_selected_map_itself():
    features = pyramid()
    assert DECODER_REGISTRY.build("IdentityDecoder", CHANNELS, out_index=1)(features) is features[1]


def test_documented_module_paths_and_package_exports():
    from terratorch.models.decoders.aspp_head import ASPPSegmentationHead
    from terratorch.models.decoders.linear_decoder import LinearDecoder
    from terratorch.models.decoders.unet_decoder import UNetDecoder
    from terratorch.models.decoders.utils import ConvModule

    assert decoders.UNetDecoder is UNetDecoder is DECODER_REGISTRY.find_class("UNetDecoder")
    assert decoders.LinearDecoder is LinearDecoder
    assert decoders.ASPPSegmentationHead is ASPPSegmentationHead
    for name in [
        "FCNDecoder",
        "IdentityDecoder",
        "UperNetDecoder",
        "MLPDecoder",
        "ASPPRegressionHead",
        "ASPPHead",
    ]:
        assert getattr(decoders, name) is DECODER_REGISTRY[name]
    assert decoders.ConvModule is ConvModule
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
