"""Band remapping: exactly the right input-channel slices end up in the right places."""

from __future__ import annotations

import pytest
import torch

from terratorch.datasets import HLSBands
from terratorch.models.backbones.select_patch_embed_weights import select_patch_embed_weights
from terratorch.models.weights import BandMismatchError, band_key, remap_band_channels
from terratorch.registry import BACKBONE_REGISTRY

HLS6 = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


def tiny(**kwargs):
    options = {"img_size": 32, "depth": 1}
    options.update(kwargs)
    return BACKBONE_REGISTRY.build("prithvi_eo_tiny", **options)


def test_band_keys_normalise_enums_strings_and_ints():
    assert band_key(HLSBands.NIR_NARROW) == band_key("nir_narrow ") == "NIR_NARROW"
    assert band_key(3) == 3
    with pytest.raises(TypeError, match=r"Bands are names .* or ints, got 1\.5"):
        band_key(1.5)


def test_remap_copies_matching_slices_and_keeps_fresh_ones():
    ckpt = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    fresh = -torch.ones(2, 4, 4)
    model_bands = [HLSBands.RED, "new band", 0, "blue"]
    with pytest.warns(UserWarning, match=r"Bands \['new band', '0'\] are not in"):
        out = remap_band_channels(ckpt, fresh, ["BLUE", "GREEN", "RED"], model_bands)
    assert torch.equal(out[:, 0], ckpt[:, 2])
    assert torch.equal(out[:, 3], ckpt[:, 0])
    assert torch.equal(out[:, 1], fresh[:, 1]) and torch.equal(out[:, 2], fresh[:, 2])
    assert torch.equal(fresh, -torch.ones(2, 4, 4))  # inputs untouched


def test_integer_bands_match_integers():
    ckpt = torch.randn(4, 3, 2, 2)
    out = remap_band_channels(ckpt, torch.zeros(4, 2, 2, 2), [10, 20, 30], [30, 10])
    assert torch.equal(out[:, 0], ckpt[:, 2]) and torch.equal(out[:, 1], ckpt[:, 0])


def test_bands_that_match_nothing():
    with pytest.raises(BandMismatchError, match=r"None of the model bands \['VV', 'VH'\] is among .*'BLUE'"):
        remap_band_channels(torch.randn(2, 3), torch.zeros(2, 2), ["BLUE", "GREEN", "RED"], ["VV", "VH"])
    with pytest.warns(UserWarning, match=r"None of the model bands .* starts from scratch"):
        out = remap_band_channels(
            torch.randn(2, 3), torch.zeros(2, 2), ["BLUE", "GREEN", "RED"], ["VV", "VH"], allow_no_match=True
        )
    assert torch.equal(out, torch.zeros(2, 2))


def test_band_list_inconsistent_with_the_checkpoint():
    with pytest.raises(BandMismatchError, match=r"has 3 band channels but pretrained_bands lists 2"):
        remap_band_channels(torch.randn(2, 3), torch.zeros(2, 2), ["BLUE", "GREEN"], ["BLUE", "GREEN"])
    with pytest.raises(BandMismatchError, match=r"repeats \['BLUE'\]"):
        remap_band_channels(torch.randn(2, 2), torch.zeros(2, 1), ["BLUE", "blue"], ["BLUE"])


def test_patch_size_mismatch_warns_and_keeps_fresh():
    fresh = torch.zeros(8, 2, 1, 8, 8)
    with pytest.warns(UserWarning, match=r"another patch/tubelet size"):
        out = remap_band_channels(torch.randn(8, 2, 1, 16, 16), fresh, ["A", "B"], ["B", "A"])
    assert torch.equal(out, fresh)


def test_prithvi_checkpoint_onto_other_bands(tmp_path):
    torch.manual_seed(0)
    source = tiny()
    torch.save(source.state_dict(), tmp_path / "six.pt")
    bands = ["NIR_NARROW", HLSBands.RED, "THERMAL", "blue"]
    with pytest.warns(UserWarning, match=r"Bands \['THERMAL'\] are not in"):
        target = tiny(bands=bands, pretrained=True, ckpt_path=tmp_path / "six.pt")
    old, new = source.patch_embed.proj.weight, target.patch_embed.proj.weight
    assert new.shape[1] == 4
    for j, i in [(0, 3), (1, 2), (3, 0)]:
        assert torch.equal(new[:, j], old[:, i])
    assert not any(torch.equal(new[:, 2], old[:, i]) for i in range(6))
    assert torch.equal(target.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert torch.equal(target.patch_embed.proj.bias, source.patch_embed.proj.bias)


def test_prithvi_checkpoint_with_its_own_band_list(tmp_path):
    source = tiny(bands=["VV", "VH"])
    torch.save(source.state_dict(), tmp_path / "sar.pt")
    target = tiny(bands=["VH"], pretrained=True, ckpt_path=tmp_path / "sar.pt", pretrained_bands=["VV", "VH"])
    assert torch.equal(target.patch_embed.proj.weight[:, 0], source.patch_embed.proj.weight[:, 1])
    # as in 1.2, a band list that matches nothing starts the patch embedding from scratch (with a warning)
    with pytest.warns(UserWarning, match=r"None of the model bands \['VH'\].*\['BLUE'.*starts from scratch"):
        fresh = tiny(bands=["VH"], pretrained=True, ckpt_path=tmp_path / "sar.pt", pretrained_bands=HLS6[:2])
    assert torch.equal(fresh.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_prithvi_patch_size_mismatch_warns_and_loads_the_rest(tmp_path):
    source = tiny()
    torch.save(source.state_dict(), tmp_path / "p16.pt")
    with pytest.warns(UserWarning, match=r"'patch_embed\.proj\.weight'.*another patch/tubelet size"):
        target = tiny(patch_size=8, pretrained=True, ckpt_path=tmp_path / "p16.pt")
    assert torch.equal(target.blocks[0].mlp.fc2.weight, source.blocks[0].mlp.fc2.weight)


def test_select_patch_embed_weights_public_helper():
    source, target = tiny(), tiny(bands=["SWIR_2", "GREEN"])
    state = {f"encoder.{k}": v for k, v in source.state_dict().items()}
    result = select_patch_embed_weights(state, target, HLS6, ["SWIR_2", "GREEN"])
    assert "encoder.cls_token" in state and "cls_token" in result  # the prefix is stripped, input untouched
    weight = result["patch_embed.proj.weight"]
    assert torch.equal(weight[:, 0], source.patch_embed.proj.weight[:, 5])
    assert torch.equal(weight[:, 1], source.patch_embed.proj.weight[:, 1])
    assert state["encoder.patch_embed.proj.weight"].shape[1] == 6  # caller's dict untouched
    with pytest.raises(KeyError, match=r"Could not find the patch-embedding weight"):
        select_patch_embed_weights(state, target, HLS6, ["GREEN"], proj_key="stem.weight")


def test_timm_cnn_rgb_checkpoint_onto_six_bands(tmp_path):
    import timm

    torch.manual_seed(0)
    rgb = timm.create_model("resnet18", num_classes=0)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    with pytest.warns(UserWarning, match=r"Bands \['NIR_NARROW', 'SWIR_1', 'SWIR_2'\] are not in"):
        backbone = BACKBONE_REGISTRY.build(
            "timm_resnet18", bands=HLS6, pretrained=True, ckpt_path=tmp_path / "rgb.pth"
        )
    conv = backbone.model.conv1.weight
    assert conv.shape[1] == 6
    for j, i in [(0, 2), (1, 1), (2, 0)]:  # RGB checkpoint order assumed: RED, GREEN, BLUE
        assert torch.equal(conv[:, j], rgb.conv1.weight[:, i])
    assert torch.equal(backbone.model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert [f.shape[1] for f in backbone(torch.randn(1, 6, 64, 64))] == backbone.out_channels


def test_timm_cnn_through_pretrained_cfg_overlay_with_explicit_bands(tmp_path):
    import timm

    source = timm.create_model("resnet18", in_chans=2, num_classes=0)
    torch.save(source.state_dict(), tmp_path / "sar.pth")
    backbone = BACKBONE_REGISTRY.build(
        "resnet18",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(tmp_path / "sar.pth")},
        bands=["VH", "VV"],
        pretrained_bands=["VV", "VH"],
    )
    conv = backbone.model.conv1.weight
    assert torch.equal(conv[:, 0], source.conv1.weight[:, 1]) and torch.equal(
        conv[:, 1], source.conv1.weight[:, 0]
    )


def test_timm_feature_extractor_with_flattened_module_names(tmp_path):
    import timm

    rgb = timm.create_model("convnext_atto", num_classes=0)  # features_only renames stem.0 -> stem_0
    torch.save(rgb.state_dict(), tmp_path / "convnext.pth")
    with pytest.warns(UserWarning, match=r"Bands \['NIR_NARROW'\] are not in"):
        backbone = BACKBONE_REGISTRY.build(
            "timm_convnext_atto",
            bands=["NIR_NARROW", "RED"],
            pretrained=True,
            ckpt_path=tmp_path / "convnext.pth",
        )
    stem = backbone.model.stem_0.weight
    assert torch.equal(stem[:, 1], rgb.stem[0].weight[:, 0])
    assert torch.equal(
        backbone.model.stages_3.blocks[0].conv_dw.weight, rgb.stages[3].blocks[0].conv_dw.weight
    )


def test_select_patch_embed_weights_full_model_keeps_distinct_prefixes():
    source, target = tiny(), tiny(bands=["RED"])
    state = {
        **{f"encoder.{k}": v for k, v in source.state_dict().items()},
        "decoder.mask_token": torch.zeros(1),
    }
    result = select_patch_embed_weights({"state_dict": state}, target, HLS6, ["RED"], encoder_only=False)
    assert set(result) == set(state)
    assert torch.equal(result["encoder.patch_embed.proj.weight"][:, 0], source.patch_embed.proj.weight[:, 2])


def test_select_patch_embed_weights_needs_the_weight():
    from terratorch.models.backbones.select_patch_embed_weights import MissingPatchEmbedError

    with pytest.raises(MissingPatchEmbedError, match="another architecture"):
        select_patch_embed_weights({"weight": torch.zeros(1)}, tiny(), HLS6, HLS6)
