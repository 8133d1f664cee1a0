"""Prithvi Swin: timm registration, mmseg layout, padding, feature extraction, weights and bands."""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torch.nn.functional as F

from terratorch.models.backbones.prithvi_swin import (
    PrithviSwin,
    PrithviSwinFeatures,
    convert_weights_swin2mmseg,
    is_timm_swin_layout,
)
from terratorch.models.backbones.swin_encoder_decoder import relative_position_index
from terratorch.models.backbones.timm_backbone import TimmBackbone
from terratorch.models.weights import WeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY

# one block per stage (two in the first, so a shifted block runs) and a narrow width: fast on CPU
SMALL = {"depths": (2, 1, 1, 1), "embed_dim": 16, "num_heads": (1, 2, 2, 4)}


def stage_maps(model, x):
    """The NHWC map of every stage of a full :class:`PrithviSwin`, run stage by stage."""
    state, maps = model.patch_embed(x), []
    for stage in model.stages:
        state = stage(state)
        maps.append(state[0])
    return maps


@pytest.mark.parametrize(("name", "width"), [("prithvi_swin_B", 128), ("prithvi_swin_L", 192)])
def test_registered_in_timm_with_feature_info_and_default_cfg(name, width):
    assert timm.is_model(name)
    cfg = timm.models.get_pretrained_cfg(name)
    assert (
        cfg.input_size == (6, 224, 224) and len(cfg.mean) == 6 and cfg.first_conv == "patch_embed.projection"
    )
    with torch.device("meta"):
        model = timm.create_model(name, features_only=True, depths=(1, 1, 1, 1))
        raw = model(torch.randn(1, 6, 64, 96))
    assert isinstance(model, PrithviSwinFeatures)
    assert model.feature_info.channels() == [width, 2 * width, 4 * width, 8 * width]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert raw[0].shape == (1, 16, 24, width)  # NHWC, as timm's feature list of the reference
    maps = model.prepare_features_for_image_model(raw)
    assert [m.shape for m in maps] == [(1, width * 2**i, 16 // 2**i, 24 // 2**i) for i in range(4)]
    nhwc = torch.randn(2, 4, 5, 2 * width)
    assert torch.equal(model.prepare_features_for_image_model([nhwc, nhwc])[1], nhwc.permute(0, 3, 1, 2))


@pytest.mark.parametrize(("name", "width", "heads"), [("prithvi_swin_B", 128, 4), ("prithvi_swin_L", 192, 6)])
def test_state_dict_has_the_mmseg_layout(name, width, heads):
    with torch.device("meta"):
        shapes = {
            k: tuple(v.shape) for k, v in timm.create_model(name, features_only=True).state_dict().items()
        }
    assert len(shapes) == 357
    assert shapes["patch_embed.projection.weight"] == (width, 6, 4, 4)
    assert shapes["patch_embed.norm.weight"] == (width,)
    block = "stages_0.blocks.1."
    assert shapes[block + "attn.w_msa.relative_position_bias_table"] == (169, heads)
    assert shapes[block + "attn.w_msa.relative_position_index"] == (49, 49)
    assert shapes[block + "attn.w_msa.qkv.weight"] == (3 * width, width)
    assert shapes[block + "ffn.layers.0.0.weight"] == (4 * width, width)
    assert shapes[block + "ffn.layers.1.weight"] == (width, 4 * width)
    assert shapes["stages_0.downsample.norm.weight"] == (4 * width,)
    assert shapes["stages_0.downsample.reduction.weight"] == (2 * width, 4 * width)
    assert "stages_0.downsample.reduction.bias" not in shapes
    assert shapes["stages_3.norm.weight"] == (8 * width,) and "stages_3.downsample.norm.weight" not in shapes
    assert [len([k for k in shapes if k.startswith(f"stages_2.blocks.{i}.")]) for i in (0, 17)] == [14, 14]


def test_relative_position_index_is_the_standard_swin_index():
    index = relative_position_index((7, 7))
    # query (0, 0) / key (6, 6) is the smallest offset, query (6, 6) / key (0, 0) the largest
    assert index[0, 48] == 0 and index[48, 0] == 168 and index.diagonal().unique().tolist() == [84]


@pytest.mark.parametrize("hw", [(64, 64), (70, 50), (45, 93)])
def test_any_input_size_is_padded(hw):
    backbone = BACKBONE_REGISTRY.build("prithvi_swin_B", **SMALL).eval()
    features = backbone(torch.randn(1, 6, *hw))
    size = list(hw)
    expected = []
    for i in range(4):
        size = [-(-s // (4 if i == 0 else 2)) for s in size]
        expected.append((1, 16 * 2**i, *size))
    assert [tuple(f.shape) for f in features] == expected


@pytest.mark.parametrize("name", ["prithvi_swin_B", "timm_prithvi_swin_B"])
def test_backbone_registry_builds_nchw_backbones(name):
    backbone = BACKBONE_REGISTRY.build(name, **SMALL)
    assert isinstance(backbone, TimmBackbone)
    assert next(iter(backbone.state_dict())) == "patch_embed.projection.weight"
    features = backbone(torch.randn(2, 6, 64, 64))
    assert [f.shape[1] for f in features] == backbone.out_channels == [16, 32, 64, 128]
    assert features[-1].shape == (2, 128, 2, 2)


def test_out_indices_and_reference_kwargs():
    model = timm.create_model(
        "prithvi_swin_B", features_only=True, out_indices=(1, 3), num_frames=1, img_size=64, **SMALL
    )
    assert model.feature_info.channels() == [32, 128]
    assert [f.shape[-1] for f in model(torch.randn(1, 6, 64, 64))] == [32, 128]


def test_full_model_classifies_and_prepares_stage_outputs():
    model = timm.create_model("prithvi_swin_B", num_classes=5, **SMALL).eval()  # eval: no stochastic depth
    assert isinstance(model, PrithviSwin) and model.bands[0] == "BLUE"
    x = torch.randn(1, 6, 64, 64)
    assert model(x).shape == (1, 5)
    features, _, hw = model.forward_features(x)
    assert features.shape == (1, 2, 2, 128) and hw == (2, 2)
    maps = model.prepare_features_for_image_model(stage_maps(model, x))
    assert [m.shape for m in maps] == [(1, 16 * 2**i, 16 // 2**i, 16 // 2**i) for i in range(4)]
    assert torch.equal(maps[-1], features.permute(0, 3, 1, 2))


def test_frozen_stages_freeze_the_stem_and_first_stages():
    model = timm.create_model("prithvi_swin_B", frozen_stages=1, **SMALL).train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters()) and not model.stages[0].training
    assert all(p.requires_grad for p in model.stages[1].parameters()) and model.stages[1].training


def test_zeroed_relative_position_index_in_a_checkpoint_is_regenerated():
    model = timm.create_model("prithvi_swin_B", **SMALL)
    state = model.state_dict()
    key = "stages.0.blocks.0.attn.w_msa.relative_position_index"
    expected = state[key].clone()
    model.load_state_dict({**state, key: torch.zeros_like(expected)})
    assert torch.equal(model.state_dict()[key], expected)


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
    for got, want in zip(loaded.eval()(x), stage_maps(source.eval(), x)):
        assert torch.equal(got, want)


def _timm_swin():
    torch.manual_seed(0)
    return timm.create_model(
        "swin_tiny_patch4_window7_224", in_chans=6, embed_dim=16, depths=(2, 1, 1, 1), num_heads=(1, 2, 2, 4)
    ).eval()


def _official_layout(timm_state):
    """timm >= 0.9 merges at the start of stage N; the official Swin at the end of stage N - 1."""
    shift = lambda m: f"layers.{int(m.group(1)) - 1}.downsample"  # noqa: E731
    return {re.sub(r"layers\.(\d+)\.downsample", shift, k): v for k, v in timm_state.items()}


@pytest.mark.parametrize("layout", ["timm", "official"])
def test_timm_and_official_swin_weights_are_converted(tmp_path, layout):
    reference = _timm_swin()
    state = reference.state_dict()
    if layout == "official":
        state = _official_layout(state)
    assert is_timm_swin_layout(state) and not is_timm_swin_layout(convert_weights_swin2mmseg(state))
    torch.save({"model": state}, tmp_path / "swin.pth")
    ours = timm.create_model(
        "prithvi_swin_B", features_only=True, ckpt_path=str(tmp_path / "swin.pth"), **SMALL
    ).eval()
    x = torch.randn(1, 6, 224, 224)
    with torch.no_grad():
        want = reference.forward_intermediates(x, intermediates_only=True, norm=False)
        want = [w.permute(0, 2, 3, 1) for w in want]
        got = ours(x)
    for i, (g, w) in enumerate(zip(got, want)):
        # ours normalises every stage output (fresh LayerNorm: weight 1, bias 0); timm does not
        torch.testing.assert_close(g, F.layer_norm(w, w.shape[-1:]), atol=1e-4, rtol=0, msg=f"stage {i}")


def test_band_remapping_through_backbone_registry(tmp_path):
    source = timm.create_model("prithvi_swin_B", **SMALL)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "swin.ckpt"
    )
    backbone = BACKBONE_REGISTRY.build(
        "prithvi_swin_B", bands=["NIR_NARROW", "RED"], ckpt_path=str(tmp_path / "swin.ckpt"), **SMALL
    )
    weight = backbone.patch_embed.projection.weight
    assert weight.shape[1] == 2
    assert torch.equal(weight[:, 0], source.patch_embed.projection.weight[:, 3])
    assert torch.equal(weight[:, 1], source.patch_embed.projection.weight[:, 2])


def test_bias_tables_of_another_window_size_are_resized(tmp_path):
    source = timm.create_model("prithvi_swin_B", window_size=4, **SMALL)
    torch.save(source.state_dict(), tmp_path / "swin.pth")
    model = timm.create_model("prithvi_swin_B", ckpt_path=str(tmp_path / "swin.pth"), **SMALL)
    key = "stages.0.blocks.0.attn.w_msa.relative_position_bias_table"
    grid = source.state_dict()[key].permute(1, 0).reshape(1, 1, 7, 7)  # 2 * 4 - 1 = 7 offsets a side
    expected = F.interpolate(grid, size=(13, 13), mode="bicubic").view(1, 169).permute(1, 0)
    torch.testing.assert_close(model.state_dict()[key], expected)


def test_pretrained_without_a_file_is_an_error():
    with pytest.raises(WeightsNotFoundError, match=r"prithvi_swin_L has no published weights.*ckpt_path"):
        timm.create_model("prithvi_swin_L", pretrained=True)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"does not exist: '.*gone\.pth'"):
        timm.create_model(
            "prithvi_swin_B", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "gone.pth")}
        )


def test_feature_extractor_checkpoints_load_into_the_full_model(tmp_path):
    """A fine-tuned reference checkpoint spells the backbone ``model.encoder.stages_N.*``."""
    backbone = BACKBONE_REGISTRY.build("prithvi_swin_B", **SMALL)
    state = {f"model.encoder.{k}": v for k, v in backbone.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "finetuned.ckpt")
    full = timm.create_model("prithvi_swin_B", ckpt_path=str(tmp_path / "finetuned.ckpt"), **SMALL).eval()
    x = torch.randn(1, 6, 40, 40)
    for got, want in zip(stage_maps(full, x), backbone.eval().timm_module(x)):
        assert torch.equal(got, want)


def test_full_model_has_the_reference_classifier_by_default():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in timm.create_model("prithvi_swin_B").state_dict().items()}
    assert len(shapes) == 359 and shapes["head.fc.weight"] == (1000, 1024)
