"""Golden fixtures of TerraMind Thinking-in-Modalities (TiM) and the TerraMind encoder-decoder.

Facts written:

- ``layouts``: the ``state_dict`` key → shape tables of the ``terramind_v1_*_tim`` backbones (tokenizer
  keys counted, not listed: we build no tokenizers) and of the encoder-decoder of every size, plus
  what the reference's ``terramind_v1_*_encdec`` registry entries do when called.
- ``cases``: with an encoder-decoder filled by :func:`golden_cases.fill_named` and saved in the
  published layout (one file holding encoder and decoder), a TiM backbone is built with
  ``pretrained=True`` from that file; with fixed seeds (``random.seed``, ``torch.manual_seed``) its
  generated LULC tokens and its features are stored. ``sampler`` cases run the generation sampler
  directly (MaskGIT and ROAR schedules) on the encoder-decoder with an explicit seed; the
  encoder-decoder's masked-modeling loss and logits are stored too.

The helpers here import no ``terratorch`` at module level, so our golden test reuses the case
tables and the runners with our implementation.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

#: Architecture facts of the published sizes (dim, encoder/decoder depth, heads, v1 "base-style" blocks).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"dim": 192, "encoder_depth": 12, "decoder_depth": 4, "num_heads": 3, "swiglu": False},
    "small": {"dim": 384, "encoder_depth": 12, "decoder_depth": 6, "num_heads": 6, "swiglu": False},
    "base": {"dim": 768, "encoder_depth": 12, "decoder_depth": 12, "num_heads": 12, "swiglu": True},
    "large": {"dim": 1024, "encoder_depth": 24, "decoder_depth": 24, "num_heads": 16, "swiglu": True},
}
#: Modalities of the weight files written for the cases (canonical keys) and of the layout tables.
WEIGHT_ENCODER_KEYS = ["untok_sen2l2a@224", "untok_sen1grd@224", "tok_lulc@224"]
WEIGHT_DECODER_KEYS = ["tok_lulc@224"]
LAYOUT_ENCODER_KEYS = ["untok_sen2l2a@224", "untok_sen1grd@224", "tok_lulc@224", "coords"]
LAYOUT_DECODER_KEYS = ["tok_lulc@224", "coords"]
TIM_LAYOUT_KWARGS: dict[str, Any] = {"modalities": ["S2L2A", "S1GRD"], "tim_modalities": ["LULC"]}

#: TiM cases: size, input side, inputs, extra backbone kwargs, python/torch seed.
TIM_CASES: list[dict[str, Any]] = [
    {
        "case": "tiny_two_mean",
        "size": "tiny",
        "side": 64,
        "inputs": ["S2L2A", "S1GRD"],
        "kwargs": {},
        "seed": 0,
    },
    {"case": "tiny_one_mean", "size": "tiny", "side": 64, "inputs": ["S2L2A"], "kwargs": {}, "seed": 1},
    {
        "case": "tiny_two_concat_topk",
        "size": "tiny",
        "side": 32,
        "inputs": ["S2L2A", "S1GRD"],
        "kwargs": {"merge_method": "concat", "tim_top_k": 50, "tim_top_p": 0.0, "tim_temps": 0.7},
        "seed": 2,
    },
    {
        "case": "tiny_two_max_greedy",
        "size": "tiny",
        "side": 32,
        "inputs": ["S2L2A", "S1GRD"],
        "kwargs": {"merge_method": "max", "tim_temps": 0.0},
        "seed": 3,
    },
    {
        "case": "base_two_mean",
        "size": "base",
        "side": 32,
        "inputs": ["S2L2A", "S1GRD"],
        "kwargs": {},
        "seed": 4,
    },
]
#: Sampler cases on the tiny encoder-decoder: scheme, steps, token schedule, temperature schedule, top-k/p.
SAMPLER_CASES: list[dict[str, Any]] = [
    {
        "case": "maskgit_cosine",
        "scheme": "maskgit",
        "steps": 3,
        "schedule": "cosine",
        "temp": "linear",
        "top_k": 0,
        "top_p": 0.9,
        "seed": 11,
    },
    {
        "case": "roar_linear",
        "scheme": "roar",
        "steps": 4,
        "schedule": "linear",
        "temp": "constant",
        "top_k": 20,
        "top_p": 0.0,
        "seed": 12,
    },
    {
        "case": "maskgit_cfg",
        "scheme": "maskgit",
        "steps": 2,
        "schedule": "linear",
        "temp": "onex:0.5:0.5",
        "top_k": 0,
        "top_p": 0.0,
        "seed": 13,
        "cfg": 2.0,
        "cond": ["untok_sen1grd@224"],
    },
]
SAMPLER_SIDE = 64
INPUT_CHANNELS = {"S2L2A": 12, "S1GRD": 2}
FEATURE_BLOCKS = (5, -1)


def tim_inputs(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The seeded raw inputs of a TiM case (one tensor per modality)."""
    side = case["side"]
    return {
        name: make_input(torch, (1, INPUT_CHANNELS[name], side, side), seed=i)
        for i, name in enumerate(case["inputs"])
    }


def run_tim_case(model: torch.nn.Module, case: dict[str, Any]) -> tuple[torch.Tensor, list[Any]]:
    """Seed both RNGs, run the TiM backbone and return (generated tokens, features)."""
    captured: dict[str, Any] = {}
    generate = model.sampler.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = generate(*args, **kwargs)
        captured["out"] = out
        return out

    model.sampler.generate = spy
    try:
        random.seed(case["seed"])
        torch.manual_seed(case["seed"])
        with torch.no_grad():
            feats = model(tim_inputs(case))
    finally:
        del model.sampler.generate
    tokens = captured["out"]["tok_lulc@224"]["tensor"]
    return tokens, feats


def sampler_inputs(generation: Any, modality_info: dict[str, Any]) -> dict[str, Any]:
    """The modality dict of a sampler case: S2L2A and S1GRD as full inputs, an empty LULC target."""
    tokens = (SAMPLER_SIDE // 16) ** 2
    mod_dict = {}
    for i, (key, channels) in enumerate((("untok_sen2l2a@224", 12), ("untok_sen1grd@224", 2))):
        value = {
            "tensor": make_input(torch, (1, channels, SAMPLER_SIDE, SAMPLER_SIDE), seed=20 + i),
            "input_mask": torch.zeros(1, tokens, dtype=torch.bool),
            "target_mask": torch.ones(1, tokens, dtype=torch.bool),
            "decoder_attention_mask": torch.zeros(1, tokens, dtype=torch.bool),
        }
        mod_dict[key] = generation.init_full_input_modality(value, modality_info, key, "cpu")
    mod_dict["tok_lulc@224"] = generation.init_empty_target_modality(
        modality_info, "tok_lulc@224", 1, tokens, "cpu"
    )
    return mod_dict


def run_sampler_case(
    generation: Any, encdec: torch.nn.Module, modality_info: dict[str, Any], case: dict
) -> Any:
    """Build the case's schedule and generate LULC tokens with the module ``generation``'s sampler."""
    tokens = (SAMPLER_SIDE // 16) ** 2
    conditioning = case.get("cond", ["untok_sen2l2a@224", "untok_sen1grd@224"])
    schedule = generation.build_chained_generation_schedules(
        cond_domains=conditioning,
        target_domains=["tok_lulc@224"],
        tokens_per_target=[tokens],
        autoregression_schemes=[case["scheme"]],
        decoding_steps=[case["steps"]],
        token_decoding_schedules=[case["schedule"]],
        temps=[1.0],
        temp_schedules=[case["temp"]],
        cfg_scales=[case.get("cfg", 1.0)],
        cfg_schedules=["constant"],
        cfg_grow_conditioning=True,
    )
    sampler = generation.GenerationSampler(encdec)
    torch.manual_seed(0)
    out = sampler.generate(
        sampler_inputs(generation, modality_info),
        schedule,
        top_k=case["top_k"],
        top_p=case["top_p"],
        seed=case["seed"],
    )
    return out["tok_lulc@224"]["tensor"], [int(step["num_tokens"]) for step in schedule]


def encdec_mod_dict() -> dict[str, dict[str, torch.Tensor]]:
    """A masked-modeling batch for the tiny encoder-decoder: two raw inputs, half-visible LULC tokens."""
    tokens = (SAMPLER_SIDE // 16) ** 2
    mod_dict = {}
    for i, (key, channels) in enumerate((("untok_sen2l2a@224", 12), ("untok_sen1grd@224", 2))):
        mod_dict[key] = {
            "tensor": make_input(torch, (1, channels, SAMPLER_SIDE, SAMPLER_SIDE), seed=30 + i),
            "input_mask": torch.zeros(1, tokens, dtype=torch.bool),
            "target_mask": torch.ones(1, tokens, dtype=torch.bool),
        }
    visible = torch.arange(tokens) % 2 == 0
    attention = torch.zeros(1, tokens, dtype=torch.int)
    attention[0, 0] = tokens  # one fully connected group
    mod_dict["tok_lulc@224"] = {
        "tensor": torch.randint(0, 4375, (1, tokens), generator=torch.Generator().manual_seed(5)),
        "input_mask": ~visible[None],
        "target_mask": visible[None].clone(),
        "decoder_attention_mask": attention,
    }
    return mod_dict


def run_encdec_forward(encdec: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked-modeling loss and all decoder logits of :func:`encdec_mod_dict` (``random`` seeded)."""
    tokens = (SAMPLER_SIDE // 16) ** 2
    budget = {"num_encoder_tokens": 2 * tokens + tokens // 2, "num_decoder_tokens": tokens // 2}
    random.seed(0)
    with torch.no_grad():
        loss, _ = encdec(encdec_mod_dict(), **budget)
        logits = encdec(encdec_mod_dict(), **budget, return_logits=True)["tok_lulc@224"]
    return loss.reshape(1), logits


def shapes(module: torch.nn.Module, skip: str = "tokenizer.") -> dict[str, list[int]]:
    """``state_dict`` key → shape, in ``state_dict`` order, without the keys under ``skip``."""
    return {k: list(v.shape) for k, v in module.state_dict().items() if not k.startswith(skip)}


def _reference_encdec(size: str, encoder_keys: list[str], decoder_keys: list[str]) -> torch.nn.Module:
    from functools import partial

    from terratorch.models.backbones.terramind.model.modality_info import MODALITY_INFO
    from terratorch.models.backbones.terramind.model.terramind import TerraMind
    from terratorch.models.backbones.terramind.model.tm_utils import LayerNorm

    facts = SIZES[size]
    dim = facts["dim"]

    def embeddings(keys: list[str], kind: str) -> dict[str, torch.nn.Module]:
        return {k: MODALITY_INFO[k][kind](image_size=224, dim_tokens=dim, **MODALITY_INFO[k]) for k in keys}

    swiglu = facts["swiglu"]
    return TerraMind(
        encoder_embeddings=embeddings(encoder_keys, "encoder_embedding"),
        decoder_embeddings=embeddings(decoder_keys, "decoder_embedding"),
        modality_info=MODALITY_INFO,
        dim=dim,
        encoder_depth=facts["encoder_depth"],
        decoder_depth=facts["decoder_depth"],
        num_heads=facts["num_heads"],
        mlp_ratio=4,
        qkv_bias=not swiglu,
        proj_bias=not swiglu,
        mlp_bias=not swiglu,
        norm_layer=partial(LayerNorm, eps=1e-6, bias=False),
        act_layer=torch.nn.SiLU if swiglu else torch.nn.GELU,
        gated_mlp=swiglu,
    )


def _registry_encdec_outcome(size: str) -> dict[str, Any]:
    """What ``terramind_v1_<size>_encdec`` does when given embeddings (the reference's own contract)."""
    from terratorch.models.backbones.terramind.model import terramind_register as reg
    from terratorch.models.backbones.terramind.model.modality_info import MODALITY_INFO

    dim = SIZES[size]["dim"]
    kwargs = {
        "encoder_embeddings": {
            "untok_sen2l2a@224": MODALITY_INFO["untok_sen2l2a@224"]["encoder_embedding"](
                image_size=224, dim_tokens=dim, **MODALITY_INFO["untok_sen2l2a@224"]
            )
        },
        "decoder_embeddings": {
            "tok_lulc@224": MODALITY_INFO["tok_lulc@224"]["decoder_embedding"](
                image_size=224, dim_tokens=dim, **MODALITY_INFO["tok_lulc@224"]
            )
        },
        "modality_info": MODALITY_INFO,
    }
    try:
        with torch.device("meta"), cpu_linspace():
            model = getattr(reg, f"terramind_v1_{size}_encdec")(**kwargs)
    except Exception as error:
        return {"error": type(error).__name__, "message": str(error)[:200]}
    return {"class": type(model).__name__, "n_keys": len(model.state_dict())}


@contextlib.contextmanager
def cpu_linspace() -> Any:
    """Stochastic-depth rates are read with ``.item()``, which meta tensors refuse: compute them on CPU."""
    original = torch.linspace

    def linspace(*args: Any, **kwargs: Any) -> torch.Tensor:
        return original(*args, **{**kwargs, "device": "cpu"})

    torch.linspace = linspace
    try:
        yield
    finally:
        torch.linspace = original


def write(out: Path) -> int:
    import gc
    import tempfile
    import warnings

    from safetensors.torch import save_file
    from terratorch.models.backbones.terramind.model import generate as ref_generation
    from terratorch.models.backbones.terramind.model import terramind_register as reg
    from terratorch.models.backbones.terramind.model.modality_info import MODALITY_INFO

    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    torch.set_float32_matmul_precision("highest")
    warnings.filterwarnings("ignore")
    manifest: dict[str, Any] = {"layouts": {}, "cases": {}, "sampler": {}, "encdec_registry": {}}
    tensors: dict[str, torch.Tensor] = {}

    saved_tokenizers = reg.tokenizer_dict
    lulc_tokenizer = saved_tokenizers["v1"]["tok_lulc@224"](pretrained=False)
    manifest["tim_tokenizer_keys"] = len(lulc_tokenizer.state_dict())  # under tokenizer.tok_lulc@224.
    del lulc_tokenizer
    reg.tokenizer_dict = {
        "v1": {},
        "v01": {},
    }  # TiM builds tokenizers only for tokenised inputs we never give
    try:
        for size in SIZES:
            with torch.device("meta"), cpu_linspace():
                tim = TERRATORCH_BACKBONE_REGISTRY.build(f"terramind_v1_{size}_tim", **TIM_LAYOUT_KWARGS)
                encdec = _reference_encdec(size, LAYOUT_ENCODER_KEYS, LAYOUT_DECODER_KEYS)
            manifest["layouts"][size] = {
                "tim_state_dict": shapes(tim),
                "tim_out_channels": list(tim.out_channels),
                "tim_modalities": list(tim.modalities),
                "tim_image_modalities": list(tim.image_modalities),
                "encdec_state_dict": shapes(encdec),
            }
            manifest["encdec_registry"][size] = _registry_encdec_outcome(size)
            del tim, encdec
            gc.collect()
    finally:
        reg.tokenizer_dict = saved_tokenizers

    saved_tokenizers = reg.tokenizer_dict
    saved_download = reg.hf_hub_download
    reg.tokenizer_dict = {
        "v1": {},
        "v01": {},
    }  # TiM builds tokenizers only for tokenised inputs we never give
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files: dict[str, Path] = {}
            for size in sorted({c["size"] for c in TIM_CASES}):
                encdec = _reference_encdec(size, WEIGHT_ENCODER_KEYS, WEIGHT_DECODER_KEYS)
                fill_named(encdec, torch)
                files[size] = Path(tmp) / f"TerraMind_v1_{size}.pt"
                torch.save(encdec.state_dict(), files[size])
                if size == "tiny":
                    encdec.eval()
                    loss, logits = run_encdec_forward(encdec)
                    tensors["encdec.loss"], tensors["encdec.logits"] = loss, logits.contiguous()
                    for case in SAMPLER_CASES:
                        tokens, steps = run_sampler_case(ref_generation, encdec, MODALITY_INFO, case)
                        tensors[f"sampler.{case['case']}.tokens"] = tokens.contiguous()
                        manifest["sampler"][case["case"]] = {**case, "steps_tokens": steps}
                del encdec
                gc.collect()
            for case in TIM_CASES:
                reg.hf_hub_download = lambda repo_id, filename, _f=files[case["size"]], **kw: str(_f)
                torch.manual_seed(0)
                tim = TERRATORCH_BACKBONE_REGISTRY.build(
                    f"terramind_v1_{case['size']}_tim",
                    pretrained=True,
                    modalities=list(case["inputs"]),
                    tim_modalities=["LULC"],
                    **case["kwargs"],
                ).eval()
                tokens, feats = run_tim_case(tim, case)
                key = case["case"]
                tensors[f"{key}.tokens"] = tokens.contiguous()
                for block in FEATURE_BLOCKS:
                    tensors[f"{key}.block{block}"] = feats[block].contiguous()
                manifest["cases"][key] = {
                    **case,
                    "n_features": len(feats),
                    "out_channels": list(tim.out_channels),
                    "feature_shape": list(feats[-1].shape),
                }
                del tim
                gc.collect()
    finally:
        reg.tokenizer_dict = saved_tokenizers
        reg.hf_hub_download = saved_download
    save_file(tensors, str(out / "tensors.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return len(manifest["cases"]) + len(manifest["sampler"]) + len(manifest["layouts"])
