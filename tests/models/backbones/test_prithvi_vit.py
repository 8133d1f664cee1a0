"""Prithvi EO ViT backbones: registry, shapes of every variant, inputs, coordinates, options."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from terratorch.models.backbones.pos_embed import resize_pos_embed, sincos_1d, sincos_3d, split_3d_dims
from terratorch.models.backbones.prithvi_vit import PRETRAINED_BANDS, PrithviViT, prithvi_cfgs
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

API_NAMES = [
    "prithvi_eo_tiny",
    "prithvi_eo_v1_100",
    "prithvi_eo_v2_tiny_tl",
    "prithvi_eo_v2_100_tl",
    "prithvi_eo_v2_300",
    "prithvi_eo_v2_300_tl",
    "prithvi_eo_v2_600",
    "prithvi_eo_v2_600_tl",
]
# Published architectures: (embed_dim, depth, num_heads, patch size, coords_encoding).
PUBLISHED = {
    "prithvi_eo_tiny": (256, 4, 4, 16, []),
    "prithvi_eo_v1_100": (768, 12, 12, 16, []),
    "prithvi_eo_v2_tiny_tl": (192, 12, 3, 16, ["time", "location"]),
    "prithvi_eo_v2_100_tl": (768, 12, 12, 16, ["time", "location"]),
    "prithvi_eo_v2_300": (1024, 24, 16, 16, []),
    "prithvi_eo_v2_300_tl": (1024, 24, 16, 16, ["time", "location"]),
    "prithvi_eo_v2_600": (1280, 32, 16, 14, []),
    "prithvi_eo_v2_600_tl": (1280, 32, 16, 14, ["time", "location"]),
}
# Published encoder sizes in millions of parameters (ViT-S/B/L/H-like), with a small margin.
PUBLISHED_MILLIONS = {
    "prithvi_eo_v1_100": (85, 90),
    "prithvi_eo_v2_300": (300, 306),
    "prithvi_eo_v2_600": (628, 636),
}


def tiny(**kwargs):
    """A 2-block tiny encoder on 32 px inputs (fast)."""
    options = {"img_size": 32, "depth": 2}
    options.update(kwargs)
    return BACKBONE_REGISTRY.build("prithvi_eo_tiny", **options)


def test_api_names_are_registered_and_listed_without_building():
    for name in API_NAMES:
        assert name in TERRATORCH_BACKBONE_REGISTRY
        assert f"terratorch_{name}" in BACKBONE_REGISTRY
    assert "prithvi_eo_v2_100" not in TERRATORCH_BACKBONE_REGISTRY  # a config only, as in 1.2
    meta = TERRATORCH_BACKBONE_REGISTRY.metadata("prithvi_eo_v2_600")
    assert meta["patch_size"] == 14 and meta["embed_dim"] == 1280 and meta["bands"] == PRETRAINED_BANDS


def test_listing_metadata_does_not_import_the_models():
    code = (
        "import sys\n"
        "from terratorch.registry import list_backbones\n"
        "entries = {e.name: e.metadata for e in list_backbones('prithvi_eo_*')}\n"
        "assert entries['prithvi_eo_v2_300']['depth'] == 24, entries\n"
        "assert 'terratorch.models.backbones.prithvi_vit' not in sys.modules\n"
        "assert 'timm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", API_NAMES)
def test_every_variant_builds_with_published_shapes(name):
    arch = TERRATORCH_BACKBONE_REGISTRY.metadata(name)  # read without building
    with torch.device("meta"):  # no memory, no init cost: shapes only
        model = BACKBONE_REGISTRY.build(name)
        features = model(torch.empty(2, 6, 224, 224))
    grid = 224 // arch["patch_size"]
    assert len(features) == arch["depth"] == len(model.out_channels)
    assert all(f.shape == (2, 1 + grid * grid, arch["embed_dim"]) for f in features)
    maps = model.prepare_features_for_image_model(features)
    assert maps[-1].shape == (2, model.out_channels[-1], grid, grid)
    assert model.patch_embed.patch_size == (1, arch["patch_size"], arch["patch_size"])
    assert model.temporal_encoding == ("time" in arch.get("coords_encoding", []))
    assert model.pos_embed.shape == (1, 1 + grid * grid, arch["embed_dim"])
    assert "pos_embed" in model.state_dict()
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    low, high = PUBLISHED_MILLIONS.get(name, (0, float("inf")))
    assert low <= millions <= high


def test_layer_norms_use_the_published_eps():
    model = tiny()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-5 for m in norms)


def test_forward_returns_selected_block_tokens_and_last_is_normed():
    model = tiny(out_indices=[0, -1]).eval()
    x = torch.randn(2, 6, 32, 32)
    first, last = model(x)
    assert model.out_indices == [0, -1]
    assert model.out_channels == [256, 256]  # one entry per returned feature
    pos = model.pos_embed
    patches = model.patch_embed(x.unsqueeze(2)) + pos[:, 1:]
    tokens = torch.cat([(model.cls_token + pos[:, :1]).expand(2, -1, -1), patches], 1)
    after_first = model.blocks[0](tokens)
    torch.testing.assert_close(first, after_first)
    torch.testing.assert_close(last, model.norm(model.blocks[1](after_first)))


def test_class_forward_without_out_indices_is_the_masked_pass():
    model = PrithviViT(img_size=32, in_chans=6, embed_dim=64, depth=1, num_heads=2).eval()
    latent, mask, ids_restore = model(torch.randn(2, 6, 32, 32), mask_ratio=0.5)
    assert latent.shape == (2, 1 + 2, 64) and mask.shape == ids_restore.shape == (2, 4)
    assert mask.sum().item() == 4


def test_four_d_and_single_frame_five_d_inputs_agree():
    model = tiny().eval()
    x = torch.randn(1, 6, 32, 32)
    torch.testing.assert_close(model(x)[-1], model(x.unsqueeze(2))[-1])


def test_multi_frame_input_and_token_to_map_layout():
    model = tiny(num_frames=3).eval()
    x = torch.randn(2, 6, 3, 32, 48)  # non-square: grid (3, 2, 3)
    tokens = model(x)[-1]
    assert tokens.shape == (2, 1 + 3 * 2 * 3, 256)
    assert model.out_channels[-1] == 256 * 3
    (image,) = model.prepare_features_for_image_model([tokens])
    assert image.shape == (2, 256 * 3, 2, 3)
    for e, t, i, j in [(0, 0, 0, 0), (5, 2, 1, 2), (255, 1, 0, 1)]:  # channels frame-major: t * E + e
        assert image[1, t * 256 + e, i, j] == tokens[1, 1 + t * 6 + i * 3 + j, e]


def test_other_input_sizes_resize_the_stored_position_table():
    model = tiny().eval()
    table = model.interpolate_pos_encoding((1, 64, 32))
    expected = torch.nn.functional.interpolate(
        model.pos_embed[:, 1:].reshape(1, 2, 2, 256).permute(0, 3, 1, 2),
        size=(4, 2),
        mode="bicubic",
        align_corners=True,
    )
    torch.testing.assert_close(table[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 8, 256))
    # another frame count recomputes the sin-cos table
    torch.testing.assert_close(model.interpolate_pos_encoding((3, 32, 32)), sincos_3d(256, (3, 2, 2)))
    assert resize_pos_embed(model.pos_embed, (1, 2, 2), (1, 2, 2)) is model.pos_embed


def test_sincos_3d_table_layout():
    dim = 64
    w_dim, h_dim, t_dim = split_3d_dims(dim)
    table = sincos_3d(dim, (2, 3, 4))
    assert table.shape == (1, 1 + 24, dim)
    assert torch.count_nonzero(table[0, 0]) == 0
    t, i, j = 1, 2, 3
    row = table[0, 1 + t * 12 + i * 4 + j]
    torch.testing.assert_close(row[:w_dim], sincos_1d(w_dim, torch.tensor([j])).float()[0])
    torch.testing.assert_close(row[w_dim : w_dim + h_dim], sincos_1d(h_dim, torch.tensor([i])).float()[0])
    torch.testing.assert_close(row[w_dim + h_dim :], sincos_1d(t_dim, torch.tensor([t])).float()[0])


def test_temporal_and_location_coordinates_change_the_output():
    model = BACKBONE_REGISTRY.build("prithvi_eo_v2_tiny_tl", img_size=32, depth=1, num_frames=2).eval()
    x = torch.randn(2, 6, 2, 32, 32)
    dates = torch.tensor([[[2020.0, 10.0], [2020.0, 200.0]]] * 2)
    other_dates = torch.tensor([[[2021.0, 10.0], [2021.0, 100.0]]] * 2)
    where = torch.tensor([[45.0, 7.0], [-10.0, 120.0]])
    plain = model(x)[-1]
    with_dates = model(x, temporal_coords=dates)[-1]
    assert not torch.allclose(plain, with_dates)
    assert not torch.allclose(with_dates, model(x, temporal_coords=other_dates)[-1])
    assert not torch.allclose(plain, model(x, location_coords=where)[-1])
    no_coords = BACKBONE_REGISTRY.build(
        "prithvi_eo_v2_tiny_tl", img_size=32, depth=1, num_frames=2, coords_encoding=[]
    )
    assert not hasattr(no_coords, "temporal_embed_enc")


def test_freeze_stops_all_gradients_but_prompts():
    model = tiny()
    model.freeze()
    assert not any(p.requires_grad for p in model.parameters())
    prompted = tiny(vpt=True, vpt_n_tokens=3)
    prompted.freeze()
    trainable = [n for n, p in prompted.named_parameters() if p.requires_grad]
    assert trainable and all("vpt_prompt_embeddings" in n for n in trainable)
    assert prompted(torch.randn(1, 6, 32, 32))[-1].shape == (1, 5, 256)


def test_bands_set_input_channels():
    model = tiny(bands=["RED", "GREEN", "BLUE"])
    assert model.in_chans == 3 and model.model_bands == ["RED", "GREEN", "BLUE"]
    assert model.pretrained_bands == PRETRAINED_BANDS
    assert model(torch.randn(1, 3, 32, 32))[-1].shape == (1, 5, 256)
    assert tiny(bands=[(0, 3)]).in_chans == 4  # inclusive band intervals


def test_config_options_of_the_reference_are_accepted():
    model = tiny(drop_path=0.1, pretrain_img_size=32, ckpt_path=None, encoder_only=True)
    assert model.blocks[0].drop_path1.drop_prob == 0.1
    with pytest.raises(ValueError, match="pretrained_cfg_overlay was removed"):
        tiny(pretrained_cfg_overlay={"file": "x.pt"})
    with pytest.raises(ValueError, match=r"ViT Adapter not available for variant prithvi_eo_tiny"):
        tiny(vit_adapter=True)
    adapter = "prithvi_eo_v2_300"
    with pytest.raises(ValueError, match="only supports encoder_only=True"):
        BACKBONE_REGISTRY.build(adapter, vit_adapter=True, encoder_only=False)
    with pytest.raises(ImportError, match="MultiScaleDeformableAttention"):
        BACKBONE_REGISTRY.build(adapter, vit_adapter=True)


def test_out_channels_follow_the_selected_blocks():
    model = tiny(depth=4, out_indices=[1, 2, 3])
    assert model.out_channels == [256] * 3
    assert len(model(torch.randn(1, 6, 32, 32))) == 3
    assert tiny(depth=4).out_channels == [256] * 4
    assert PrithviViT(img_size=32, embed_dim=64, depth=3, num_heads=4, out_indices=[2]).out_channels == [64]


def test_configs_match_the_published_variants():
    for name in API_NAMES:
        cfg, meta = prithvi_cfgs[name], TERRATORCH_BACKBONE_REGISTRY.metadata(name)
        embed_dim, depth, heads, patch, coords = PUBLISHED[name]
        assert (cfg["embed_dim"], cfg["depth"], cfg["num_heads"]) == (embed_dim, depth, heads), name
        assert cfg["patch_size"] == [1, patch, patch] and cfg["coords_encoding"] == coords, name
        assert (meta["embed_dim"], meta["depth"], meta["patch_size"]) == (embed_dim, depth, patch), name
        assert meta.get("coords_encoding", []) == coords, name


def test_works_in_encoder_decoder_factory_with_vit_necks():
    from terratorch.models import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(
        "segmentation",
        backbone="prithvi_eo_tiny",
        decoder="UperNetDecoder",
        backbone_img_size=32,
        backbone_bands=PRETRAINED_BANDS,
        backbone_drop_path=0.1,
        backbone_pretrain_img_size=32,
        necks=[
            {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
            {"name": "ReshapeTokensToImage"},
            {"name": "LearnedInterpolateToPyramidal"},
        ],
        num_classes=3,
    )
    out = model(torch.randn(2, 6, 40, 40)).output  # not a multiple of 16: padded then cropped back
    assert out.shape == (2, 3, 40, 40)


def test_typical_prithvi_model_factory_config_passes_coordinates():
    from terratorch.models import PrithviModelFactory

    model = (
        PrithviModelFactory()
        .build_model(
            "segmentation",
            backbone="prithvi_eo_v2_300_tl",
            decoder="UperNetDecoder",
            bands=PRETRAINED_BANDS,
            num_classes=2,
            pretrained=False,
            num_frames=1,
            backbone_depth=4,  # the published 24 blocks are not needed to check the wiring
            backbone_img_size=32,
            necks=[
                {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
                {"name": "ReshapeTokensToImage"},
                {"name": "LearnedInterpolateToPyramidal"},
            ],
        )
        .eval()
    )
    x = torch.randn(1, 6, 32, 32)
    plain = model(x).output
    dated = model(
        x, temporal_coords=torch.tensor([[[2020.0, 100.0]]]), location_coords=torch.ones(1, 2)
    ).output
    assert plain.shape == dated.shape == (1, 2, 32, 32)
    assert not torch.allclose(plain, dated)


# ---- bad input -----------------------------------------------------------------------------
def test_four_d_input_needs_one_frame():
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\) input \(or \(B, C, H, W\) with num_frames=1\)"):
        tiny(num_frames=2)(torch.randn(1, 6, 32, 32))


def test_image_smaller_than_one_patch():
    with pytest.raises(ValueError, match=r"larger than the nominal input"):
        PrithviViT(img_size=8, embed_dim=32, depth=1, num_heads=2)


def test_input_not_a_multiple_of_the_patch_warns_and_drops_the_border():
    with pytest.warns(UserWarning, match=r"not divisible by the patch size"):
        out = tiny()(torch.randn(1, 6, 33, 32))
    assert out[-1].shape == (1, 5, 256)


def test_wrong_channel_count():
    with pytest.raises(ValueError, match=r"4 channels, the model expects in_chans=6"):
        tiny()(torch.randn(1, 4, 32, 32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"coords_encoding \['date'\] not understood.*'time', 'location'"):
        tiny(coords_encoding=["date"])
    with pytest.raises(ValueError, match=r"out_indices \[7\] out of range for depth 2"):
        tiny(out_indices=[7])
    with pytest.raises(ValueError, match="out_indices provided for a MAE model"):
        BACKBONE_REGISTRY.build("prithvi_eo_tiny", out_indices=[0], encoder_only=False)
    with pytest.raises(AssertionError, match="out_indices provided for a MAE model"):  # 1.2's exception type
        BACKBONE_REGISTRY.build("prithvi_eo_tiny", out_indices=[0], encoder_only=False)


def test_adapter_checkpoint_filter_keeps_adapter_layers_and_drops_cls_and_norm():
    from terratorch.models.backbones.prithvi_vit import checkpoint_filter_fn_vit_adapter, prithvi_adapter_cfgs

    assert set(prithvi_adapter_cfgs) == {"prithvi_eo_v1_100", "prithvi_eo_v2_300", "prithvi_eo_v2_300_tl"}
    assert prithvi_adapter_cfgs["prithvi_eo_v2_300"]["interaction_indexes"][-1] == [18, 23]

    class WithAdapter(PrithviViT):
        extra_layers = ("level_embed", "spm")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.level_embed = torch.nn.Parameter(torch.full((4, 64), 7.0))
            self.spm = torch.nn.Linear(64, 64)

    model = WithAdapter(img_size=32, embed_dim=64, depth=1, num_heads=4, in_chans=6)
    source = PrithviViT(img_size=32, embed_dim=64, depth=1, num_heads=4, in_chans=6)
    ckpt = {f"encoder.{k}": v for k, v in source.state_dict().items()}
    ckpt["decoder.decoder_embed.weight"] = torch.zeros(2, 2)
    state = checkpoint_filter_fn_vit_adapter(ckpt, model, PRETRAINED_BANDS, PRETRAINED_BANDS)
    assert "cls_token" not in state and "norm.weight" not in state
    assert not any(k.startswith("decoder") for k in state)
    torch.testing.assert_close(state["level_embed"], model.level_embed.detach())
    assert "spm.weight" in state
    torch.testing.assert_close(state["blocks.0.attn.qkv.weight"], source.blocks[0].attn.qkv.weight)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert sorted(missing) == ["cls_token", "norm.bias", "norm.weight"] and not unexpected
