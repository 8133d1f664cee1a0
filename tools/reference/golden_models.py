"""Golden fixtures of the model matrix: state-dict layout and eval-mode outputs per case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import encoder_decoder_cases, fill_named, make_input
from safetensors.torch import save_file


def build_reference(kwargs: dict[str, Any]) -> torch.nn.Module:
    """Build one case with the reference's EncoderDecoderFactory."""
    from terratorch.models import EncoderDecoderFactory
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(kwargs)
    if "aux_decoders" in kwargs:
        kwargs["aux_decoders"] = [AuxiliaryHead(**a) for a in kwargs["aux_decoders"]]
    return EncoderDecoderFactory().build_model(**kwargs)


def write(out: Path) -> int:
    manifest = {}
    for case in encoder_decoder_cases():
        torch.manual_seed(0)
        model = build_reference(case["kwargs"])
        fill_named(model, torch)
        model.eval()
        x = make_input(torch, tuple(case["input_shape"]))
        with torch.no_grad():
            result = model(x)
        tensors = {"input": x, "output": result.output.contiguous()}
        for name, aux in (result.auxiliary_heads or {}).items():
            tensors[f"aux.{name}"] = aux.contiguous()
        save_file(tensors, str(out / f"{case['name']}.safetensors"))
        manifest[case["name"]] = {
            "kwargs": case["kwargs"],
            "input_shape": case["input_shape"],
            "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
            "outputs": {k: list(v.shape) for k, v in tensors.items()},
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest)
