"""Prithvi masked autoencoders: registry, masking, loss, reconstruction layout, weights."""

from __future__ import annotations

import pytest
import torch

from terratorch.models.backbones.prithvi_mae import PrithviMAE
from terratorch.models.backbones.prithvi_vit import MAE_VARIANTS, prithvi_cfgs
from terratorch.registry import BACKBONE_REGISTRY, FULL_MODEL_REGISTRY


def tiny_mae(**kwargs):
    options = {
        "img_size": 32,
        "depth": 2,
        "decoder_depth": 1,
        "decoder_embed_dim": 64,
        "decoder_num_heads": 4,
    }
    options.update(kwargs)
    return FULL_MODEL_REGISTRY.build("prithvi_eo_tiny_mae", **options)


@pytest.mark.parametrize("variant", list(MAE_VARIANTS))
def test_every_variant_has_a_mae(variant):
    patch = prithvi_cfgs[variant]["patch_size"][-1]
    with torch.device("meta"):
        model = FULL_MODEL_REGISTRY.build(f"{variant}_mae", num_frames=2)
        loss, pred, mask = model(torch.empty(1, 6, 2, 224, 224))
    assert isinstance(model, PrithviMAE)
    assert sorted(loss) == ["loss"] and loss["loss"].shape == ()
    assert pred.shape == (1, 6, 2, 224, 224) and mask.shape == (1, 2, 224, 224)
    assert "decoder.decoder_pos_embed" in model.state_dict() and "encoder.pos_embed" in model.state_dict()
    assert model.decoder.decoder_pred.out_features == patch**2 * 6


def test_encoder_only_is_refused():
    with pytest.raises(ValueError, match="use 'prithvi_eo_tiny' for encoder only"):
        tiny_mae(encoder_only=True)


def test_forward_masks_the_requested_share_and_trains():
    torch.manual_seed(0)
    model = tiny_mae(mask_ratio=0.75)
    x = torch.randn(3, 6, 32, 32)
    loss, pred, mask = model(x)
    assert pred.shape == (3, 6, 32, 32) and mask.shape == (3, 32, 32)
    assert mask.sum(dim=(1, 2)).tolist() == [3.0 * 256] * 3  # 3 of 4 patches
    loss["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad is not None
    assert model.decoder.decoder_pred.weight.grad is not None


def test_loss_is_mse_over_masked_tubelets_only():
    torch.manual_seed(1)
    model = tiny_mae(num_frames=2)
    x = torch.randn(2, 6, 2, 32, 32)
    loss, pred, mask = model(x, mask_ratio=0.5)
    target, patches = model.patchify(x), model.patchify(pred)
    per_token = ((patches - target) ** 2).mean(dim=-1)
    token_mask = model.patchify(mask.unsqueeze(1))[..., 0]
    torch.testing.assert_close(loss["loss"], per_token[token_mask.bool()].mean())


def test_patchify_layout_and_inverse():
    model = tiny_mae(num_frames=2)
    x = torch.randn(1, 6, 2, 32, 32)
    patches = model.patchify(x)
    assert patches.shape == (1, 2 * 2 * 2, 16 * 16 * 6)
    # token (t=1, row=0, col=1), pixel (y=3, x=5), band 4
    assert patches[0, 1 * 4 + 0 * 2 + 1, (3 * 16 + 5) * 6 + 4] == x[0, 4, 1, 3, 16 + 5]
    assert torch.equal(model.unpatchify(patches, (32, 32)), x)


def test_coordinates_change_the_reconstruction():
    model = FULL_MODEL_REGISTRY.build(
        "prithvi_eo_v2_tiny_tl_mae",
        img_size=32,
        depth=1,
        decoder_depth=1,
        decoder_embed_dim=64,
        decoder_num_heads=4,
    )
    x = torch.randn(1, 6, 32, 32)
    dates, where = torch.tensor([[[2019.0, 120.0]]]), torch.tensor([[40.0, -3.0]])
    torch.manual_seed(5)
    _, plain, _ = model(x)
    torch.manual_seed(5)
    _, with_coords, _ = model(x, temporal_coords=dates, location_coords=where)
    assert not torch.allclose(plain, with_coords)


def test_full_checkpoint_round_trip_and_encoder_reuse(tmp_path):
    torch.manual_seed(2)
    source = tiny_mae()
    torch.save(source.state_dict(), tmp_path / "mae.pt")
    copy = tiny_mae(pretrained=True, ckpt_path=tmp_path / "mae.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(copy.state_dict()[key], value), key
    backbone = BACKBONE_REGISTRY.build(
        "prithvi_eo_tiny", img_size=32, depth=2, pretrained=True, ckpt_path=tmp_path / "mae.pt"
    )
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key


def test_flat_v1_checkpoint_loads_into_the_mae(tmp_path):
    torch.manual_seed(2)
    source = tiny_mae()
    flat = {k.split(".", 1)[1]: v for k, v in source.state_dict().items()}
    assert "mask_token" in flat and "decoder_pred.weight" in flat and "blocks.0.attn.qkv.weight" in flat
    torch.save(flat, tmp_path / "v1.pt")
    copy = tiny_mae(pretrained=True, ckpt_path=tmp_path / "v1.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(copy.state_dict()[key], value), key


def test_band_remapping_at_both_ends(tmp_path):
    source = tiny_mae()
    torch.save(source.state_dict(), tmp_path / "mae.pt")
    with pytest.warns(UserWarning):
        target = tiny_mae(
            bands=["SWIR_2", "BLUE", "COASTAL_AEROSOL"], pretrained=True, ckpt_path=tmp_path / "mae.pt"
        )
    weight = target.encoder.patch_embed.proj.weight
    assert torch.equal(weight[:, 0], source.encoder.patch_embed.proj.weight[:, 5])
    assert torch.equal(weight[:, 1], source.encoder.patch_embed.proj.weight[:, 0])
    old = source.decoder.decoder_pred.weight.reshape(256, 6, -1)
    new = target.decoder.decoder_pred.weight.reshape(256, 3, -1)
    assert torch.equal(new[:, 0], old[:, 5]) and torch.equal(new[:, 1], old[:, 0])
    old_bias = source.decoder.decoder_pred.bias.reshape(256, 6)
    assert torch.equal(target.decoder.decoder_pred.bias.reshape(256, 3)[:, 1], old_bias[:, 0])


def test_zero_mask_ratio_is_honoured():
    model = tiny_mae().eval()
    _, _, mask = model(torch.randn(1, 6, 32, 32), mask_ratio=0.0)
    assert mask.sum() == 0


def test_reference_helper_names_of_the_position_tables():
    from terratorch.models.backbones.pos_embed import resize_pos_embed, sincos_1d_like, sincos_3d
    from terratorch.models.backbones.prithvi_mae import (
        _get_1d_sincos_embed_from_grid_torch,
        _interpolate_pos_encoding,
    )

    pos = torch.arange(5, dtype=torch.float32) * 3.5
    emb = _get_1d_sincos_embed_from_grid_torch(8, pos)
    assert emb.shape == (5, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, sincos_1d_like(8, pos))
    torch.testing.assert_close(emb[:, 0], torch.sin(pos))  # first frequency is 1
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        _get_1d_sincos_embed_from_grid_torch(8, torch.arange(5))

    table = sincos_3d(32, (2, 2, 2))
    same = _interpolate_pos_encoding(table, [2, 2, 2], [1, 1, 1], (2, 2, 2), 32)
    assert same is table
    wider = _interpolate_pos_encoding(table, [2, 2, 2], [1, 2, 2], (2, 8, 8), 32)
    torch.testing.assert_close(wider, resize_pos_embed(table, (2, 2, 2), (2, 4, 4)))
    assert wider.shape == (1, 1 + 2 * 4 * 4, 32)
    more_frames = _interpolate_pos_encoding(table, [2, 2, 2], [1, 1, 1], (3, 2, 2), 32)
    torch.testing.assert_close(more_frames, sincos_3d(32, (3, 2, 2)))
    with pytest.raises(ValueError, match="embed_dim 16 does not match"):
        _interpolate_pos_encoding(table, [2, 2, 2], [1, 1, 1], (2, 4, 4), 16)
