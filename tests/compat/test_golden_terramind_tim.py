"""TerraMind TiM backbones and the encoder-decoder against the reference.

Fixtures: ``tools/reference/golden_terramind_tim.py``.

Layouts of every size are compared on the meta device. For the seeded cases an encoder-decoder is
filled with ``fill_named`` and saved in the published layout (one file, encoder and decoder); the
tiny TiM backbone loads it with ``pretrained=True, ckpt_path=...`` (base: the same tensors through
the same filter, in memory) and must generate exactly the reference's LULC token ids, with features
within 1e-4. The generation sampler (MaskGIT, ROAR, guidance) and the encoder-decoder's masked-modeling
forward are checked on their own too.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import pytest
import torch
from golden_cases import fill_named
from golden_terramind_tim import (
    FEATURE_BLOCKS,
    LAYOUT_DECODER_KEYS,
    LAYOUT_ENCODER_KEYS,
    SAMPLER_CASES,
    SIZES,
    TIM_CASES,
    TIM_LAYOUT_KWARGS,
    WEIGHT_DECODER_KEYS,
    WEIGHT_ENCODER_KEYS,
    cpu_linspace,
    run_encdec_forward,
    run_sampler_case,
    run_tim_case,
    shapes,
)
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("terramind_tim")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "terramind_tim" / "tensors.safetensors"))


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    """Register the TiM/encdec names (the lazy manifest does this too once it lists them)."""
    import terratorch.models.backbones.terramind.register_tim  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _full_precision_one_thread():
    """Float32 matmuls as the writer ran them; one thread, since these tiny matmuls only lose from more."""
    precision, threads = torch.get_float32_matmul_precision(), torch.get_num_threads()
    torch.set_float32_matmul_precision("highest")
    torch.set_num_threads(1)
    yield
    torch.set_float32_matmul_precision(precision)
    torch.set_num_threads(threads)


def _encdec(size: str, encoder_keys: list[str], decoder_keys: list[str]) -> torch.nn.Module:
    from terratorch.models.backbones.terramind.register_tim import build_terramind_encdec

    return build_terramind_encdec(
        f"terramind_v1_{size}", modalities=encoder_keys, output_modalities=decoder_keys
    )


@contextlib.contextmanager
def _skipped_init():
    """Skip random initialisation (every tensor is set afterwards); saves seconds on the base model."""
    names = ("uniform_", "normal_", "xavier_uniform_", "constant_", "kaiming_uniform_", "trunc_normal_")
    saved = {name: getattr(torch.nn.init, name) for name in names}
    for name in names:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def _encdec_meta(size: str) -> torch.nn.Module:
    with torch.device("meta"), cpu_linspace():
        return _encdec(size, WEIGHT_ENCODER_KEYS, WEIGHT_DECODER_KEYS)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A published-layout file of our own tiny encoder-decoder, filled by key name (as the writer did)."""
    encdec = _encdec("tiny", WEIGHT_ENCODER_KEYS, WEIGHT_DECODER_KEYS)
    fill_named(encdec, torch)
    path = tmp_path_factory.mktemp("terramind_weights") / "TerraMind_v1_tiny.pt"
    torch.save(encdec.state_dict(), path)
    yield {"tiny": path}
    path.unlink(missing_ok=True)


def _tim_for(case: dict, weight_files: dict[str, Path]) -> torch.nn.Module:
    """The case's TiM backbone: via ``ckpt_path`` for tiny, via the same filter in memory otherwise."""
    from terratorch.models.backbones.terramind.register_tim import checkpoint_filter_fn_tim
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    kwargs = {"modalities": list(case["inputs"]), "tim_modalities": ["LULC"], **case["kwargs"]}
    name = f"terramind_v1_{case['size']}_tim"
    if case["size"] in weight_files:
        return TERRATORCH_BACKBONE_REGISTRY.build(
            name, pretrained=True, ckpt_path=str(weight_files[case["size"]]), **kwargs
        ).eval()
    with warnings.catch_warnings(), _skipped_init():
        warnings.simplefilter("ignore")  # "not pretrained": the weights follow
        tim = TERRATORCH_BACKBONE_REGISTRY.build(name, **kwargs)
    # the generator has the published encoder-decoder layout (the base file would be 800 MB): fill it
    # by key name as the writer filled its encoder-decoder, then load those tensors as a file's
    assert list(shapes(tim.sampler.model)) == list(shapes(_encdec_meta(case["size"])))
    fill_named(tim.sampler.model, torch)
    state = {k: v.clone() for k, v in tim.sampler.model.state_dict().items()}
    tim.load_state_dict(checkpoint_filter_fn_tim(state, tim), strict=True)
    return tim.eval()


@pytest.mark.parametrize("size", list(SIZES))
def test_tim_and_encdec_layouts_match_reference(size: str) -> None:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    layouts = MANIFEST["layouts"][size]
    with torch.device("meta"), cpu_linspace(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tim = TERRATORCH_BACKBONE_REGISTRY.build(f"terramind_v1_{size}_tim", **TIM_LAYOUT_KWARGS)
        encdec = _encdec(size, LAYOUT_ENCODER_KEYS, LAYOUT_DECODER_KEYS)
    diff = layout_diff(layouts["tim_state_dict"], shapes(tim))
    assert not diff, f"{size} TiM layout: {diff}"
    assert list(tim.out_channels) == layouts["tim_out_channels"]
    assert tim.modalities == layouts["tim_modalities"]
    assert tim.image_modalities == layouts["tim_image_modalities"]
    ours = shapes(encdec)
    diff = layout_diff(layouts["encdec_state_dict"], ours)
    assert not diff, f"{size} encoder-decoder layout: {diff}"
    # same key order: fill_named then gives tied tensors (mod_emb, token_emb/to_logits) the same values
    assert list(ours) == list(layouts["encdec_state_dict"])


def test_reference_tokenizer_tensors_are_ignored_on_load() -> None:
    """A reference TiM ``state_dict`` has LULC tokenizer tensors; ours builds none and loads it strictly."""
    from terratorch.models.backbones.terramind.register_tim import build_terramind_tim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tim = build_terramind_tim("terramind_v1_tiny", **TIM_LAYOUT_KWARGS)
    state = dict(tim.state_dict())
    state.update(
        {f"tokenizer.tok_lulc@224.t{i}": torch.zeros(1) for i in range(MANIFEST["tim_tokenizer_keys"])}
    )
    result = tim.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("case", TIM_CASES, ids=[c["case"] for c in TIM_CASES])
def test_tim_generates_the_reference_tokens(case, weight_files, expected) -> None:
    facts = MANIFEST["cases"][case["case"]]
    tim = _tim_for(case, weight_files)
    tokens, feats = run_tim_case(tim, case)
    key = case["case"]
    assert tokens.dtype == torch.int64
    assert torch.equal(tokens, expected[f"{key}.tokens"]), (
        f"{key}: generated tokens differ from the reference"
    )
    assert len(feats) == facts["n_features"]
    assert list(tim.out_channels) == facts["out_channels"]
    for block in FEATURE_BLOCKS:
        reference = expected[f"{key}.block{block}"]
        assert feats[block].shape == reference.shape
        worst = (feats[block] - reference).abs().max().item()
        assert worst < ATOL, f"{key} block {block}: max |diff| {worst:.2e}"
    maps = tim.prepare_features_for_image_model([feats[-1]])
    side = case["side"] // 16
    assert maps[0].shape == (1, facts["out_channels"][-1], side, side)


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=[c["case"] for c in SAMPLER_CASES])
def test_sampler_generates_the_reference_tokens(case, weight_files, expected) -> None:
    from terratorch.models.backbones.terramind import generation
    from terratorch.models.backbones.terramind.modalities import MODALITY_INFO
    from terratorch.models.backbones.terramind.register_tim import build_terramind_encdec

    encdec = build_terramind_encdec(
        "terramind_v1_tiny",
        ckpt_path=str(weight_files["tiny"]),
        modalities=WEIGHT_ENCODER_KEYS,
        output_modalities=WEIGHT_DECODER_KEYS,
    ).eval()
    tokens, steps = run_sampler_case(generation, encdec, MODALITY_INFO, case)
    assert steps == MANIFEST["sampler"][case["case"]]["steps_tokens"]
    assert torch.equal(tokens, expected[f"sampler.{case['case']}.tokens"])


def test_encdec_masked_modeling_matches_reference(weight_files, expected) -> None:
    """The encoder-decoder's own forward (decoder self-attention masks, loss) on the published weights."""
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    encdec = TERRATORCH_FULL_MODEL_REGISTRY.build(
        "terramind_v1_tiny_encdec",
        ckpt_path=str(weight_files["tiny"]),
        modalities=WEIGHT_ENCODER_KEYS,
        output_modalities=WEIGHT_DECODER_KEYS,
    ).eval()
    loss, logits = run_encdec_forward(encdec)
    assert logits.shape == expected["encdec.logits"].shape
    assert (logits - expected["encdec.logits"]).abs().max().item() < ATOL
    assert abs(loss.item() - expected["encdec.loss"].item()) < ATOL


def test_encdec_registry_contract() -> None:
    """Base/large take embeddings as in the reference; our tiny/small work too (the reference's fail)."""
    from terratorch.models.backbones.terramind.decoder_embeddings import ImageTokenDecoderEmbedding
    from terratorch.models.backbones.terramind.embeddings import ImageEncoderEmbedding
    from terratorch.models.backbones.terramind.modalities import MODALITY_INFO
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    for size, outcome in MANIFEST["encdec_registry"].items():
        dim = SIZES[size]["dim"]
        with torch.device("meta"), cpu_linspace():
            model = TERRATORCH_FULL_MODEL_REGISTRY.build(
                f"terramind_v1_{size}_encdec",
                encoder_embeddings={"untok_sen2l2a@224": ImageEncoderEmbedding(12, 16, dim)},
                decoder_embeddings={"tok_lulc@224": ImageTokenDecoderEmbedding(4375, 16, dim)},
                modality_info=MODALITY_INFO,
            )
        if "n_keys" in outcome:
            assert type(model).__name__ == outcome["class"]
            assert len(model.state_dict()) == outcome["n_keys"]
