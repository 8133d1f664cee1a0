"""The weights module: file formats, wrapper prefixes, missing/unexpected keys, HF cache, timm models."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch
from safetensors.torch import save_file

from terratorch.models.weights import (
    CheckpointFormatError,
    CheckpointMismatchError,
    WeightsNotFoundError,
    adapt_state_dict_keys,
    create_timm_model,
    load_state_dict_into,
    read_checkpoint,
)
from terratorch.registry import BACKBONE_REGISTRY


def tiny(**kwargs):
    options = {"img_size": 32, "depth": 2}
    options.update(kwargs)
    return BACKBONE_REGISTRY.build("prithvi_eo_tiny", **options)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def source():
    torch.manual_seed(1)
    return tiny()


@pytest.mark.parametrize(
    ("suffix", "wrap"),
    [
        (".pt", lambda sd: sd),
        (".pth", lambda sd: {f"module.{k}": v for k, v in sd.items()}),
        (".bin", lambda sd: {"model": sd}),
        (".ckpt", lambda sd: {"state_dict": {f"model.encoder.{k}": v for k, v in sd.items()}, "epoch": 3}),
    ],
)
def test_torch_formats_round_trip_bit_exact(tmp_path, source, suffix, wrap):
    path = tmp_path / f"weights{suffix}"
    torch.save(wrap(source.state_dict()), path)
    loaded = tiny(pretrained=True, ckpt_path=path)
    assert_same_state(source, loaded)
    x = torch.randn(1, 6, 32, 32)
    assert torch.equal(source.eval()(x)[-1], loaded.eval()(x)[-1])


def test_safetensors_round_trip_bit_exact(tmp_path, source):
    path = tmp_path / "weights.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))
    assert_same_state(source, tiny(pretrained=True, ckpt_path=path))


def test_lightning_checkpoint_ignores_the_other_submodules(tmp_path, source):
    state = {f"model.encoder.{k}": v for k, v in source.state_dict().items()}
    state["model.decoder.conv.weight"] = torch.zeros(3, 3)
    state["model.head.weight"] = torch.zeros(2)
    torch.save({"state_dict": state, "optimizer_states": []}, tmp_path / "task.ckpt")
    # decoder keys are dropped; other tensors outside the encoder are reported, as 1.2 does
    with pytest.warns(
        UserWarning, match=r"1 checkpoint tensors are not used by PrithviViT: model\.head\.weight"
    ):
        assert_same_state(source, tiny(pretrained=True, ckpt_path=tmp_path / "task.ckpt"))


def test_adapt_keys_strips_and_adds_wrapper_prefixes():
    model_keys = ["model.conv1.weight", "model.stem_0.weight"]
    ckpt = {"module.conv1.weight": torch.zeros(1), "module.stem.0.weight": torch.ones(1)}
    assert sorted(adapt_state_dict_keys(ckpt, model_keys)) == sorted(model_keys)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"does not exist: '.*nope\.pt'"):
        tiny(pretrained=True, ckpt_path=tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        tiny(pretrained=True, ckpt_path=tmp_path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_corrupt_file_names_it(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(
        CheckpointFormatError, match=rf"broken\{suffix}'.*(not a PyTorch checkpoint|not a readable)"
    ):
        read_checkpoint(path)


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path, source):
    path = tmp_path / "cut.pt"
    torch.save(source.state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(
        CheckpointFormatError, match=r"cut\.pt' is not a PyTorch checkpoint \(a corrupt or truncated"
    ):
        tiny(pretrained=True, ckpt_path=path)


def test_unsupported_suffix_lists_valid_ones(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"123")
    with pytest.raises(CheckpointFormatError, match=r"suffix '\.npz' is not one of \['\.pt', '\.pth'"):
        read_checkpoint(path)


def test_pickled_objects_need_an_explicit_opt_in(tmp_path, source):
    path = tmp_path / "with_config.pt"
    torch.save({"state_dict": source.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointFormatError, match=r"with_config\.pt.*pass weights_only=False"):
        read_checkpoint(path)
    assert_same_state(source, tiny(pretrained=True, ckpt_path=path, weights_only=False))


def test_checkpoint_without_tensors(tmp_path):
    torch.save({"epoch": 3, "note": "empty"}, tmp_path / "empty.pt")
    with pytest.raises(CheckpointFormatError, match=r"empty\.pt.* holds no tensors.*'epoch'"):
        read_checkpoint(tmp_path / "empty.pt")


def test_checkpoint_of_another_architecture(tmp_path):
    torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), tmp_path / "conv.pt")
    with pytest.raises(
        CheckpointMismatchError, match=r"another architecture\? Its keys look like \['bias', 'weight'\]"
    ):
        tiny(pretrained=True, ckpt_path=tmp_path / "conv.pt")


def test_missing_encoder_weights_warn_and_stay_random(tmp_path, source):
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("blocks.1.")}
    torch.save(state, tmp_path / "partial.pt")
    with pytest.warns(UserWarning, match=r"stay randomly initialised: 12 missing \(blocks\.1\.norm1"):
        loaded = tiny(pretrained=True, ckpt_path=tmp_path / "partial.pt")
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not torch.equal(loaded.blocks[1].mlp.fc1.weight, source.blocks[1].mlp.fc1.weight)


def test_wrong_shapes_are_reported_with_both_shapes(tmp_path):
    torch.save(tiny(embed_dim=128, num_heads=4).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(
        CheckpointMismatchError,
        match=r"another shape than PrithviViT needs \(another model size\?\): 28, first: "
        r"\['cls_token \(checkpoint \(1, 1, 128\), model \(1, 1, 256\)\)",
    ):
        tiny(pretrained=True, ckpt_path=tmp_path / "narrow.pt")


def test_ckpt_path_without_pretrained_is_ignored(tmp_path, source):
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(5)
    loaded = tiny(ckpt_path=tmp_path / "w.pt")  # as in 1.2: logged and ignored
    assert not torch.equal(loaded.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_unused_checkpoint_tensors_are_reported():
    model = torch.nn.Linear(2, 2)
    state = {**model.state_dict(), "extra.weight": torch.zeros(1)}
    with pytest.warns(UserWarning, match=r"1 checkpoint tensors are not used by Linear: extra\.weight"):
        report = load_state_dict_into(model, state, source="mem")
    assert report.unexpected == ["extra.weight"] and not report.missing


def test_stored_position_table_is_replaced_by_the_models_own(tmp_path, source):
    state = dict(source.state_dict())
    state["pos_embed"] = torch.ones_like(source.pos_embed)
    torch.save(state, tmp_path / "odd_pos.pt")
    loaded = tiny(pretrained=True, ckpt_path=tmp_path / "odd_pos.pt")
    assert torch.equal(loaded.pos_embed, source.pos_embed)


# ---- pretrained=True: the local Hugging Face cache ----------------------------------------------
def test_pretrained_offline_without_cache_fails_fast_naming_repo_and_file(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError) as info:
        BACKBONE_REGISTRY.build("prithvi_eo_v2_300", pretrained=True)  # fails before building 300M
    message = str(info.value)
    assert "'ibm-nasa-geospatial/Prithvi-EO-2.0-300M'" in message
    assert "Prithvi_EO_V2_300M.pt" in message and "ckpt_path=" in message and "HF_HUB_OFFLINE" in message


def test_model_without_published_weights(monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=r"prithvi_eo_tiny has no published weights.*ckpt_path"):
        tiny(pretrained=True)


def test_pretrained_reads_the_local_hf_cache(tmp_path, monkeypatch, source):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--ibm-nasa-geospatial--Prithvi-EO-2.0-tiny-TL"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(3)
    published = BACKBONE_REGISTRY.build("prithvi_eo_v2_tiny_tl", img_size=32, depth=1)
    mae_layout = {f"encoder.{k}": v for k, v in published.state_dict().items()}
    mae_layout["decoder.decoder_pred.weight"] = torch.zeros(4, 4)  # decoder keys are skipped
    torch.save(mae_layout, repo / "snapshots" / commit / "Prithvi_EO_V2_tiny_TL.pt")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = BACKBONE_REGISTRY.build("prithvi_eo_v2_tiny_tl", img_size=32, depth=1, pretrained=True)
    assert_same_state(published, loaded)


# ---- timm models --------------------------------------------------------------------------------
def test_create_timm_model_without_our_options_is_plain_timm():
    import timm

    model = create_timm_model("resnet18", features_only=True, in_chans=5)
    assert type(model) is type(timm.create_model("resnet18", features_only=True, in_chans=5))
    assert model.conv1.weight.shape[1] == 5


def test_timm_round_trip_through_backbone_registry(tmp_path):
    import timm

    torch.manual_seed(0)
    full = timm.create_model("resnet18", num_classes=10)
    torch.save(full.state_dict(), tmp_path / "resnet18.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the classifier (fc) that features_only drops is not reported
        backbone = BACKBONE_REGISTRY.build("timm_resnet18", ckpt_path=tmp_path / "resnet18.pth")
    for key, value in backbone.model.state_dict().items():
        assert torch.equal(value, full.state_dict()[key]), key


def test_timm_pretrained_without_local_file_names_the_hub_repo(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError, match=r"'timm/resnet18\.a1_in1k'.*pretrained_cfg_overlay"):
        BACKBONE_REGISTRY.build("timm_resnet18", pretrained=True, bands=["RED", "GREEN", "BLUE"])
