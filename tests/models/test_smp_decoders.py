"""smp decoders on our feature lists (terratorch.models.decoders.smp_decoders)."""

from __future__ import annotations

import pytest
import torch
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from terratorch.models.decoders.smp_decoders import SUPPORTED_DECODERS, SMPDecoderWrapper, build_smp_decoder
from terratorch.registry import DECODER_REGISTRY, InvalidModelError

# an smp-style list: entry 0 at the "input" resolution, then strides 2..16 of it
CHANNELS = [4, 8, 8, 16, 16]


def smp_features(channels=CHANNELS, size=32, batch=2):
    torch.manual_seed(0)
    return [torch.randn(batch, c, size // 2**i, size // 2**i) for i, c in enumerate(channels)]


# name, kwargs, input size, output shape: what smp gives for an smp encoder with these channels.
CASES = [
    ("Unet", {"decoder_channels": [16, 8, 8, 4]}, 32, (2, 4, 32, 32)),
    ("UnetPlusPlus", {"decoder_channels": [16, 8, 8, 4]}, 32, (2, 4, 32, 32)),
    ("MAnet", {"decoder_channels": [16, 8, 8, 4], "decoder_pab_channels": 8}, 32, (2, 4, 32, 32)),
    ("Linknet", {}, 32, (2, 32, 32, 32)),
    ("FPN", {"decoder_pyramid_channels": 8, "decoder_segmentation_channels": 32}, 32, (2, 32, 16, 16)),
    ("DeepLabV3", {"decoder_channels": 8}, 32, (2, 8, 2, 2)),
    ("DeepLabV3Plus", {"decoder_channels": 8, "decoder_atrous_rates": [1, 2, 3]}, 32, (2, 8, 8, 8)),
    ("PSPNet", {"psp_out_channels": 8}, 32, (2, 8, 2, 2)),
    ("PAN", {"decoder_channels": 8}, 128, (2, 8, 32, 32)),
    ("UPerNet", {"decoder_channels": 8}, 32, (2, 8, 8, 8)),
    ("Segformer", {"decoder_segmentation_channels": 8}, 32, (2, 8, 8, 8)),
]


def test_supported_decoders_are_the_smp_architectures():
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
    assert expected | {"UPerNet", "Segformer"} <= set(SUPPORTED_DECODERS)
    assert {case[0] for case in CASES} | {"DPT"} == set(SUPPORTED_DECODERS)


@pytest.mark.parametrize(("name", "kwargs", "size", "shape"), CASES)
def test_each_smp_decoder_builds_through_the_registry_and_decodes(name, kwargs, size, shape):
    decoder = DECODER_REGISTRY.build(f"smp_{name}", CHANNELS, **kwargs).eval()
    assert isinstance(decoder, SMPDecoderWrapper)
    assert all(key.startswith("_smp_decoder.") for key in decoder.state_dict())
    with torch.no_grad():
        out = decoder(smp_features(size=size))
    assert tuple(out.shape) == shape
    assert decoder.out_channels == shape[1]
    assert not getattr(decoder, "includes_head", False)


@pytest.mark.parametrize("name", ["Unet", "FPN"])
def test_registry_builds_with_defaults_and_gradients_flow(name):
    channels = [8, 16, 32, 64, 128, 256]  # depth 5, as smp's defaults expect
    decoder = DECODER_REGISTRY.build(f"smp_{name}", channels)
    features = [f.requires_grad_() for f in smp_features(channels, size=64)]
    out = decoder(features)
    assert out.shape[1] == decoder.out_channels
    out.mean().backward()
    assert all(p.grad is not None for p in decoder.parameters())
    # smp ignores the first map (the encoder's stride-1 input) in these decoders
    assert features[0].grad is None and all(f.grad is not None for f in features[2:])


def test_unet_is_smps_decoder_for_an_encoder_with_these_channels():
    reference = UnetDecoder(encoder_channels=CHANNELS, decoder_channels=[16, 8, 8, 4], n_blocks=4).eval()
    ours = build_smp_decoder("Unet", CHANNELS, decoder_channels=[16, 8, 8, 4]).eval()
    ours._smp_decoder.load_state_dict(reference.state_dict())
    features = smp_features()
    with torch.no_grad():
        torch.testing.assert_close(ours(features), reference(features), atol=0, rtol=0)


def test_fpn_is_smps_decoder_for_an_encoder_with_these_channels():
    reference = FPNDecoder(CHANNELS, encoder_depth=4, pyramid_channels=8, segmentation_channels=32).eval()
    ours = build_smp_decoder(
        "FPN", CHANNELS, decoder_pyramid_channels=8, decoder_segmentation_channels=32
    ).eval()
    ours._smp_decoder.load_state_dict(reference.state_dict())
    features = smp_features()
    with torch.no_grad():
        torch.testing.assert_close(ours(features), reference(features), atol=0, rtol=0)


def test_model_kwargs_pass_through():
    plain = build_smp_decoder("Unet", CHANNELS, decoder_channels=[8, 8, 8, 8], decoder_use_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    attention = build_smp_decoder(
        "Unet",
        [16, 16, 16, 16],
        decoder_channels=[16, 16, 16],
        decoder_attention_type="scse",
        decoder_interpolation="bilinear",
    )
    assert any("attention" in name and list(m.parameters()) for name, m in attention.named_modules())
    assert attention._smp_decoder.blocks[0].interpolation_mode == "bilinear"
    cat = build_smp_decoder("FPN", CHANNELS, decoder_merge_policy="cat", decoder_segmentation_channels=32)
    assert cat.out_channels == 128
    # aux_* arguments configure the (discarded) classification head of the smp model
    assert isinstance(build_smp_decoder("FPN", CHANNELS, aux_classes=3, aux_dropout=0.1), SMPDecoderWrapper)


def test_unknown_kwargs_warn_with_suggestions():
    with pytest.warns(
        UserWarning, match=r"\['decoder_chanels'\] are not parameters of smp.Unet.*decoder_channels"
    ):
        build_smp_decoder("Unet", CHANNELS, decoder_channels=[8] * 4, decoder_chanels=[8] * 4)


def test_configurations_smp_rejects_are_value_errors_with_context():
    with pytest.raises(
        ValueError, match=r"smp_Unet cannot be built for feature channels \[4, 8, 8, 16, 16\]"
    ):
        build_smp_decoder("Unet", CHANNELS, decoder_channels=[8, 8, 8])
    with pytest.raises(ValueError, match="empty channel list"):
        build_smp_decoder("FPN", [])


def test_channel_mismatch_at_forward_names_both_lists():
    decoder = build_smp_decoder("UPerNet", CHANNELS, decoder_channels=8)
    with pytest.raises(ValueError, match=r"built for 5 feature maps with channels \[4, 8, 8, 16, 16\]"):
        decoder(smp_features([4, 8, 8, 16, 32]))


def test_wrapper_keeps_the_reference_signature():
    inner = nn.Conv2d(3, 5, 1)
    wrapper = SMPDecoderWrapper(inner, 5)
    assert wrapper.out_channels == 5 and wrapper._smp_decoder is inner
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(wrapper(x), inner(x))


def test_unknown_smp_name_is_an_invalid_model_error_with_suggestions():
    with pytest.raises(InvalidModelError, match=r"'smp_Unett'.*Did you mean.*'smp_Unet'"):
        DECODER_REGISTRY.build("smp_Unett", CHANNELS)
    with pytest.raises(InvalidModelError, match=r"'Segformr'.*'Segformer'"):
        build_smp_decoder("Segformr", CHANNELS)
