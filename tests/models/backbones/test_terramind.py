"""TerraMind v1 encoders: modalities and aliases, inputs, merge methods, bands, weights, bad input.

Numerical agreement with the reference is in ``tests/compat/test_golden_terramind.py``; these tests
use two-block encoders on 32x32 inputs so they stay fast.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from terratorch.models.backbones.terramind.modalities import (
    MODALITY_ALIASES,
    PRETRAINED_BANDS,
    UnknownModalityError,
    resolve_modality,
    resolve_output_modality,
)
from terratorch.models.backbones.terramind.statistics import pretraining_statistics, v1_pretraining_mean
from terratorch.models.weights import BandMismatchError, PretrainedWeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

DIM = 192  # terramind_v1_tiny


def tiny(**kwargs):
    kwargs.setdefault("encoder_depth", 2)
    return TERRATORCH_BACKBONE_REGISTRY.build("terramind_v1_tiny", **kwargs).eval()


def s2(side: int = 32, channels: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(seed))


def s1(side: int = 32, seed: int = 1) -> torch.Tensor:
    return s2(side, 2, seed)


# ---- registry and import cost ---------------------------------------------------------------------
def test_import_terratorch_does_not_load_terramind():
    code = (
        "import sys, terratorch, terratorch.registry as r\n"
        "names = list(r.TERRATORCH_BACKBONE_REGISTRY)\n"
        "assert 'terramind_v1_base' in names, names\n"
        "loaded = [m for m in sys.modules if 'terramind' in m]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.parametrize(
    "name",
    [
        "terramind_v1_tiny",
        "terramind_v1_small",
        "terramind_v1_base",
        "terramind_v1_large",
        "terramind_v01_base",
    ],
)
def test_registered_names(name):
    assert name in TERRATORCH_BACKBONE_REGISTRY
    assert f"terratorch_{name}" in BACKBONE_REGISTRY


# ---- modality names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("S2L2A", "untok_sen2l2a@224"),
        ("s2l2a", "untok_sen2l2a@224"),
        ("untok_sen2l2a@224", "untok_sen2l2a@224"),
        ("S2L1C", "untok_sen2l1c@224"),
        ("S2RGB", "untok_sen2rgb@224"),
        ("RGB", "untok_sen2rgb@224"),
        ("S1GRD", "untok_sen1grd@224"),
        ("S1", "untok_sen1grd@224"),
        ("S1RTC", "untok_sen1rtc@224"),
        ("DEM", "untok_dem@224"),
        ("LULC", "tok_lulc@224"),
        ("NDVI", "tok_ndvi@224"),
        ("location", "coords"),
        ("tok_sen2l2a@224", "tok_sen2l2a@224"),
    ],
)
def test_modality_aliases(name, key):
    assert resolve_modality(name) == key


def test_output_modalities_are_tokenised():
    assert resolve_output_modality("S2L2A") == "tok_sen2l2a@224"
    assert resolve_output_modality("LULC") == "tok_lulc@224"


def test_unknown_modality_lists_names_and_aliases():
    with pytest.raises(UnknownModalityError) as info:
        tiny(modalities=["S2L2A", "Sentinel3"])
    message = str(info.value)
    assert "'Sentinel3'" in message
    for alias, key in MODALITY_ALIASES.items():
        assert f"{alias} ({key})" in message
    assert isinstance(info.value, NotImplementedError)  # what TerraTorch 1.2 raised


def test_duplicate_modality_is_rejected():
    with pytest.raises(ValueError, match="both select 'untok_sen2l2a@224'"):
        tiny(modalities=["S2L2A", "untok_sen2l2a@224"])


def test_bad_new_modality_value():
    with pytest.raises(TypeError, match="num_channels"):
        tiny(modalities=[{"new": "four"}])


# ---- statistics -----------------------------------------------------------------------------------
def test_pretraining_statistics_by_alias_and_bands():
    mean, std = pretraining_statistics("S2L2A")
    assert mean == v1_pretraining_mean["untok_sen2l2a@224"] and len(std) == 12
    mean, _ = pretraining_statistics("S2L2A", bands=["RED", "BLUE"])
    full = v1_pretraining_mean["untok_sen2l2a@224"]
    assert mean == [full[3], full[1]]
    assert pretraining_statistics("S1GRD")[0] == [-12.599, -20.293]
    with pytest.raises(ValueError, match="Unknown band of untok_sen2l2a@224 'CIRRUS'"):
        pretraining_statistics("S2L2A", bands=["CIRRUS"])


# ---- inputs and outputs ---------------------------------------------------------------------------
def test_single_tensor_goes_to_the_first_modality():
    model = tiny(modalities=["S2L2A", "S1GRD"])
    with torch.no_grad():
        out = model(s2())
    assert len(out) == 2 and out[-1].shape == (1, 4, DIM)
    assert model.out_channels == [DIM, DIM]


def test_aliases_are_accepted_as_input_keys():
    model = tiny(modalities=["S2L2A"])
    with torch.no_grad():
        by_name = model({"S2L2A": s2()})[-1]
        by_key = model({"untok_sen2l2a@224": s2()})[-1]
        by_kwarg = model(S2L2A=s2())[-1]
    assert torch.equal(by_name, by_key) and torch.equal(by_name, by_kwarg)
    with pytest.warns(UserWarning, match="Unknown input modality 's2l2a_mask' ignored"):
        with_extra = model({"s2l2a": s2(), "s2l2a_mask": s2()})[-1]
    assert torch.equal(with_extra, by_name)


def test_missing_modality_at_inference():
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method="concat")
    assert model.out_channels == [2 * DIM] * 2
    with torch.no_grad():
        both = model({"S2L2A": s2(), "S1GRD": s1()})[-1]
        only_s1 = model({"S1GRD": s1()})[-1]
    assert both.shape == only_s1.shape == (1, 4, 2 * DIM)
    # the missing modality is filled with the learned token (normalised features excluded)
    middle = model({"S1GRD": s1()})[0]
    assert torch.equal(middle[..., DIM:], model.missing_mod_token.expand(1, 4, DIM))


@pytest.mark.parametrize("merge", ["mean", "max", "concat", "dict", None])
def test_merge_methods(merge):
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method=merge)
    with torch.no_grad():
        out = model({"S2L2A": s2(), "S1GRD": s1()})
    last = out[-1]
    if merge == "dict":
        assert set(last) == {"S2L2A", "S1GRD"} and last["S2L2A"].shape == (1, 4, DIM)
    elif merge is None:
        assert last.shape == (1, 8, DIM)
    elif merge == "concat":
        assert last.shape == (1, 4, 2 * DIM)
    else:
        assert last.shape == (1, 4, DIM)


def test_mean_of_one_modality_is_its_tokens():
    model = tiny(modalities=["S2L2A"], merge_method="mean")
    with torch.no_grad():
        mean = model(s2())
    model.merge_method = None
    with torch.no_grad():
        raw = model(s2())
    assert all(torch.allclose(a, b) for a, b in zip(mean, raw, strict=True))


def test_register_tokens_and_drop_path():
    model = tiny(
        modalities=["S2L2A", "S1GRD"], merge_method="dict", num_register_tokens=2, drop_path_rate=0.1
    )
    assert model.encoder[1].drop_path.drop_prob == pytest.approx(0.1)
    with torch.no_grad():
        out = model({"S2L2A": s2(), "S1GRD": s1()})[-1]
    assert list(out) == ["register_tokens", "S2L2A", "S1GRD"] and out["register_tokens"].shape == (1, 2, DIM)
    model.merge_method = "mean"  # register tokens are dropped before merging
    with torch.no_grad():
        assert model({"S2L2A": s2(), "S1GRD": s1()})[-1].shape == (1, 4, DIM)


def test_modality_drop_in_training():
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method="dict", modality_drop_rate=1.0).train()
    out = model({"S2L2A": s2(), "S1GRD": s1()})
    assert len(out[-1]) == 1  # all but one modality dropped
    model.eval()
    with torch.no_grad():
        assert len(model({"S2L2A": s2(), "S1GRD": s1()})[-1]) == 2


def test_new_modality_from_a_dict():
    model = tiny(modalities=[{"hyperspectral": 5}, "S1GRD"], patch_size=8)
    assert model.encoder_embeddings["hyperspectral"].proj.in_features == 5 * 64
    with torch.no_grad():
        out = model({"hyperspectral": s2(channels=5, side=16), "S1GRD": s1()})
    assert out[-1].shape == (1, 4, DIM)


def test_tokenised_modality_takes_token_ids():
    model = tiny(modalities=["S2L2A", "LULC"])
    tokens = torch.randint(0, 4375, (1, 2, 2))
    with torch.no_grad():
        out = model({"S2L2A": s2(), "LULC": tokens})
    assert out[-1].shape == (1, 4, DIM)
    with pytest.raises(TypeError, match="tokenised modality: pass integer token ids"):
        model({"S2L2A": s2(), "LULC": torch.rand(1, 1, 32, 32)})


def test_prepare_features_for_image_model_non_square():
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method="concat")
    x = {"S2L2A": torch.randn(1, 12, 32, 48), "S1GRD": torch.randn(1, 2, 32, 48)}
    with torch.no_grad():
        maps = model.prepare_features_for_image_model(model(x))
    assert [tuple(m.shape) for m in maps] == [(1, 2 * DIM, 2, 3)] * 2


def test_prepare_features_rejects_dict_outputs():
    model = tiny(modalities=["S2L2A"], merge_method="dict")
    with torch.no_grad(), pytest.raises(ValueError, match="merge_method='dict'"):
        model.prepare_features_for_image_model(model(s2()))


# ---- bad input ------------------------------------------------------------------------------------
def test_dict_without_any_configured_modality():
    model = tiny(modalities=["S2L2A", "S1GRD"])
    with (
        pytest.warns(UserWarning, match="Unknown input modality 'optical'"),
        pytest.raises(ValueError) as info,
    ):
        model({"optical": s2()})
    message = str(info.value)
    assert "'optical': (1, 12, 32, 32)" in message and "['S2L2A', 'S1GRD']" in message


def test_different_spatial_sizes_are_rejected_for_stacking_merges():
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method="mean")
    with pytest.raises(ValueError) as info:
        model({"S2L2A": s2(32), "S1GRD": s1(64)})
    message = str(info.value)
    assert (
        "S2L2A: (1, 12, 32, 32) (2x2 tokens)" in message and "S1GRD: (1, 2, 64, 64) (4x4 tokens)" in message
    )
    model = tiny(modalities=["S2L2A", "S1GRD"], merge_method="dict")  # works per modality
    with torch.no_grad():
        out = model({"S2L2A": s2(32), "S1GRD": s1(64)})
    assert out[-1]["S1GRD"].shape == (1, 16, DIM)


def test_unknown_merge_method():
    with pytest.raises(ValueError, match=r"Unknown merge_method 'sum'.*Valid: None, concat, dict, max, mean"):
        tiny(modalities=["S2L2A"], merge_method="sum")


# ---- bands ----------------------------------------------------------------------------------------
def test_band_subset_keeps_pretrained_band_weights(tmp_path):
    torch.manual_seed(0)
    full = tiny(modalities=["S2L2A"])
    torch.save(full.state_dict(), tmp_path / "w.pt")
    bands = ["RED", "BLUE", "NIR_NARROW"]
    sub = tiny(modalities=["S2L2A"], ckpt_path=str(tmp_path / "w.pt"), bands={"S2L2A": bands})
    new = sub.encoder_embeddings["untok_sen2l2a@224"].proj.weight.reshape(DIM, 256, 3)
    old = full.encoder_embeddings["untok_sen2l2a@224"].proj.weight.reshape(DIM, 256, 12)
    order = [PRETRAINED_BANDS["untok_sen2l2a@224"].index(b) for b in bands]
    assert torch.equal(new, old[..., order])
    with torch.no_grad():
        assert sub(s2(channels=3))[-1].shape == (1, 4, DIM)


def test_new_band_gets_fresh_weights_with_a_warning():
    with pytest.warns(UserWarning, match=r"Bands \['PAN'\] are not in the pretrained weights"):
        model = tiny(modalities=["S2L2A"], bands={"S2L2A": ["RED", "PAN"]})
    assert model.encoder_embeddings["untok_sen2l2a@224"].proj.in_features == 2 * 256


def test_bands_matching_no_pretrained_band():
    with pytest.raises(BandMismatchError) as info:
        tiny(modalities=["S1GRD"], bands={"S1GRD": ["HH", "HV"]})
    message = str(info.value)
    assert "['HH', 'HV']" in message and "['VV', 'VH']" in message


def test_bands_for_a_modality_not_configured():
    with pytest.raises(ValueError, match="not one of this encoder's modalities"):
        tiny(modalities=["S2L2A"], bands={"S1GRD": ["VV"]})


# ---- weights --------------------------------------------------------------------------------------
def test_pretrained_without_local_file_names_repo_file_and_ckpt_path(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        tiny(modalities=["S2L2A"], pretrained=True)
    message = str(info.value)
    assert "ibm-esa-geospatial/TerraMind-1.0-tiny" in message
    assert "TerraMind_v1_tiny.pt" in message and "ckpt_path" in message


def test_missing_ckpt_path():
    with pytest.raises(PretrainedWeightsNotFoundError, match="does not exist"):
        tiny(modalities=["S2L2A"], ckpt_path="/nonexistent/TerraMind_v1_tiny.pt")


def test_pretrained_reads_the_published_file_from_the_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    torch.manual_seed(3)
    published = tiny(modalities=["S2L2A", "S1GRD", "DEM"])
    state = dict(published.state_dict())
    state["decoder.0.mlp.fc1.weight"] = torch.zeros(2, 2)  # the encoder-decoder keys are skipped
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--ibm-esa-geospatial--TerraMind-1.0-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(state, repo / "snapshots" / commit / "TerraMind_v1_tiny.pt")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing stays random, nothing is reported
        loaded = tiny(modalities=["S1GRD"], pretrained=True, img_size=64)
    for key, value in loaded.state_dict().items():
        if not key.endswith("pos_emb"):  # other img_size: the model's own sin-cos table
            assert torch.equal(value, state[key]), key
    assert loaded.encoder_embeddings["untok_sen1grd@224"].pos_emb.shape == (1, 16, DIM)


def test_fine_tuned_checkpoint_with_prefix_loads(tmp_path):
    torch.manual_seed(4)
    model = tiny(modalities=["S2L2A"])
    path = tmp_path / "ft.pt"
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded = tiny(modalities=["S2L2A"], ckpt_path=str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another img_size: the sin-cos tables are the model's own
        other = tiny(modalities=["S2L2A"], ckpt_path=str(path), img_size=64)
    assert other.encoder_embeddings["untok_sen2l2a@224"].pos_emb.shape == (1, 16, DIM)


# ---- inside EncoderDecoderFactory ----------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["UperNetDecoder", "UNetDecoder"])
def test_factory_segmentation_with_necks(decoder):
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory

    necks = [
        {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
        {"name": "ReshapeTokensToImage", "remove_cls_token": False},
    ]
    decoder_kwargs = {"channels": 32} if decoder == "UperNetDecoder" else {"channels": [64, 32, 16, 8]}
    if decoder == "UNetDecoder":
        necks.append({"name": "LearnedInterpolateToPyramidal"})
    model = (
        EncoderDecoderFactory()
        .build_model(
            task="segmentation",
            backbone="terramind_v1_tiny",
            backbone_modalities=["S2L2A", "S1GRD"],
            backbone_encoder_depth=4,
            decoder=decoder,
            necks=necks,
            num_classes=3,
            **{f"decoder_{k}": v for k, v in decoder_kwargs.items()},
        )
        .eval()
    )
    with torch.no_grad():
        out = model({"S2L2A": s2(), "S1GRD": s1()})
    assert out.output.shape == (1, 3, 32, 32)


def test_lora_on_the_attention_qkv():
    pytest.importorskip("peft")
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory

    peft_config = {
        "method": "LORA",
        "replace_qkv": "qkv",
        "peft_config_kwargs": {"target_modules": ["qkv.q_linear", "qkv.v_linear"], "r": 4, "lora_alpha": 8},
    }
    necks = [
        {"name": "ReshapeTokensToImage", "remove_cls_token": False},
        {"name": "SelectIndices", "indices": [0, 1, 1, 1]},
    ]
    with pytest.warns(UserWarning, match="not pretrained"):
        model = EncoderDecoderFactory().build_model(
            task="segmentation",
            backbone="terramind_v1_tiny",
            backbone_modalities=["S2L2A"],
            backbone_encoder_depth=2,
            decoder="UperNetDecoder",
            decoder_channels=16,
            num_classes=2,
            necks=necks,
            peft_config=peft_config,
        )
    model.eval()
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        assert model({"S2L2A": s2()}).output.shape == (1, 2, 32, 32)
