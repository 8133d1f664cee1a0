"""Prithvi EO ViT backbones: registry, shapes of every variant, 3-D inputs, coordinates, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from terratorch.models.backbones.pos_embed import sincos_1d, sincos_3d, split_3d_dims
from terratorch.models.backbones.prithvi_vit import PRETRAINED_BANDS, PrithviViT
from terratorch.models.backbones.vit_layers import Attention
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY
from terratorch.registry.manifest import PRITHVI_VARIANTS

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
    arch = PRITHVI_VARIANTS[name]
    with torch.device("meta"):  # no memory, no init cost: shapes only
        model = BACKBONE_REGISTRY.build(name)
        features = model(torch.empty(2, 6, 224, 224))
    grid = 224 // arch["patch_size"]
    assert len(features) == arch["depth"] == len(model.out_channels)
    assert all(f.shape == (2, 1 + grid * grid, arch["embed_dim"]) for f in features)
    maps = model.prepare_features_for_image_model(features)
    assert maps[-1].shape == (2, model.out_channels[-1], grid, grid)
    assert model.patch_size == arch["patch_size"]
    assert model.temporal_encoding == ("time" in arch.get("coords_encoding", []))
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    low, high = PUBLISHED_MILLIONS.get(name, (0, float("inf")))
    assert low <= millions <= high


def test_forward_returns_selected_block_tokens_and_last_is_normed():
    model = tiny(out_indices=[0, -1]).eval()
    x = torch.randn(2, 6, 32, 32)
    first, last = model(x)
    assert model.out_channels == [256, 256]
    tokens = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(2, -1, -1), model.embed(x)[0]], 1)
    after_first = model.blocks[0](tokens)
    torch.testing.assert_close(first, after_first)
    torch.testing.assert_close(last, model.norm(model.blocks[1](after_first)))


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
    for e, t, i, j in [(0, 0, 0, 0), (5, 2, 1, 2), (255, 1, 0, 1)]:
        assert image[1, e * 3 + t, i, j] == tokens[1, 1 + t * 6 + i * 3 + j, e]


def test_other_input_sizes_use_recomputed_position_tables():
    model = tiny().eval()
    x = torch.randn(1, 6, 64, 32)
    tokens, _, grid = model.embed(x)
    assert grid == (1, 4, 2)
    patches, _ = model.patch_embed(x.unsqueeze(2))
    torch.testing.assert_close(tokens, patches + sincos_3d(256, (1, 4, 2))[:, 1:])


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


def test_attention_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4)
    x = torch.randn(2, 5, 32)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)
    weights = F.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(attn(x), expected)


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


def test_freeze_stops_all_gradients():
    model = tiny()
    model.freeze()
    assert not any(p.requires_grad for p in model.parameters())


def test_bands_set_input_channels():
    model = tiny(bands=["RED", "GREEN", "BLUE"])
    assert model.in_chans == 3 and model.bands == ["RED", "GREEN", "BLUE"]
    assert model(torch.randn(1, 3, 32, 32))[-1].shape == (1, 5, 256)


def test_works_in_encoder_decoder_factory_with_vit_necks():
    from terratorch.models import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(
        "segmentation",
        backbone="prithvi_eo_tiny",
        decoder="UperNetDecoder",
        backbone_img_size=32,
        backbone_bands=PRETRAINED_BANDS,
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
def test_num_frames_inconsistent_with_input():
    with pytest.raises(ValueError, match=r"built with num_frames=2"):
        tiny(num_frames=2)(torch.randn(1, 6, 32, 32))
    with pytest.raises(ValueError, match=r"has 3 frames .* num_frames=1"):
        tiny()(torch.randn(1, 6, 3, 32, 32))


def test_image_smaller_than_one_patch():
    with pytest.raises(ValueError, match=r"8x8 is smaller than one 16x16 patch"):
        tiny()(torch.randn(1, 6, 8, 8))
    with pytest.raises(ValueError, match=r"img_size/num_frames: image size 8x8 is smaller"):
        PrithviViT(img_size=8, embed_dim=32, depth=1, num_heads=2)


def test_input_not_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match=r"33x32 is not a multiple of the patch size 16; pad"):
        tiny()(torch.randn(1, 6, 33, 32))


def test_wrong_channel_count_names_the_bands():
    with pytest.raises(ValueError, match=r"4 channels but the model expects 6 \(bands \['BLUE'"):
        tiny()(torch.randn(1, 4, 32, 32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"coords_encoding \['date'\] not understood.*'time', 'location'"):
        tiny(coords_encoding=["date"])
    with pytest.raises(ValueError, match=r"out_indices \[7\] out of range for depth 2"):
        tiny(out_indices=[7])
    with pytest.raises(ValueError, match=r"in_chans=4 but 6 bands"):
        tiny(in_chans=4, bands=PRETRAINED_BANDS)


def test_bad_coordinate_shapes():
    model = BACKBONE_REGISTRY.build("prithvi_eo_v2_tiny_tl", img_size=32, depth=1)
    with pytest.raises(ValueError, match=r"temporal_coords must be \(B, T, 2\)"):
        model(torch.randn(2, 6, 32, 32), temporal_coords=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"location_coords must be \(B, 2\)"):
        model(torch.randn(2, 6, 32, 32), location_coords=torch.zeros(2, 3))
