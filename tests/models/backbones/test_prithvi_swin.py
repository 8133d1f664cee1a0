"""Prithvi Swin: timm registration, feature extraction, NCHW preparation, weights and bands."""

from __future__ import annotations

import pytest
import timm
import torch

from terratorch.models.backbones.prithvi_swin import PrithviSwin, PrithviSwinFeatures
from terratorch.models.backbones.timm_backbone import TimmBackbone
from terratorch.models.weights import WeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY

# one block per stage and a narrow width: fast on CPU (published widths are checked on `meta`)
SMALL = {"depths": (1, 1, 1, 1), "embed_dim": 16, "num_heads": (1, 2, 2, 4)}


def stage_outputs_nhwc(model, x):
    """Reference stage outputs of a full PrithviSwin, in timm's NHWC layout."""
    stages = model.forward_intermediates(x, intermediates_only=True, output_fmt="NCHW")
    return [s.permute(0, 2, 3, 1) for s in stages]


@pytest.mark.parametrize(("name", "width"), [("prithvi_swin_B", 128), ("prithvi_swin_L", 192)])
def test_registered_in_timm_with_feature_info_and_default_cfg(name, width):
    assert timm.is_model(name)
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg.input_size == (6, 224, 224) and len(cfg.mean) == 6 and cfg.first_conv == "patch_embed.proj"
    with torch.device("meta"):
        model = timm.create_model(name, features_only=True, depths=(1, 1, 1, 1))
        raw = model(torch.randn(1, 6, 64, 96))
    assert isinstance(model, PrithviSwinFeatures)
    assert model.feature_info.channels() == [width, 2 * width, 4 * width, 8 * width]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert raw[0].shape == (1, 16, 24, width)  # timm's NHWC
    maps = model.prepare_features_for_image_model(raw)
    assert [m.shape for m in maps] == [(1, width * 2**i, 16 // 2**i, 24 // 2**i) for i in range(4)]
    nhwc = torch.randn(2, 4, 5, 2 * width)
    assert torch.equal(model.prepare_features_for_image_model([nhwc, nhwc])[1], nhwc.permute(0, 3, 1, 2))


@pytest.mark.parametrize("name", ["prithvi_swin_B", "timm_prithvi_swin_B"])
def test_backbone_registry_builds_nchw_backbones(name):
    backbone = BACKBONE_REGISTRY.build(name, **SMALL)
    assert isinstance(backbone, TimmBackbone)
    features = backbone(torch.randn(2, 6, 64, 64))
    assert [f.shape[1] for f in features] == backbone.out_channels == [16, 32, 64, 128]
    assert features[-1].shape == (2, 128, 2, 2)


def test_full_model_prepares_stage_outputs():
    model = timm.create_model("prithvi_swin_B", **SMALL).eval()  # eval: no stochastic depth
    assert isinstance(model, PrithviSwin) and model.bands[0] == "BLUE"
    x = torch.randn(1, 6, 64, 64)
    maps = model.prepare_features_for_image_model(stage_outputs_nhwc(model, x))
    assert [m.shape[1] for m in maps] == [16, 32, 64, 128]
    reference = model.forward_intermediates(x, intermediates_only=True, output_fmt="NCHW")
    assert all(torch.equal(m, r) for m, r in zip(maps, reference))


def test_weights_round_trip_through_pretrained_cfg_overlay(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("prithvi_swin_B", **SMALL)
    torch.save(source.state_dict(), tmp_path / "swin.pth")
    loaded = timm.create_model(
        "prithvi_swin_B",
        features_only=True,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(tmp_path / "swin.pth")},
        **SMALL,
    )
    x = torch.randn(1, 6, 64, 64)
    expected = stage_outputs_nhwc(source.eval(), x)
    for got, want in zip(loaded.eval()(x), expected):
        assert torch.equal(got, want)


def test_band_remapping_through_backbone_registry(tmp_path):
    source = timm.create_model("prithvi_swin_B", **SMALL)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "swin.ckpt"
    )
    backbone = BACKBONE_REGISTRY.build(
        "prithvi_swin_B", bands=["NIR_NARROW", "RED"], ckpt_path=str(tmp_path / "swin.ckpt"), **SMALL
    )
    weight = backbone.model.patch_embed.proj.weight
    assert weight.shape[1] == 2
    assert torch.equal(weight[:, 0], source.patch_embed.proj.weight[:, 3])
    assert torch.equal(weight[:, 1], source.patch_embed.proj.weight[:, 2])


def test_pretrained_without_a_file_is_an_error():
    with pytest.raises(WeightsNotFoundError, match=r"prithvi_swin_L has no published weights.*ckpt_path"):
        timm.create_model("prithvi_swin_L", pretrained=True)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"does not exist: '.*gone\.pth'"):
        timm.create_model(
            "prithvi_swin_B", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "gone.pth")}
        )
