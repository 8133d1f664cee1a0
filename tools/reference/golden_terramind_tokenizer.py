"""Golden fixtures of the TerraMind v1 LULC and NDVI tokenizers.

For both tokenizers the state-dict layout (key -> shape) is stored. Each is then filled with
``golden_cases.fill_named`` (its latents then spread over many FSQ levels) and ``encode`` runs on
seeded inputs: LULC as class ids
``[B, H, W]`` and as one-hot ``[B, 10, H, W]``, NDVI as a float map ``[B, 1, H, W]``. The token ids
(compared exactly), the quantized latents and, for LULC, ``decode_tokens(ids)`` are stored. The
helpers import no ``terratorch``, so the golden test repeats the same steps with our implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

TOKENIZERS = ("terramind_v1_tokenizer_lulc", "terramind_v1_tokenizer_ndvi")
SIDE = 64
N_CLASSES = 10


def rounding_margin(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Smallest distance of a scaled latent to an FSQ rounding boundary (how safe exact ids are)."""
    with torch.no_grad():
        latent = model.quant_proj(model.encoder(x)).permute(0, 2, 3, 1)
        scaled = torch.sigmoid(latent) * (model.quantize._levels - 1)
    return float(((scaled - scaled.floor()) - 0.5).abs().min())


def inputs_for(name: str) -> dict[str, torch.Tensor]:
    """Seeded inputs per case of one tokenizer."""
    if name.endswith("_ndvi"):
        return {"float": make_input(torch, (2, 1, SIDE, SIDE), seed=3)}
    ids = torch.randint(0, N_CLASSES, (2, SIDE, SIDE), generator=torch.Generator().manual_seed(4))
    one_hot = torch.nn.functional.one_hot(ids, N_CLASSES).permute(0, 3, 1, 2).float()
    return {"ids": ids, "one_hot": one_hot}


def run_cases(name: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{<name>.<case>.{tokens,quant[,decoded]}: tensor}`` of a filled tokenizer in eval mode."""
    out: dict[str, torch.Tensor] = {}
    model.eval()
    with torch.no_grad():
        for case, x in inputs_for(name).items():
            quant, _, tokens = model.encode(x)
            out[f"{name}.{case}.tokens"] = tokens.to(torch.int64).contiguous()
            out[f"{name}.{case}.quant"] = quant.contiguous()
            if name.endswith("_lulc"):
                out[f"{name}.{case}.decoded"] = model.decode_tokens(tokens).contiguous()
    return out


def write(out: Path) -> int:
    from safetensors.torch import save_file

    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {"layouts": {}, "encode": {}}
    tensors: dict[str, torch.Tensor] = {}
    for name in TOKENIZERS:
        model = TERRATORCH_FULL_MODEL_REGISTRY.build(name)
        manifest["layouts"][name] = {k: list(v.shape) for k, v in model.state_dict().items()}
        fill_named(model, torch)
        results = run_cases(name, model)
        tensors.update(results)
        with torch.no_grad():
            _, loss, tokens = model.encode(next(iter(inputs_for(name).values())))
        manifest["encode"][name] = {
            "type": type(model).__name__,
            "cases": sorted(inputs_for(name)),
            "loss_shape": list(loss.shape),
            "token_dtype": str(tokens.dtype),
            "rounding_margin": min(rounding_margin(model, x) for x in inputs_for(name).values()),
        }
        del model
    save_file(tensors, str(out / "encode.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(tensors)
