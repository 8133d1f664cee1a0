"""Clay v1.5 (``clay_v15_*`` backbones, ``ClayMAE``) and the two Clay model factories.

Everything is built at a tiny width (:data:`TINY`) on 32 px inputs; weights are saved to ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from terratorch.models.backbones.clay_v15.backbone import Transformer
from terratorch.models.backbones.clay_v15.embedder import clay_v15_weights_file
from terratorch.models.backbones.clay_v15.model import ClayMAE
from terratorch.models.model import ModelOutput
from terratorch.models.weights import CheckpointMismatchError, PretrainedWeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY, MODEL_FACTORY_REGISTRY

TINY: dict[str, Any] = {"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp_ratio": 2}
DECODER = {
    "decoder_dim": 16,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "decoder_dim_head": 8,
    "decoder_mlp_ratio": 2,
}
S2 = {"blue": 0.493, "green": 0.56, "red": 0.665, "nir": 0.842}
METADATA = {
    "sentinel-2-l2a": {"bands": {"wavelength": S2}, "gsd": 10.0, "rgb_indices": [2, 1, 0]},
    "sentinel-1-rtc": {"bands": {"wavelength": {"vv": 3.5, "vh": 4.0}}, "gsd": 10.0},
}


class _Teacher(nn.Module):
    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, self.num_features, kernel_size=14, stride=14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).mean(dim=(2, 3))


def _tiny(**kwargs: Any) -> nn.Module:
    return BACKBONE_REGISTRY.build("clay_v15_tiny", **TINY, **kwargs)


def _mae(**kwargs: Any) -> ClayMAE:
    args = {"mask_ratio": 0.5, "patch_size": 8, "norm_pix_loss": True, "shuffle": True, "metadata": METADATA}
    return ClayMAE(**{**args, **kwargs}, teacher=_Teacher(), dolls=[16], doll_weights=[1], **TINY, **DECODER)


# ---- backbone -----------------------------------------------------------------------------------
def test_listing_shows_every_size_and_the_published_file() -> None:
    from terratorch.registry import list_backbones

    entries = {e.name: e.metadata for e in list_backbones("clay_v15_*")}
    assert sorted(entries) == ["clay_v15_base", "clay_v15_large", "clay_v15_small", "clay_v15_tiny"]
    assert entries["clay_v15_large"]["embed_dim"] == 1024 and entries["clay_v15_large"]["depth"] == 24
    assert entries["clay_v15_large"]["hf_hub_filename"] == "v1.5/clay-v1.5.ckpt"
    assert "hf_hub_id" not in entries["clay_v15_tiny"]


def test_features_maps_and_out_indices() -> None:
    torch.manual_seed(0)
    model = _tiny(out_indices=[-1, 0]).eval()
    x = torch.randn(2, 6, 32, 32)
    with torch.no_grad():
        last, first = model(x)
        full = model.clay_encoder({"pixels": x, "time": torch.zeros(2, 4), "latlon": torch.zeros(2, 4),
                                   "gsd": 10.0, "waves": torch.tensor(model.waves)})[0]  # fmt: skip
    assert last.shape == first.shape == (2, 17, 32) and model.out_channels == [32, 32]
    assert torch.allclose(last, full, atol=1e-6)  # the last block is what the Clay encoder returns
    maps = model.prepare_features_for_image_model([last, first])
    assert [tuple(m.shape) for m in maps] == [(2, 32, 4, 4)] * 2
    with torch.no_grad():  # other square sizes work without rebuilding; metadata changes the output
        assert model(torch.randn(1, 6, 48, 48))[0].shape == (1, 37, 32)
        moved = model(x, latlon=torch.ones(2, 4), gsd=30.0)[0]
    assert not torch.allclose(moved, last)


@pytest.mark.parametrize(
    ("kwargs", "x_shape", "match"),
    [
        ({"bands": ["blue", "grene"]}, None, "grene"),
        ({"out_indices": [5]}, None, "out_indices"),
        ({"model_size": "huge"}, None, "huge"),
        ({}, (1, 4, 32, 32), "4 channels but 6 band wavelengths"),
        ({}, (1, 6, 32, 48), "square patch grid"),
        ({}, (1, 6, 2, 32, 32), "TemporalWrapper"),
    ],
)
def test_wrong_inputs_raise_actionable_errors(kwargs: dict[str, Any], x_shape: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model = _tiny(**kwargs)
        model(torch.randn(*x_shape))


def test_lightning_and_mae_checkpoints_load(tmp_path: Path) -> None:
    source = _tiny()
    lightning = {f"model.encoder.{k}": v for k, v in source.clay_encoder.state_dict().items()}
    lightning["model.decoder.mask_patch"] = torch.zeros(16)  # other MAE parts are skipped
    torch.save({"state_dict": lightning, "epoch": 3}, tmp_path / "clay.ckpt")
    torch.save({f"encoder.{k}": v for k, v in source.clay_encoder.state_dict().items()}, tmp_path / "mae.pt")
    for name in ("clay.ckpt", "mae.pt"):
        loaded = _tiny(ckpt_path=str(tmp_path / name))
        for key, value in source.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), (name, key)
    assert any(p.requires_grad for p in loaded.parameters())  # loading does not freeze (fine-tuning)
    loaded.freeze()
    assert not any(p.requires_grad for p in loaded.parameters())


def test_bad_checkpoints_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ckpt"
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"nowhere\.ckpt"):
        _tiny(ckpt_path=str(missing))
    torch.save({"state_dict": {"backbone.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"no Clay v1\.5 encoder tensors"):
        _tiny(ckpt_path=str(tmp_path / "other.ckpt"))
    wider = BACKBONE_REGISTRY.build("clay_v15_tiny", **{**TINY, "dim": 48})
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(CheckpointMismatchError, match="other shapes"):
        _tiny(ckpt_path=str(tmp_path / "wider.pt"))


def test_published_weights_come_from_the_local_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        BACKBONE_REGISTRY.build("clay_v15_large", pretrained=True)
    assert "made-with-clay/Clay" in str(info.value) and "v1.5/clay-v1.5.ckpt" in str(info.value)
    with pytest.raises(ValueError, match="no published weights"):
        BACKBONE_REGISTRY.build("clay_v15_tiny", pretrained=True)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--made-with-clay--Clay"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "v1.5").mkdir(parents=True)
    (repo / "snapshots" / commit / "v1.5" / "clay-v1.5.ckpt").write_bytes(b"")
    assert clay_v15_weights_file("clay_v15_large").name == "clay-v1.5.ckpt"


def test_transformer_fused_and_explicit_attention_agree() -> None:
    torch.manual_seed(0)
    fused = Transformer(dim=32, depth=2, heads=2, dim_head=16, mlp_dim=64)
    explicit = Transformer(dim=32, depth=2, heads=2, dim_head=16, mlp_dim=64, fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 32)
    assert torch.allclose(fused(x), explicit(x), atol=1e-5)
    assert torch.equal(fused(x), fused.forward_blocks(x)[-1])


# ---- MAE ----------------------------------------------------------------------------------------
def test_mae_trains_encoder_and_decoder_but_not_the_teacher() -> None:
    torch.manual_seed(0)
    mae = _mae()
    batch = {
        "pixels": torch.randn(3, 4, 32, 32),
        "time": torch.zeros(3, 4),
        "latlon": torch.randn(3, 4),  # non-zero locations: Clay's random channel dropping applies
        "platform": ["sentinel-2-l2a"] * 3,
    }
    loss, reconstruction, representation = mae(batch)
    assert torch.isclose(loss, 0.9 * reconstruction + 0.1 * representation)
    loss.backward()
    assert mae.encoder.cls_token.grad is not None and mae.decoder.mask_patch.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in mae.teacher.parameters())
    radar = {**batch, "pixels": torch.randn(3, 2, 32, 32), "platform": "sentinel-1-rtc"}
    assert torch.isfinite(torch.stack(mae(radar))).all()
    with pytest.raises(KeyError, match="landsat"):
        mae({**batch, "platform": ["landsat"]})


# ---- factories ----------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", ["ClayModelFactory", "Clay1_5ModelFactory"])
def test_factories_build_models_returning_model_output(factory: str) -> None:
    builder = MODEL_FACTORY_REGISTRY.build(factory)
    backbone = {f"backbone_{k}": v for k, v in TINY.items()}
    seg = builder.build_model(
        "segmentation", "clay_v15_tiny", "FCNDecoder", 4, bands=list(S2), num_classes=3, pretrained=False,
        backbone_padding="constant", decoder_channels=16, **backbone,
    )  # fmt: skip
    assert seg.padding == "constant" and seg.patch_size == 8
    out = seg(torch.randn(2, 4, 30, 30))  # padded to the patch grid, cropped back
    assert isinstance(out, ModelOutput) and out.output.shape == (2, 3, 30, 30)
    cls = builder.build_model(
        "classification", "clay_v15_tiny", "IdentityDecoder", 4, bands=list(S2), num_classes=5,
        pretrained=False, prepare_features_for_image_model=lambda feats: [f[:, 1:].mean(1)[..., None, None]
                                                                          for f in feats], **backbone,
    )  # fmt: skip
    assert cls(torch.randn(2, 4, 32, 32)).output.shape == (2, 5)


def test_factory_errors_and_checkpoint_path(tmp_path: Path) -> None:
    from terratorch.models.encoder_decoder_factory import UnsupportedTaskError

    factory = MODEL_FACTORY_REGISTRY.build("ClayModelFactory")
    with pytest.raises(NotImplementedError, match="Clay encoders"):
        factory.build_model("segmentation", "prithvi_eo_tiny", "FCNDecoder", 6, num_classes=2)
    with pytest.raises(UnsupportedTaskError):
        factory.build_model("detection", "clay_v15_tiny", "FCNDecoder", 6)
    with pytest.raises(ValueError, match="must start with one of"):
        factory.build_model("segmentation", "clay_v15_tiny", "FCNDecoder", 6, num_classes=2, dim=32)
    source = _tiny()
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in source.clay_encoder.state_dict().items()}},
               tmp_path / "clay.ckpt")  # fmt: skip
    target = _tiny()
    model = factory.build_model(
        "regression", target, "FCNDecoder", 6, checkpoint_path=str(tmp_path / "clay.ckpt")
    )
    assert model.encoder is target
    assert torch.equal(target.clay_encoder.cls_token, source.clay_encoder.cls_token)
    with pytest.raises(TypeError, match="load_clay_weights"):
        factory.build_model("regression", nn.Conv2d(6, 8, 1), "FCNDecoder", 6, checkpoint_path="x.ckpt")


def test_clay15_factory_pretraining_spelling(tmp_path: Path) -> None:
    factory = MODEL_FACTORY_REGISTRY.build("Clay1_5ModelFactory")
    kwargs: dict[str, Any] = {
        "mask_ratio": 0.5, "patch_size": 8, "norm_pix_loss": False, "shuffle": False, "metadata": METADATA,
        "teacher": _Teacher(), "dolls": [16], "doll_weights": [1], "batch_size": 4, **TINY, **DECODER,
    }  # fmt: skip
    wrapper = factory.build_model(
        "segmentation", "clay_v15", "FCNDecoder", 4, platform="sentinel-2-l2a", **kwargs
    )
    assert type(wrapper).__name__ == "ModelWrapper" and wrapper.channels() == (1, 32)
    losses = wrapper(torch.randn(2, 4, 32, 32))  # a batch of 2 although batch_size=4
    assert len(losses) == 3 and all(torch.isfinite(v) for v in losses)
    torch.save({"state_dict": {f"model.{k}": v for k, v in wrapper.model.state_dict().items()}},
               tmp_path / "mae.ckpt")  # fmt: skip
    kwargs["teacher"] = _Teacher()
    again = factory.build_model(
        "segmentation", "clay_v15", "FCNDecoder", 4, platform=["sentinel-2-l2a"],
        checkpoint_path=str(tmp_path / "mae.ckpt"), **kwargs,
    )  # fmt: skip
    for key, value in wrapper.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key
    with pytest.raises(ValueError, match="platform"):
        factory.build_model("segmentation", "clay_v15", "FCNDecoder", 4, **kwargs)
