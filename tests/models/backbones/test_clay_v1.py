"""Clay v1 backbone (``clay_v1_base``): building, bands, weights, VPT and use in the model layer.

Full-size builds use a 32x32 ``img_size`` (16 patches) to stay fast; the module tests use tiny widths.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from terratorch.datasets.bands import HLSBands
from terratorch.models.backbones.clay_v1.modules import (
    WAVELENGTHS,
    Datacuber,
    DynamicEmbedding,
    Encoder,
    Transformer,
    band_wavelengths,
)
from terratorch.models.backbones.clay_v1.utils import posemb_sincos_1d, posemb_sincos_2d_with_gsd
from terratorch.models.weights import CheckpointMismatchError, PretrainedWeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY

SIZE = 32


@pytest.fixture(scope="module")
def clay() -> torch.nn.Module:
    torch.manual_seed(0)
    return BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE).eval()


def _clay_ckpt(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    state = {
        "model.encoder." + k.removeprefix("clay_encoder."): v.clone()
        for k, v in model.state_dict().items()
        if "vpt_" not in k
    }
    state["model.decoder.mask_patch"] = torch.zeros(3)  # the MAE decoder is not part of the backbone
    torch.save({"state_dict": state}, path)
    return state


# ---- bands --------------------------------------------------------------------------------------
def test_band_names_enums_and_float_wavelengths() -> None:
    assert band_wavelengths(["blue", HLSBands.NIR_NARROW, "SWIR_1", 0.7]) == [
        WAVELENGTHS["blue"],
        WAVELENGTHS["NIR_NARROW"],
        WAVELENGTHS["SWIR_1"],
        0.7,
    ]


def test_unknown_band_is_named_with_suggestion_and_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, bands=["blue", "gren", "red"])
    message = str(info.value)
    assert "'gren'" in message and "bands[1]" in message
    assert "did you mean 'green'" in message.lower()
    assert "swir16" in message and "NIR_NARROW" in message  # the valid names are listed


def test_channels_must_match_bands(clay: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="4 channels but 6 band wavelengths"):
        clay(torch.randn(1, 4, SIZE, SIZE))


def test_datacuber_defaults_and_waves_override() -> None:
    cube = Datacuber(bands=["red", "nir"])(torch.randn(3, 2, 8, 8))
    assert cube["time"].shape == (3, 4) and cube["latlon"].shape == (3, 4) and cube["gsd"] == 1.0
    assert torch.allclose(cube["waves"], torch.tensor([WAVELENGTHS["red"], WAVELENGTHS["nir"]]))
    waves = torch.tensor([0.5, 0.6, 0.7])
    assert Datacuber()(torch.randn(1, 3, 8, 8), waves=waves)["waves"] is waves
    with pytest.raises(ValueError, match="no bands"):
        Datacuber()(torch.randn(1, 3, 8, 8))


# ---- shapes and bad input -----------------------------------------------------------------------
def test_features_out_channels_and_image_map(clay: torch.nn.Module) -> None:
    with torch.no_grad():
        feats = clay(torch.randn(2, 6, SIZE, SIZE))
    assert len(feats) == 12 and clay.out_channels == [768] * 12
    assert all(f.shape == (2, 1 + (SIZE // 8) ** 2, 768) for f in feats)
    maps = clay.prepare_features_for_image_model(feats)
    assert len(maps) == 12
    image = maps[-1]
    assert image.shape == (2, 768, SIZE // 8, SIZE // 8)
    assert torch.equal(image[:, :, 0, 1], feats[-1][:, 2])  # token order is row-major, class token dropped


def test_out_indices_select_blocks_and_are_checked() -> None:
    model = BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, out_indices=[3, -1])
    assert model.out_channels == [768, 768]
    with torch.no_grad():
        assert len(model(torch.randn(1, 6, SIZE, SIZE))) == 2
    with pytest.raises(ValueError, match=r"out_indices \[12\] out of range"):
        BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, out_indices=[12])


def test_other_image_size_and_rank_are_explained(clay: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="img_size"):
        clay(torch.randn(1, 6, 2 * SIZE, 2 * SIZE))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        clay(torch.randn(1, 6, 2, SIZE, SIZE))


def test_metadata_must_have_four_values_each() -> None:
    enc = Encoder(
        mask_ratio=0.0, patch_size=4, shuffle=False, dim=32, depth=1, heads=2, dim_head=8, mlp_ratio=2
    )
    cube = Datacuber(bands=["red", "green"])(
        torch.randn(1, 2, 8, 8), time=torch.zeros(1, 2), latlon=torch.zeros(1, 2)
    )
    with pytest.raises(ValueError, match="4 values per sample"):
        enc(cube)


def test_unknown_arguments_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, features_only=True, no_such_option=1)
    assert "no_such_option" in caplog.text and "features_only" not in caplog.text


# ---- modules ------------------------------------------------------------------------------------
def test_masked_encoder_keeps_the_unmasked_share() -> None:
    torch.manual_seed(0)
    enc = Encoder(
        mask_ratio=0.5, patch_size=4, shuffle=True, dim=32, depth=2, heads=2, dim_head=8, mlp_ratio=2
    )
    cube = Datacuber(bands=["red", "green", "blue"])(torch.randn(2, 3, 16, 16))
    out, unmasked, masked, mask = enc(cube)
    assert len(out) == 2 and out[-1].shape == (2, 1 + 8, 32)
    assert unmasked.shape == masked.shape == (2, 8) and mask.shape == (2, 16)
    assert mask.sum(dim=1).tolist() == [8.0, 8.0]
    assert torch.equal(mask.gather(1, masked), torch.ones(2, 8))


def test_dynamic_embedding_works_for_any_band_count() -> None:
    embed = DynamicEmbedding(wave_dim=16, num_latent_tokens=4, patch_size=4, embed_dim=24)
    for channels in (1, 3, 7):
        tokens, waves = embed(torch.randn(2, channels, 8, 8), torch.linspace(0.4, 2.0, channels))
        assert tokens.shape == (2, 4, 24) and waves.shape == (channels, 16)


def test_vpt_prompts_do_not_change_token_count() -> None:
    trans = Transformer(dim=16, depth=3, heads=2, dim_head=8, mlp_dim=32, vpt=True, vpt_n_tokens=5)
    out = trans(torch.randn(2, 7, 16))
    assert [o.shape for o in out] == [torch.Size([2, 7, 16])] * 3
    with pytest.raises(ValueError, match="vpt_n_tokens"):
        Transformer(dim=16, depth=1, heads=2, dim_head=8, mlp_dim=32, vpt=True)


def test_posemb_shapes_and_width_checks() -> None:
    assert posemb_sincos_2d_with_gsd(3, 3, 16, gsd=10.0).shape == (9, 16)
    assert posemb_sincos_1d(torch.tensor([0.5, 1.5]), 8).shape == (2, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        posemb_sincos_2d_with_gsd(2, 2, 6)


# ---- weights ------------------------------------------------------------------------------------
def test_ckpt_path_loads_the_encoder_and_freezes_it(clay: torch.nn.Module, tmp_path: Path) -> None:
    state = _clay_ckpt(clay, tmp_path / "clay.ckpt")
    loaded = BACKBONE_REGISTRY.build(
        "clay_v1_base", img_size=SIZE, ckpt_path=str(tmp_path / "clay.ckpt"), vpt=True, vpt_n_tokens=2
    )
    for key, value in loaded.state_dict().items():
        if "vpt_" not in key:
            assert torch.equal(value, state["model.encoder." + key.removeprefix("clay_encoder.")]), key
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable and all("vpt_prompt_embeddings" in n for n in trainable)


def test_missing_ckpt_path_names_the_file() -> None:
    with pytest.raises(PretrainedWeightsNotFoundError, match="does not exist") as info:
        BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, ckpt_path="/nonexistent/clay-v1-base.ckpt")
    assert "/nonexistent/clay-v1-base.ckpt" in str(info.value)


def test_checkpoint_without_clay_encoder_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {"backbone.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointMismatchError, match="no Clay v1 encoder tensors"):
        BACKBONE_REGISTRY.build("clay_v1_base", img_size=SIZE, ckpt_path=str(tmp_path / "other.ckpt"))


def test_pretrained_without_cache_names_repo_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        BACKBONE_REGISTRY.build("clay_v1_base", pretrained=True, img_size=SIZE)
    assert "made-with-clay/Clay-legacy" in str(info.value) and "clay-v1-base.ckpt" in str(info.value)


def test_pretrained_reads_the_published_file_from_the_hf_cache(
    clay: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--made-with-clay--Clay-legacy"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "v1").mkdir(parents=True)
    state = _clay_ckpt(clay, repo / "snapshots" / commit / "v1" / "clay-v1-base.ckpt")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = BACKBONE_REGISTRY.build("clay_v1_base", pretrained=True, img_size=SIZE)
    key = "clay_encoder.patch_embedding.weight_generator.fc_weight.weight"
    assert torch.equal(loaded.state_dict()[key], state["model.encoder." + key.removeprefix("clay_encoder.")])


# ---- in the model layer -------------------------------------------------------------------------
def test_vpt_in_a_segmentation_model_trains_only_the_prompts() -> None:
    from terratorch.models import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone="clay_v1_base",
        decoder="FCNDecoder",
        backbone_bands=["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
        backbone_img_size=SIZE,
        backbone_vpt=True,
        backbone_vpt_n_tokens=4,
        num_classes=3,
    )
    model.freeze_encoder()
    with torch.no_grad():
        assert model(torch.randn(1, 6, SIZE, SIZE)).output.shape == (1, 3, SIZE, SIZE)
    assert sum(p.numel() for p in model.encoder.parameters() if p.requires_grad) == 12 * 4 * 768


def test_temporal_wrapper_pools_clay_tokens(clay: torch.nn.Module) -> None:
    from terratorch.models.temporal_wrapper import TemporalWrapper

    wrapper = TemporalWrapper(clay, pooling="mean", n_timestamps=2)
    with torch.no_grad():
        out = wrapper(torch.randn(1, 6, 2, SIZE, SIZE))
    assert len(out) == 12 and out[0].shape == (1, 1 + (SIZE // 8) ** 2, 768)
