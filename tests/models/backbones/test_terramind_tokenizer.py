"""Unit tests of the TerraMind VQ-VAE tokenizers (FSQ, ViT codec, VQ/VQVAE, registry and weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from terratorch.models.backbones.terramind.tokenizer.fsq import FiniteScalarQuantizer, parse_levels
from terratorch.models.backbones.terramind.tokenizer.vit_codec import build_2d_sincos_posemb, build_vit
from terratorch.models.backbones.terramind.tokenizer.vqvae import VQ, VQVAE

SMALL = {
    "image_size": 32,
    "n_channels": 4,
    "enc_type": "vit_s_enc",
    "patch_size": 8,
    "codebook_size": "5-4-3",
    "latent_dim": 3,
    "post_mlp": True,
}


@pytest.fixture(scope="module")
def small_vqvae() -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(dec_type="vit_s_dec", **SMALL).eval()


def test_fsq_ids_and_codes_round_trip() -> None:
    fsq = FiniteScalarQuantizer("5-4-3").eval()
    assert fsq.codebook_size == 60
    assert fsq.codebook.shape == (60, 3)
    latent = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 3
    quant, loss, ids = fsq(latent)
    assert ids.dtype == torch.int32 and ids.shape == (2, 4, 5)
    assert int(ids.min()) >= 0 and int(ids.max()) < 60
    assert loss.shape == (1,) and float(loss) == 0.0
    torch.testing.assert_close(fsq.indices_to_embedding(ids), quant)
    # every id maps to a distinct code, and the code maps back to the id
    codes = fsq.indice_to_code(torch.arange(60))
    _, back = fsq.latent_to_code_and_indice(torch.logit(codes.clamp(1e-4, 1 - 1e-4)))
    assert torch.equal(back, torch.arange(60, dtype=torch.int32))


def test_fsq_passes_gradients_straight_through() -> None:
    latent = torch.randn(1, 3, 2, 2, requires_grad=True)
    FiniteScalarQuantizer("5-4-3")(latent)[0].sum().backward()
    assert latent.grad is not None and bool((latent.grad > 0).all())


@pytest.mark.parametrize("spec", ["", "8-x", "8-1", None])
def test_fsq_rejects_bad_codebook_spec(spec: object) -> None:
    with pytest.raises(ValueError, match="dash-separated"):
        parse_levels(spec)  # type: ignore[arg-type]


def test_sincos_posemb_matches_closed_form() -> None:
    emb = build_2d_sincos_posemb(3, 3, embed_dim=8)
    assert emb.shape == (1, 8, 3, 3)
    omega = 1.0 / 10000.0 ** (torch.arange(2) / 2)
    row, col = 2, 1
    expected = torch.cat(
        [torch.sin(row * omega), torch.cos(row * omega), torch.sin(col * omega), torch.cos(col * omega)]
    )
    torch.testing.assert_close(emb[0, :, row, col], expected)
    with pytest.raises(ValueError, match="divisible by 4"):
        build_2d_sincos_posemb(2, 2, embed_dim=6)


def test_unknown_codec_preset_suggests_names() -> None:
    with pytest.raises(ValueError, match="vit_b_enc"):
        build_vit("vit_b_enk", in_channels=1)


def test_encode_shapes_and_class_map_forms(small_vqvae: VQVAE) -> None:
    ids = torch.randint(0, 4, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    one_hot = torch.nn.functional.one_hot(ids, 4).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        quant, loss, tokens = small_vqvae.encode(one_hot, "cpu")  # the reference's callers pass a device
        for other in (ids, ids[:, None]):
            assert torch.equal(small_vqvae.tokenize(other), tokens)
    assert quant.shape == (2, 3, 4, 4) and tokens.shape == (2, 4, 4) and loss.shape == (1,)
    torch.testing.assert_close(small_vqvae.tokens_to_embedding(tokens), quant)


def test_encode_other_sizes_interpolates_positions(small_vqvae: VQVAE) -> None:
    with torch.no_grad():
        assert small_vqvae.tokenize(torch.randn(1, 4, 48, 16)).shape == (1, 6, 2)


def test_decode_tokens_and_autoencode(small_vqvae: VQVAE) -> None:
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        tokens = small_vqvae.tokenize(x)
        decoded = small_vqvae.decode_tokens(tokens)
        torch.testing.assert_close(small_vqvae.autoencode(x), decoded)
        recon, loss = small_vqvae(x)
    assert decoded.shape == (1, 4, 32, 32)
    torch.testing.assert_close(recon, decoded)
    assert loss.shape == (1,)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.randn(1, 3, 32, 32), "Expected input with 4 channels"),
        (torch.full((1, 32, 32), 7), r"Class map values must lie in \[0, 3\]"),
        (torch.randn(1, 4, 30, 32), "divisible by the patch size"),
    ],
)
def test_encode_rejects_bad_input(small_vqvae: VQVAE, x: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_vqvae.encode(x)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="'fsq'"):
        VQ(**{**SMALL, "quant_type": "fsqq"})
    with pytest.raises(ValueError, match="latent_dim"):
        VQ(**{**SMALL, "latent_dim": 4})
    with pytest.raises(ValueError, match="enc_type"):
        VQ(**{**SMALL, "enc_type": "vit_s_dec"})
    with pytest.raises(ValueError, match="out_conv"):
        VQVAE(out_conv=True, **SMALL)


def test_encoder_only_tokenizer_cannot_decode() -> None:
    model = VQ(**SMALL).eval()
    with torch.no_grad():
        tokens = model.tokenize(torch.randn(1, 4, 32, 32))
    with pytest.raises(NotImplementedError, match="encoder-only"):
        model.decode_tokens(tokens)


def test_registered_names_and_metadata() -> None:
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    for name in ("terramind_v1_tokenizer_lulc", "terramind_v1_tokenizer_ndvi"):
        assert name in TERRATORCH_FULL_MODEL_REGISTRY
    with torch.device("meta"):
        lulc = TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_lulc")
    assert isinstance(lulc, VQVAE)
    assert lulc.encoder.proj.weight.shape == (768, 10, 16, 16)
    assert lulc.decoder.out_proj.weight.shape == (10 * 16 * 16, 768)
    with pytest.raises(ValueError, match="model_type"):
        from terratorch.models.backbones.terramind.tokenizer.register import build_vqvae

        build_vqvae(model_type="divae", **SMALL)


@pytest.fixture(scope="module")
def ndvi_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A published-style NDVI file: our encoder's weights plus (ignored) diffusion decoder keys."""
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    torch.manual_seed(3)
    model = TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_ndvi")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ndvi") / "TerraMind_Tokenizer_NDVI.pt"
    torch.save({**state, "decoder.out.2.weight": torch.zeros(2, 2)}, path)
    return path, state


def test_ndvi_ckpt_path_and_pretrained_load(
    ndvi_file: tuple[Path, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import terratorch.models.weights as weights
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    path, state = ndvi_file
    loaded = TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_ndvi", ckpt_path=str(path))
    torch.testing.assert_close(loaded.quant_proj.weight, state["quant_proj.weight"])

    seen = {}

    def fake_resolve(ckpt_path: object, **kwargs: object) -> Path:
        seen.update(kwargs)
        return path

    monkeypatch.setattr(weights, "resolve_weights_file", fake_resolve)
    loaded = TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_ndvi", pretrained=True)
    torch.testing.assert_close(loaded.encoder.proj.weight, state["encoder.proj.weight"])
    assert seen["hf_repo_id"] == "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-NDVI"
    assert list(seen["hf_filenames"]) == ["TerraMind_Tokenizer_NDVI.pt"]


def test_pretrained_incomplete_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import terratorch.models.weights as weights
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    path = tmp_path / "partial.pt"
    torch.save({"quant_proj.bias": torch.zeros(5)}, path)
    monkeypatch.setattr(weights, "resolve_weights_file", lambda ckpt_path, **kwargs: path)
    with pytest.raises(weights.CheckpointMismatchError):
        TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_ndvi", pretrained=True)


def test_missing_weights_file_names_the_path(tmp_path: Path) -> None:
    from terratorch.models.weights import PretrainedWeightsNotFoundError
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    missing = tmp_path / "nope.pt"
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"nope\.pt"):
        TERRATORCH_FULL_MODEL_REGISTRY.build("terramind_v1_tokenizer_ndvi", ckpt_path=str(missing))


# ----------------------------------------------------------------------------------------------
# inside TerraMind: raw LULC/NDVI inputs are tokenized
# ----------------------------------------------------------------------------------------------
SMALL_TM = {"encoder_depth": 2}


@pytest.fixture(scope="module")
def tm_lulc() -> torch.nn.Module:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    torch.manual_seed(0)
    return TERRATORCH_BACKBONE_REGISTRY.build(
        "terramind_v1_tiny", modalities=["S2L2A", "LULC"], **SMALL_TM
    ).eval()


def test_terramind_v1_builds_the_lulc_tokenizer(tm_lulc: torch.nn.Module) -> None:
    assert list(tm_lulc.tokenizer) == ["tok_lulc@224"]
    assert isinstance(tm_lulc.tokenizer["tok_lulc@224"], VQVAE)
    assert "tokenizer.tok_lulc@224.encoder.proj.weight" in tm_lulc.state_dict()


def test_raw_lulc_input_equals_its_token_ids(tm_lulc: torch.nn.Module) -> None:
    s2 = torch.randn(1, 12, 32, 32, generator=torch.Generator().manual_seed(0))
    classes = torch.randint(0, 10, (1, 1, 32, 32), generator=torch.Generator().manual_seed(1))
    one_hot = torch.nn.functional.one_hot(classes[:, 0], 10).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        tokens = tm_lulc.tokenizer["tok_lulc@224"].tokenize(one_hot)
        expected = tm_lulc({"S2L2A": s2, "LULC": tokens})[-1]
        for raw in (one_hot, classes, classes.float()):
            torch.testing.assert_close(tm_lulc({"S2L2A": s2, "LULC": raw})[-1], expected)


def test_tim_tokenizes_raw_inputs_and_builds_its_tim_tokenizer() -> None:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    torch.manual_seed(0)
    tim = TERRATORCH_BACKBONE_REGISTRY.build(
        "terramind_v1_tiny_tim", modalities=["S2L2A", "NDVI"], encoder_depth=2, decoder_depth=1
    ).eval()
    assert sorted(tim.tokenizer) == ["tok_lulc@224", "tok_ndvi@224"]
    s2 = torch.randn(1, 12, 32, 32, generator=torch.Generator().manual_seed(0))
    ndvi = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens = tim.tokenizer["tok_ndvi@224"].tokenize(ndvi)
        import random

        random.seed(0)
        from_raw = tim({"S2L2A": s2, "NDVI": ndvi})[-1]
        random.seed(0)
        from_tokens = tim({"S2L2A": s2, "NDVI": tokens})[-1]
    torch.testing.assert_close(from_raw, from_tokens)


def test_tokenizer_without_weights_refuses_raw_input_until_loaded() -> None:
    from terratorch.models.backbones.terramind.tokenizer.register import build_for_terramind
    from terratorch.models.weights import PretrainedWeightsNotFoundError

    tokenizer = build_for_terramind("terramind_v1_tokenizer_ndvi", pretrained=True)  # offline: not cached
    assert tokenizer.missing_weights is not None
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(PretrainedWeightsNotFoundError, match="Pass token ids instead"):
        tokenizer.encode(x)
    tokenizer.load_state_dict(tokenizer.state_dict())  # e.g. a fine-tuned checkpoint with tokenizer.*
    assert tokenizer.missing_weights is None
    assert tokenizer.tokenize(x).shape == (1, 2, 2)
