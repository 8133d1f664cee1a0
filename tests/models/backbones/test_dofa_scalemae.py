"""DOFA and Scale-MAE backbones: band wavelengths, features, weight files, errors, and use in a model.

Tiny networks (embed_dim 32-64, a few blocks) stand in for the published sizes, except one
``dofa_small_patch16_224`` built by name through ``EncoderDecoderFactory``; published sizes are only
built on the meta device. Parity with the reference is in ``tests/compat/test_golden_dofa_scalemae.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from terratorch.datasets.bands import HLSBands
from terratorch.models.backbones import dofa_vit, scalemae
from terratorch.models.backbones.dofa_vit import DOFA, DOFAEncoderWrapper, UnknownBandError, get_wavelengths
from terratorch.models.weights import CheckpointMismatchError, PretrainedWeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

TINY_DOFA = {"patch_size": 16, "embed_dim": 32, "depth": 3, "num_heads": 2}
RGB = ["RED", "GREEN", "BLUE"]


def tiny_dofa(bands: list[object], img_size: int = 32, **wrapper: object) -> DOFAEncoderWrapper:
    torch.manual_seed(0)
    network = DOFA(img_size=img_size, **TINY_DOFA)
    return DOFAEncoderWrapper(network, get_wavelengths(bands), **wrapper).eval()


@pytest.fixture
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch hub and Hugging Face caches, downloads off."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TERRATORCH_ALLOW_DOWNLOAD", raising=False)
    return tmp_path


# -- wavelengths ------------------------------------------------------------------------------
def test_band_names_enums_and_numbers_map_to_wavelengths() -> None:
    bands = ["RED", HLSBands.NIR_NARROW, "HLSBands.SWIR_1", "vv", 0.7]
    assert get_wavelengths(bands) == [0.665, 0.864, 1.61, 5.405, 0.7]
    assert dofa_vit.get_wavelenghts is get_wavelengths  # TerraTorch 1.2 spelling
    assert dofa_vit.waves_list["THERMAL_INFRARED_1"] == 10.90


def test_unknown_band_lists_the_known_ones_and_close_matches() -> None:
    with pytest.raises(
        UnknownBandError, match=r"'NIR'.*Did you mean.*NIR_BROAD.*Known bands: \['COASTAL_AEROSOL'"
    ):
        get_wavelengths(["RED", "NIR"])
    with pytest.raises(ValueError, match="non-empty list"):
        get_wavelengths([])
    with pytest.raises(TypeError, match="band name or a wavelength"):
        get_wavelengths([True])


# -- DOFA features ----------------------------------------------------------------------------
def test_dofa_returns_token_maps_of_the_chosen_blocks() -> None:
    model = tiny_dofa(RGB, out_indices=[-2, 0])
    feats = model(torch.randn(2, 3, 32, 32))
    assert model.out_channels == [32, 32]
    assert [f.shape for f in feats] == [(2, 5, 32)] * 2  # class token + 2x2 grid, blocks 0 and 1
    assert not torch.equal(feats[0], feats[1])
    assert len(tiny_dofa(RGB)(torch.randn(1, 3, 32, 32))) == 1  # default: the last block
    with pytest.raises(ValueError, match=r"out_indices .*5 is not a block of this 3-block DOFA"):
        tiny_dofa(RGB, out_indices=[5])


def test_dofa_wavelengths_condition_the_embedding_and_must_match_the_input() -> None:
    x = torch.randn(1, 2, 32, 32)
    optical, sar = tiny_dofa(["RED", "NIR_NARROW"]), tiny_dofa(["VV", "VH"])
    sar.load_state_dict(optical.state_dict())
    with torch.no_grad():
        assert not torch.allclose(optical(x)[0], sar(x)[0])
    with pytest.raises(ValueError, match="3 bands but 2 wavelengths"):
        optical(torch.randn(1, 3, 32, 32))


def test_dofa_resizes_its_position_table_for_other_input_sizes() -> None:
    model = tiny_dofa(RGB, img_size=32)
    torch.nn.init.normal_(model.dofa_model.pos_embed)
    feats = model(torch.randn(1, 3, 64, 48))
    assert feats[0].shape == (1, 1 + 4 * 3, 32)
    assert not model.dofa_model.pos_embed.requires_grad


# -- DOFA weights ------------------------------------------------------------------------------
def test_dofa_loads_a_torchgeo_file_at_another_grid_and_a_saved_encoder(tmp_path: Path) -> None:
    source = DOFA(img_size=224, **TINY_DOFA)
    torch.nn.init.normal_(source.pos_embed)
    published = {k: v for k, v in source.state_dict().items() if not k.startswith(("fc_norm.", "head."))}
    torch.save(published, tmp_path / "dofa.pth")
    target = dofa_vit.load_dofa_weights(DOFA(img_size=32, **TINY_DOFA), ckpt_data=tmp_path / "dofa.pth")
    assert torch.equal(target.blocks[2].mlp.fc2.weight, source.blocks[2].mlp.fc2.weight)
    expected = dofa_vit.resize_pos_embed(source.pos_embed, (2, 2), (14, 14), "bilinear")
    assert torch.allclose(target.pos_embed, expected)
    # a fine-tuned encoder saved by Lightning (model.encoder.dofa_model.*) loads back
    encoder = DOFAEncoderWrapper(target, get_wavelengths(RGB))
    torch.save(
        {"state_dict": {f"model.encoder.{k}": v for k, v in encoder.state_dict().items()}},
        tmp_path / "ft.ckpt",
    )
    again = dofa_vit.load_dofa_weights(DOFA(img_size=32, **TINY_DOFA), ckpt_data=str(tmp_path / "ft.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), target.state_dict().values()))


def test_dofa_file_without_the_blocks_is_an_error(tmp_path: Path) -> None:
    state = {
        k: v for k, v in DOFA(img_size=32, **TINY_DOFA).state_dict().items() if not k.startswith("blocks.2")
    }
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing \(blocks\.2\."):
        dofa_vit.load_dofa_weights(DOFA(img_size=32, **TINY_DOFA), ckpt_data=tmp_path / "cut.pth")


@pytest.mark.usefixtures("offline_caches")
def test_dofa_pretrained_without_a_file_names_what_it_looked_for(tmp_path: Path) -> None:
    with torch.device("meta"):
        with pytest.raises(PretrainedWeightsNotFoundError, match=r"no published weights.*ckpt_data="):
            BACKBONE_REGISTRY.build("dofa_small_patch16_224", model_bands=RGB, pretrained=True)
        with pytest.raises(PretrainedWeightsNotFoundError, match=r"dofa_base_patch16_224-a0275954\.pth"):
            BACKBONE_REGISTRY.build("dofa_base_patch16_224", model_bands=RGB, pretrained=True)
        missing = tmp_path / "nowhere.pth"
        with pytest.raises(PretrainedWeightsNotFoundError, match=r"nowhere\.pth"):
            BACKBONE_REGISTRY.build(
                "dofa_large_patch16_224", model_bands=RGB, pretrained=True, ckpt_data=missing
            )
        with pytest.raises(TypeError, match="fixes embed_dim"):
            BACKBONE_REGISTRY.build("dofa_base_patch16_224", model_bands=RGB, embed_dim=64)
        large = BACKBONE_REGISTRY.build(
            "dofa_large_patch16_224", model_bands=RGB, out_indices=[5, 11, 17, 23]
        )
    assert large.out_channels == [1024] * 4
    assert TERRATORCH_BACKBONE_REGISTRY.metadata("dofa_large_patch16_224")["url"].endswith("-0ff904d3.pth")


def test_dofa_small_in_an_encoder_decoder_model() -> None:
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory

    model = (
        EncoderDecoderFactory()
        .build_model(
            "segmentation",
            backbone="dofa_small_patch16_224",
            backbone_model_bands=["BLUE", "GREEN", "RED", "NIR_NARROW"],
            backbone_img_size=32,
            backbone_out_indices=[2, 5, 8, 11],
            necks=[{"name": "ReshapeTokensToImage"}, {"name": "LearnedInterpolateToPyramidal"}],
            decoder="UperNetDecoder",
            decoder_channels=16,
            num_classes=3,
        )
        .eval()
    )
    with torch.no_grad():
        out = model(torch.randn(1, 4, 32, 32)).output
    assert out.shape == (1, 3, 32, 32)


# -- Scale-MAE ---------------------------------------------------------------------------------
@pytest.fixture
def tiny_vit() -> Iterator[str]:
    @scalemae.register_scalemae_model
    def tiny_test_vit(**kwargs: object) -> scalemae.VisionTransformer:
        return scalemae.VisionTransformer(embed_dim=32, depth=2, num_heads=2, **kwargs)

    yield "tiny_test_vit"
    scalemae.scalemae_model_registry.pop("tiny_test_vit", None)


def test_scalemae_resolution_and_grid_shape_the_features(tiny_vit: str) -> None:
    model = scalemae.create_model(tiny_vit, img_size=32, out_indices=[0, -1]).eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        default, coarse = model(x), model(x, input_res=torch.tensor([1.0, 10.0]))
    assert [f.shape for f in default] == [(2, 1 + 6, 32)] * 2
    assert torch.allclose(default[1][0], coarse[1][0]) and not torch.allclose(default[1][1], coarse[1][1])
    maps = model.prepare_features_for_image_model(default)
    assert [m.shape for m in maps] == [(2, 32, 2, 3)] * 2
    assert torch.equal(maps[0][0, :, 1, 2], default[0][0, 1 + 5])
    table = scalemae.get_2d_sincos_pos_embed_with_resolution(8, 3, torch.tensor([2.0]), cls_token=True)
    assert table.shape == (1, 10, 8) and torch.count_nonzero(table[0, 0]) == 0
    with pytest.raises(ValueError, match="input_res has 3 values for a batch of 2"):
        model(x, input_res=[1.0, 2.0, 3.0])


def test_scalemae_checkpoint_bands_are_remapped(tiny_vit: str, tmp_path: Path) -> None:
    source = scalemae.create_model(tiny_vit)
    torch.save({"model": source.state_dict()}, tmp_path / "scalemae.pth")
    bands = ["BLUE", "NIR_NARROW", "RED"]
    with pytest.warns(UserWarning, match="NIR_NARROW"):
        model = scalemae.create_model(tiny_vit, ckpt_path=tmp_path / "scalemae.pth", bands=bands, img_size=64)
    weight, rgb = model.patch_embed.proj.weight, source.patch_embed.proj.weight
    assert torch.equal(weight[:, 0], rgb[:, 2]) and torch.equal(weight[:, 2], rgb[:, 0])
    assert torch.equal(model.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    assert model.pos_embed.shape == (1, 17, 32) and not model.pos_embed.requires_grad
    with pytest.raises(
        ValueError, match=r"'vit_bse_patch16' is not registered.*Did you mean \['vit_base_patch16'"
    ):
        scalemae.create_model("vit_bse_patch16")


@pytest.mark.usefixtures("offline_caches")
def test_scalemae_backbones_in_the_registry() -> None:
    with torch.device("meta"):
        model = BACKBONE_REGISTRY.build(
            "scalemae_huge_patch14", model_bands=[*RGB, "NIR_NARROW"], out_indices=[7, -1]
        )
        assert model.patch_embed.proj.weight.shape == (1280, 4, 14, 14) and model.out_channels == [1280] * 2
        with pytest.raises(
            PretrainedWeightsNotFoundError, match=r"vit_large_patch16_224_fmow_rgb_scalemae-98ed9821\.pth"
        ):
            BACKBONE_REGISTRY.build("scalemae_large_patch16", pretrained=True)
        with pytest.raises(
            PretrainedWeightsNotFoundError, match="scalemae_base_patch16 has no published weights"
        ):
            BACKBONE_REGISTRY.build("scalemae_base_patch16", pretrained=True)
