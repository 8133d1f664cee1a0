"""smp decoders on our feature lists (terratorch.models.decoders.smp_decoders)."""

from __future__ import annotations

import pytest
import torch
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from terratorch.models.decoders.smp_decoders import SUPPORTED_DECODERS, build_smp_decoder
from terratorch.registry import DECODER_REGISTRY, InvalidModelError

CHANNELS = [8, 16, 32, 64]
FINEST = 16  # strides 4..32 of a 64 px input


def pyramid(channels=CHANNELS, finest=FINEST):
    torch.manual_seed(0)
    return [torch.randn(2, c, finest // 2**i, finest // 2**i) for i, c in enumerate(channels)]


# name, kwargs, output shape for pyramid(finest): U-Net family at input resolution (x4 the finest
# map), FPN/UPerNet/Segformer/PAN/DeepLabV3+ at the finest map, DeepLabV3/PSPNet at the coarsest.
# PAN's pooling pyramid needs a coarsest map of at least 8 px, hence its larger input.
CASES = [
    ("Unet", {"decoder_channels": [16, 8, 8, 4, 4]}, 16, (2, 4, 64, 64)),
    ("UnetPlusPlus", {"decoder_channels": [16, 8, 8, 4, 4]}, 16, (2, 4, 64, 64)),
    ("MAnet", {"decoder_channels": [16, 8, 8, 4, 4], "decoder_pab_channels": 8}, 16, (2, 4, 64, 64)),
    ("Linknet", {"prefinal_channels": 6}, 16, (2, 6, 64, 64)),
    ("FPN", {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}, 16, (2, 32, 16, 16)),
    ("DeepLabV3", {"decoder_channels": 16}, 16, (2, 16, 2, 2)),
    ("DeepLabV3Plus", {"decoder_channels": 16}, 16, (2, 16, 16, 16)),
    ("PSPNet", {"psp_out_channels": 16}, 16, (2, 16, 2, 2)),
    ("PAN", {"decoder_channels": 16}, 64, (2, 16, 64, 64)),
    ("UPerNet", {"decoder_channels": 16}, 16, (2, 16, 16, 16)),
    ("Segformer", {"decoder_segmentation_channels": 16}, 16, (2, 16, 16, 16)),
]


def test_supported_decoders_cover_the_common_architectures():
    expected = {
        "Unet",
        "UnetPlusPlus",
        "FPN",
        "DeepLabV3",
        "DeepLabV3Plus",
        "PSPNet",
        "Linknet",
        "MAnet",
        "PAN",
    }
    assert expected | {"UPerNet"} <= set(SUPPORTED_DECODERS)
    assert {case[0] for case in CASES} == set(SUPPORTED_DECODERS)


@pytest.mark.parametrize(("name", "kwargs", "finest", "shape"), CASES)
def test_each_smp_decoder_builds_through_the_registry_and_decodes_a_pyramid(name, kwargs, finest, shape):
    decoder = DECODER_REGISTRY.build(f"smp_{name}", CHANNELS, **kwargs)
    out = decoder(pyramid(finest=finest))
    assert tuple(out.shape) == shape
    assert decoder.out_channels == shape[1]
    assert not getattr(decoder, "includes_head", False)


@pytest.mark.parametrize("name", ["Unet", "FPN"])
def test_registry_builds_with_defaults_and_gradients_flow(name):
    decoder = DECODER_REGISTRY.build(f"smp_{name}", [64, 128, 256, 512])
    features = [f.requires_grad_() for f in pyramid([64, 128, 256, 512], finest=8)]
    out = decoder(features)
    assert out.shape[1] == decoder.out_channels
    out.mean().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features)
    assert all(p.grad is not None for p in decoder.parameters())


def test_unet_matches_smp_decoder_on_smp_encoder_features():
    """With a 5-level list (strides 2..32) the adapter is exactly smp's decoder of a depth-5 encoder."""
    smp_channels = [3, 8, 8, 16, 16, 32]
    reference = UnetDecoder(
        encoder_channels=smp_channels, decoder_channels=[16, 8, 8, 4, 4], n_blocks=5
    ).eval()
    ours = build_smp_decoder("Unet", smp_channels[1:], decoder_channels=[16, 8, 8, 4, 4]).eval()
    ours.decoder.load_state_dict(reference.state_dict())
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(smp_channels)]
    with torch.no_grad():
        assert torch.allclose(ours(features[1:]), reference(features))


def test_fpn_matches_smp_decoder():
    smp_channels = [3, 8, 8, 16, 16, 32]
    reference = FPNDecoder(
        smp_channels, encoder_depth=5, pyramid_channels=32, segmentation_channels=32
    ).eval()
    ours = build_smp_decoder("FPN", smp_channels[2:], pyramid_channels=32, segmentation_channels=32).eval()
    ours.decoder.load_state_dict(reference.state_dict())
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(smp_channels)]
    with torch.no_grad():
        assert torch.allclose(ours(features[2:]), reference(features))


def test_deeplabv3plus_matches_smp_on_a_dilated_encoder_and_adapts_to_other_strides():
    smp_channels = [3, 8, 8, 16, 16, 32]
    reference = DeepLabV3PlusDecoder(
        encoder_channels=smp_channels,
        encoder_depth=5,
        out_channels=16,
        atrous_rates=(12, 24, 36),
        output_stride=16,
        aspp_separable=True,
        aspp_dropout=0.5,
    ).eval()
    ours = build_smp_decoder("DeepLabV3Plus", [8, 16, 16, 32], decoder_channels=16).eval()
    ours.decoder.load_state_dict(reference.state_dict())
    sizes = [32, 16, 8, 4, 2, 2]  # output stride 16: the last stage is dilated
    features = [torch.randn(2, c, s, s) for c, s in zip(smp_channels, sizes)]
    with torch.no_grad():
        assert torch.allclose(ours(features[2:]), reference(features), atol=1e-6)
    # an undilated stride-32 pyramid: smp's fixed x4 would not line up; ours resizes to the finest map
    assert ours(pyramid([8, 16, 16, 32], finest=16)).shape == (2, 16, 16, 16)


def test_shorter_and_longer_feature_lists():
    single = [torch.randn(2, 16, 4, 4)]  # one ViT map
    assert build_smp_decoder("Unet", [16], decoder_channels=[8, 8, 4, 4, 4])(single).shape == (2, 4, 128, 128)
    assert build_smp_decoder("DeepLabV3", [16], decoder_channels=8)(single).shape == (2, 8, 4, 4)
    assert build_smp_decoder("DeepLabV3Plus", [16], decoder_channels=8)(single).shape == (2, 8, 4, 4)
    three = pyramid([8, 16, 32], finest=16)
    assert build_smp_decoder("UPerNet", [8, 16, 32], decoder_channels=8)(three).shape == (2, 8, 16, 16)
    assert build_smp_decoder("Unet", [8, 16, 32], decoder_channels=[8, 8, 4])(three).shape == (2, 4, 32, 32)
    five = pyramid([4, 8, 8, 8, 8], finest=128)
    pan = build_smp_decoder("PAN", [4, 8, 8, 8, 8], decoder_channels=8)
    assert pan(five).shape == (2, 8, 64, 64)  # the 4 coarsest maps, output at the finest of them


def test_kwargs_pass_through_under_smp_model_and_decoder_names():
    plain = build_smp_decoder("Unet", CHANNELS, channels=[8, 8, 8, 8, 8], decoder_use_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    attention = build_smp_decoder(
        "Unet", CHANNELS, decoder_attention_type="scse", interpolation_mode="bilinear"
    )
    assert any("attention" in name and list(m.parameters()) for name, m in attention.named_modules())
    assert attention.decoder.blocks[0].interpolation_mode == "bilinear"
    cat = build_smp_decoder("FPN", CHANNELS, decoder_merge_policy="cat", segmentation_channels=32)
    assert cat.out_channels == 128
    assert cat(pyramid(finest=8)).shape == (2, 128, 8, 8)


def test_unknown_and_duplicate_kwargs_are_type_errors():
    with pytest.raises(TypeError, match=r"smp_Unet got an unexpected keyword argument 'decoder_chanels'.*"):
        build_smp_decoder("Unet", CHANNELS, decoder_chanels=[8] * 5)
    with pytest.raises(TypeError, match="Did you mean: decoder_channels"):
        DECODER_REGISTRY.build("smp_Unet", CHANNELS, decoder_chanels=[8] * 5)
    with pytest.raises(TypeError, match="'channels' and 'decoder_channels' set the same argument"):
        build_smp_decoder("Unet", CHANNELS, decoder_channels=[8] * 5, channels=[8] * 5)


def test_feature_lists_that_do_not_fit_the_architecture():
    with pytest.raises(
        ValueError,
        match=r"with 3 decoder blocks can use at most 3 feature maps, got 4.*Use at least 4 blocks",
    ):
        build_smp_decoder("Unet", CHANNELS, decoder_channels=[8, 8, 8])
    with pytest.raises(ValueError, match=r"smp_FPN needs at least 4 feature maps.*got 3"):
        build_smp_decoder("FPN", [8, 16, 32])
    with pytest.raises(ValueError, match="smp_PAN needs at least 2 feature maps, got 1"):
        build_smp_decoder("PAN", [8])
    with pytest.raises(ValueError, match="smp_Linknet with 2 decoder blocks can use at most 2 feature maps"):
        build_smp_decoder("Linknet", [8, 16, 32], n_blocks=2)


def test_channel_mismatch_at_forward_names_both_lists():
    decoder = build_smp_decoder("UPerNet", CHANNELS, decoder_channels=8)
    with pytest.raises(
        ValueError, match=r"smp_UPerNet was built for 4 feature maps with channels \[8, 16, 32, 64\]"
    ):
        decoder(pyramid([8, 16, 32, 32], finest=16))


def test_unknown_smp_name_is_an_invalid_model_error_with_suggestions():
    with pytest.raises(InvalidModelError, match=r"'smp_Unett'.*Did you mean.*'smp_Unet'"):
        DECODER_REGISTRY.build("smp_Unett", CHANNELS)
    with pytest.raises(InvalidModelError, match=r"'Segformr'.*'Segformer'"):
        build_smp_decoder("Segformr", CHANNELS)
