"""TerraMind TiM backbone, encoder-decoder and generation: behaviour and bad input on small models.

Reference equality (tokens, features, layouts) is in ``tests/compat/test_golden_terramind_tim.py``.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
import torch

from terratorch.models.backbones.terramind import generation
from terratorch.models.backbones.terramind.encdec import TerraMind, build_decoder_modality_embeddings
from terratorch.models.backbones.terramind.modalities import MODALITY_INFO, UnknownModalityError
from terratorch.models.backbones.terramind.tim import TerraMindTiM

SMALL = {"dim": 32, "num_heads": 2, "encoder_depth": 2, "decoder_depth": 1}


def _tim(**kwargs) -> TerraMindTiM:
    kwargs = {"modalities": ["S2L2A", "S1GRD"], **SMALL, **kwargs}
    return TerraMindTiM(**kwargs).eval()


def _inputs(side: int = 32) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "S2L2A": torch.randn(2, 12, side, side, generator=generator),
        "S1GRD": torch.randn(2, 2, side, side, generator=generator),
    }


@pytest.fixture(autouse=True)
def _registered() -> None:
    import terratorch.models.backbones.terramind.register_tim  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These models are tiny: one thread is faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tim_adds_the_generated_modality_as_an_image_input() -> None:
    model = _tim()
    assert model.modalities == ["S2L2A", "S1GRD", "LULC"]
    assert model.image_modalities[-1] == "tok_lulc@224"
    assert model.mod_name_mapping["LULC"] == "tok_lulc@224"
    assert model.out_channels == [32, 32]
    assert not any(p.requires_grad for p in model.sampler.parameters())
    with torch.no_grad():
        out = model(_inputs())
    assert [tuple(x.shape) for x in out] == [(2, 4, 32), (2, 4, 32)]
    maps = model.prepare_features_for_image_model(out)
    assert maps[-1].shape == (2, 32, 2, 2)


def test_tim_generation_is_reproducible_with_seeds() -> None:
    model = _tim()
    runs = []
    for _ in range(2):
        random.seed(7)
        torch.manual_seed(7)
        with torch.no_grad():
            tokens = model.generate_tim_tokens(dict(_inputs()))
        runs.append(tokens["LULC"])
    assert runs[0].shape == (2, 4)
    assert runs[0].dtype == torch.int64
    assert torch.equal(runs[0], runs[1])
    assert int(runs[0].max()) < MODALITY_INFO["tok_lulc@224"]["vocab_size"]


def test_tim_merge_methods() -> None:
    concat = _tim(merge_method="concat")
    assert concat.out_channels == [96, 96]  # S2L2A, S1GRD and the generated LULC
    with torch.no_grad():
        assert concat(_inputs())[-1].shape == (2, 4, 96)
        assert concat({"S2L2A": _inputs()["S2L2A"]})[-1].shape == (2, 4, 96)  # missing S1GRD: learned token
    as_dict = _tim(merge_method="dict")
    with torch.no_grad():
        out = as_dict(_inputs())
    assert list(out[-1]) == ["S2L2A", "S1GRD"]  # as in TerraTorch 1.2, generated tokens are not returned
    assert _tim(merge_method=None)(_inputs())[-1].shape == (2, 12, 32)


def test_tim_uses_given_tokens_instead_of_generating() -> None:
    model = _tim(modalities=["S2L2A", "LULC"])
    called = []
    model.sampler.generate = lambda *a, **k: called.append(1)
    ids = torch.randint(0, 4375, (2, 2, 2))
    with torch.no_grad():
        out = model({"S2L2A": _inputs()["S2L2A"], "LULC": ids})
    assert not called
    assert out[-1].shape == (2, 4, 32)
    with pytest.raises(TypeError, match="integer token ids"):
        model({"S2L2A": _inputs()["S2L2A"], "LULC": torch.rand(2, 10, 32, 32)})


def test_unknown_tim_modality_lists_the_valid_names() -> None:
    with pytest.raises(UnknownModalityError, match="tim_modalities") as info:
        _tim(tim_modalities=["LULLC"])
    message = str(info.value)
    assert "Did you mean" in message and "LULC" in message and "NDVI" in message


def test_unsupported_tim_configurations_are_refused() -> None:
    with pytest.raises(NotImplementedError, match="text tokenizers"):
        _tim(tim_modalities=["Caption"])
    with pytest.raises(NotImplementedError, match="also an input"):
        _tim(modalities=["S2L2A"], tim_modalities=["S2L2A"])
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    with pytest.raises(NotImplementedError, match="Bands cannot be adapted"):
        TERRATORCH_BACKBONE_REGISTRY.build(
            "terramind_v1_tiny_tim", modalities=["S2L2A"], bands={"S2L2A": ["RED"]}
        )
    with pytest.raises(NotImplementedError, match="new modalities"):
        TERRATORCH_BACKBONE_REGISTRY.build("terramind_v1_tiny_tim", modalities=[{"mine": 3}], pretrained=True)


def test_tim_weights_from_a_published_file_and_from_a_saved_tim(tmp_path: Path) -> None:
    from terratorch.models.backbones.terramind.register_tim import build_terramind_encdec, build_terramind_tim
    from terratorch.models.weights import CheckpointMismatchError, PretrainedWeightsNotFoundError

    kwargs = {"modalities": ["S2L2A"], "tim_modalities": ["LULC"], "encoder_depth": 2, "decoder_depth": 1}
    encdec = build_terramind_encdec(
        "terramind_v1_tiny",
        modalities=["S2L2A", "LULC"],
        output_modalities=["LULC"],
        encoder_depth=2,
        decoder_depth=1,
    )
    published = tmp_path / "TerraMind_v1_tiny.pt"
    torch.save(encdec.state_dict(), published)
    tim = build_terramind_tim("terramind_v1_tiny", ckpt_path=str(published), **kwargs)
    generator = tim.sampler.model.state_dict()
    for key, value in encdec.state_dict().items():
        assert torch.equal(generator[key], value), key
    assert torch.equal(tim.encoder[0].attn.qkv.weight, encdec.encoder[0].attn.qkv.weight)

    saved = tmp_path / "tim.pt"
    torch.save(tim.state_dict(), saved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = build_terramind_tim("terramind_v1_tiny", ckpt_path=str(saved), **kwargs)
    assert torch.equal(again.sampler.model.mask_token, encdec.mask_token)

    encoder_only = tmp_path / "encoder_only.pt"
    torch.save({k: v for k, v in encdec.state_dict().items() if not k.startswith("decoder")}, encoder_only)
    with pytest.raises(CheckpointMismatchError, match="encoder-decoder tensors"):
        build_terramind_tim("terramind_v1_tiny", ckpt_path=str(encoder_only), **kwargs)
    with pytest.raises(PretrainedWeightsNotFoundError, match="does not exist"):
        build_terramind_tim("terramind_v1_tiny", ckpt_path=str(tmp_path / "missing.pt"), **kwargs)


def test_encdec_from_names_and_its_masked_modeling_loss() -> None:
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    model = TERRATORCH_FULL_MODEL_REGISTRY.build(
        "terramind_v1_tiny_encdec",
        modalities=["S2L2A", "LULC"],
        output_modalities=["LULC"],
        encoder_depth=2,
        decoder_depth=1,
    )
    assert isinstance(model, TerraMind)
    assert (
        model.decoder_embeddings["tok_lulc@224"].mod_emb is model.encoder_embeddings["tok_lulc@224"].mod_emb
    )
    ids = torch.randint(0, 4375, (2, 4))
    mod_dict = {
        "untok_sen2l2a@224": {
            "tensor": torch.randn(2, 12, 32, 32),
            "input_mask": torch.zeros(2, 4, dtype=torch.bool),
            "target_mask": torch.ones(2, 4, dtype=torch.bool),
        },
        "tok_lulc@224": {
            "tensor": ids,
            "input_mask": torch.tensor([[False, False, True, True]] * 2),
            "target_mask": torch.tensor([[True, True, False, False]] * 2),
            "decoder_attention_mask": torch.zeros(2, 4, dtype=torch.int),
        },
    }
    loss, per_modality = model(mod_dict, num_encoder_tokens=6, num_decoder_tokens=2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(per_modality) == {"tok_lulc@224"}
    loss.backward()
    with pytest.raises(ValueError, match="output_modalities"):
        TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tiny_encdec")
    with pytest.raises(UnknownModalityError, match="Valid names"):
        build_decoder_modality_embeddings(["nonsense"])


def test_schedules_and_sampler_errors() -> None:
    assert generation.linear_schedule(3, 10).tolist() == [4, 3, 3]
    assert generation.cosine_schedule(4, 16).sum() == 16
    schedule = generation.build_chained_generation_schedules(
        cond_domains=["untok_sen2l2a@224"],
        target_domains=["tok_lulc@224", "tok_ndvi@224"],
        tokens_per_target=[16, 16],
        autoregression_schemes=["maskgit", "roar"],
        decoding_steps=[2, 4],
        token_decoding_schedules=["cosine", "linear"],
        temps=[1.0, 0.5],
        temp_schedules=["linear", "constant"],
        cfg_scales=[1.0, 1.0],
        cfg_schedules=["constant", "constant"],
        cfg_grow_conditioning=True,
    )
    assert [s["num_tokens"] for s in schedule] == [8, 8, 4, 4, 4, 4]
    assert schedule[-1]["cfg_cond_domains"] == ["untok_sen2l2a@224", "tok_lulc@224"]
    with pytest.raises(ValueError, match="Unknown decoding scheme"):
        generation.build_chained_generation_schedules(
            ["a"], ["b"], [4], ["beam"], [1], ["linear"], [1.0], ["constant"], [1.0], ["constant"]
        )
    with pytest.raises(ValueError, match="onex"):
        generation.build_chained_generation_schedules(
            ["a"], ["b"], [4], ["roar"], [1], ["linear"], [1.0], ["onex:x"], [1.0], ["constant"]
        )
    model = _tim()
    target = generation.init_empty_target_modality(MODALITY_INFO, "coords", 1, 4, "cpu")
    with pytest.raises(NotImplementedError, match="text tokenizer"):
        model.sampler.generate({"coords": target}, [{"target_domain": "coords", "scheme": "autoregressive"}])


def test_tim_backbone_in_a_segmentation_model_reference_style() -> None:
    """A TerraTorch 1.2 style config: TiM backbone, SelectIndices + ReshapeTokensToImage necks, UperNet."""
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not pretrained
        model = MODEL_FACTORY_REGISTRY.build("EncoderDecoderFactory").build_model(
            task="segmentation",
            backbone="terramind_v1_tiny_tim",
            backbone_modalities=["S2L2A", "S1GRD"],
            backbone_tim_modalities=["LULC"],
            necks=[
                {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
                {"name": "ReshapeTokensToImage", "remove_cls_token": False},
                {"name": "LearnedInterpolateToPyramidal"},
            ],
            decoder="UperNetDecoder",
            decoder_channels=16,
            num_classes=3,
        )
    out = model(_inputs(side=32)).output
    assert out.shape == (2, 3, 32, 32)
    out.sum().backward()
    assert model.encoder.encoder[0].attn.qkv.weight.grad is not None
    assert (
        model.encoder.sampler.model.decoder[0].self_attn.qkv.weight.grad is None
    )  # the generator stays frozen


def test_pretrained_tim_reads_the_published_file_from_the_hf_cache(empty_caches: Path) -> None:
    from terratorch.models.backbones.terramind.register_tim import build_terramind_encdec, build_terramind_tim
    from terratorch.models.weights import PretrainedWeightsNotFoundError

    depths = {"encoder_depth": 1, "decoder_depth": 1}
    kwargs = {"modalities": ["S1GRD"], **depths}
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"TerraMind_v1_tiny\.pt"):
        build_terramind_tim("terramind_v1_tiny", pretrained=True, **kwargs)
    encdec = build_terramind_encdec(
        "terramind_v1_tiny", modalities=["S1GRD", "LULC"], output_modalities=["LULC"], **depths
    )
    repo = empty_caches / "models--ibm-esa-geospatial--TerraMind-1.0-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("rev0")
    (repo / "snapshots" / "rev0").mkdir(parents=True)
    torch.save(encdec.state_dict(), repo / "snapshots" / "rev0" / "TerraMind_v1_tiny.pt")
    tim = build_terramind_tim("terramind_v1_tiny", pretrained=True, **kwargs)
    assert torch.equal(tim.sampler.model.decoder_norm.weight, encdec.decoder_norm.weight)
    again = build_terramind_encdec(
        "terramind_v1_tiny", pretrained=True, modalities=["S1GRD"], output_modalities=["LULC"], **depths
    )
    assert torch.equal(again.decoder[0].cross_attn.kv.weight, encdec.decoder[0].cross_attn.kv.weight)
