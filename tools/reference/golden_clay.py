"""Golden fixtures of the Clay v1 backbone (``clay_v1_base``), loaded through its weights path.

The backbone is built at a tiny ``img_size`` (a 4x4 patch grid), filled with
:func:`golden_cases.fill_named`, and its encoder saved as a Clay Lightning checkpoint
(``{"state_dict": {"model.encoder.*": ...}}``, the layout of the published ``clay-v1-base.ckpt``).
A fresh backbone is then built with ``ckpt_path=<file>`` and its features for a seeded input are
stored: a middle block, the last block and the ``prepare_features_for_image_model`` map. The VPT case
is filled directly (its prompts are not part of Clay checkpoints). The helpers here import no
``terratorch``, so the golden test runs the same cases with our implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

IMG_SIZE = 32
#: Blocks whose outputs are stored (a middle one and the last).
BLOCKS = (5, 11)
HLS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]

CASES: dict[str, dict[str, Any]] = {
    # the default Clay band names, no metadata
    "default": {"bands": None, "channels": 6, "meta": False, "vpt": 0},
    # HLS enum spellings (what EncoderDecoderFactory configs pass), four bands only
    "hls4": {"bands": HLS[:4], "channels": 4, "meta": False, "vpt": 0},
    # date, location and ground sample distance given
    "meta": {"bands": None, "channels": 6, "meta": True, "vpt": 0},
    # visual prompt tuning tokens in every block
    "vpt": {"bands": HLS, "channels": 6, "meta": False, "vpt": 3},
}


def build_kwargs(case: dict[str, Any], ckpt_path: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``BACKBONE_REGISTRY.build("clay_v1_base", ...)`` for ``case``."""
    kwargs: dict[str, Any] = {"img_size": IMG_SIZE}
    if case["bands"] is not None:
        kwargs["bands"] = list(case["bands"])
    if case["vpt"]:
        kwargs.update(vpt=True, vpt_n_tokens=case["vpt"], vpt_dropout=0.0)
    if ckpt_path is not None:
        kwargs["ckpt_path"] = ckpt_path
    return kwargs


def forward_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    """Seed-free metadata inputs (``time``, ``latlon``: 4 values each; ``gsd``) for ``case``."""
    if not case["meta"]:
        return {}
    return {
        "time": torch.tensor([[0.5, -0.25, 0.75, 0.1]]),
        "latlon": torch.tensor([[0.3, 0.9, -0.6, 0.2]]),
        "gsd": 10.0,
    }


def input_for(case: dict[str, Any]) -> torch.Tensor:
    """The seeded ``[1, C, IMG_SIZE, IMG_SIZE]`` input of ``case``."""
    return make_input(torch, (1, case["channels"], IMG_SIZE, IMG_SIZE))


def write_clay_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Fill ``model`` by key name and save its encoder as a Clay Lightning checkpoint at ``path``."""
    fill_named(model, torch)
    state = {
        "model.encoder." + k.removeprefix("clay_encoder."): v
        for k, v in model.state_dict().items()
        if k.startswith("clay_encoder.") and "vpt_" not in k
    }
    torch.save({"state_dict": state}, path)


def features(model: torch.nn.Module, case: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The stored outputs of ``model`` (eval mode) for ``case``: chosen blocks and the image map."""
    model.eval()
    with torch.no_grad():
        feats = model(input_for(case), **forward_kwargs(case))
        maps = model.prepare_features_for_image_model(feats)
    out = {f"block{i}": feats[i].contiguous() for i in BLOCKS}
    out["map_last"] = maps[-1].contiguous()  # 1.2 returns only this map, ours one per feature
    return out


def write(out: Path) -> int:
    import tempfile

    from safetensors.torch import save_file

    from terratorch.registry import BACKBONE_REGISTRY

    # importing the reference sets float32 matmul precision to "medium"; fixtures use full precision
    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {"cases": {}, "img_size": IMG_SIZE, "blocks": list(BLOCKS)}
    tensors: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            torch.manual_seed(0)
            model = BACKBONE_REGISTRY.build("clay_v1_base", **build_kwargs(case))
            if case["vpt"]:
                fill_named(model, torch)
            else:
                path = Path(tmp) / f"{name}.ckpt"
                write_clay_checkpoint(model, path)
                model = BACKBONE_REGISTRY.build("clay_v1_base", **build_kwargs(case, str(path)))
            for key, tensor in features(model, case).items():
                tensors[f"{name}.{key}"] = tensor
            manifest["cases"][name] = {
                **case,
                "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
                "out_channels": list(model.out_channels),
                "trainable_after_freeze": _trainable_after_freeze(model),
            }
            del model
    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest["cases"])


def _trainable_after_freeze(model: torch.nn.Module) -> int:
    """Parameters still trainable after ``model.freeze()`` (only the VPT prompts should be)."""
    model.freeze()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
