"""Golden fixtures of the TerraMind v1 encoders, loaded through the weights path.

For every variant the state-dict layout (key → shape) and ``out_channels`` of an encoder with all
six raw image modalities and ``merge_method="concat"`` (so ``missing_mod_token`` is included) are
stored. For ``terramind_v1_tiny`` and ``terramind_v1_base`` that encoder is filled with
:func:`golden_cases.fill_named` and saved as a weights file in the published key layout (plus a
decoder tensor the encoder must ignore); encoders with one or two modalities and each merge method
are then built with ``ckpt_path=<file>`` and the outputs of a middle and the last block for seeded
small inputs are stored. The helpers here import no ``terratorch``, so the golden test regenerates
the same file with our implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

VARIANTS = (
    "terramind_v1_tiny",
    "terramind_v1_small",
    "terramind_v1_base",
    "terramind_v1_large",
    "terramind_v01_base",
)
FEATURE_VARIANTS = ("terramind_v1_tiny", "terramind_v1_base")
ALL_MODALITIES = ["S2L2A", "S2L1C", "S2RGB", "S1GRD", "S1RTC", "DEM"]
CHANNELS = {"S2L2A": 12, "S1GRD": 2, "DEM": 1}
SIDE = 32
S2_SUBSET = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


def cases() -> list[dict[str, Any]]:
    """Feature cases: (modalities built, modalities fed, merge method, bands)."""
    out = []
    for merge in ("mean", None):
        out.append({"modalities": ["S2L2A"], "inputs": ["S2L2A"], "merge_method": merge})
    for merge in ("mean", "max", "concat", "dict", None):
        out.append({"modalities": ["S2L2A", "S1GRD"], "inputs": ["S2L2A", "S1GRD"], "merge_method": merge})
    # a missing modality at inference
    out.append({"modalities": ["S2L2A", "S1GRD"], "inputs": ["S1GRD"], "merge_method": "concat"})
    out.append({"modalities": ["S2L2A", "S1GRD"], "inputs": ["S2L2A"], "merge_method": "mean"})
    # a band subset (pretrained bands, reordered)
    out.append(
        {
            "modalities": ["S2L2A", "DEM"],
            "inputs": ["S2L2A", "DEM"],
            "merge_method": "mean",
            "bands": {"S2L2A": S2_SUBSET[::-1]},
        }
    )
    for i, case in enumerate(out):
        case["case"] = f"case{i}"
    return out


def inputs_for(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Seeded inputs, one seed per modality, in the case's order."""
    bands = case.get("bands", {})
    return {
        name: make_input(torch, (1, len(bands.get(name, ())) or CHANNELS[name], SIDE, SIDE), seed=i)
        for i, name in enumerate(case["inputs"])
    }


#: Segmentation models (factory arguments) filled by name; their state-dict layout and output are stored.
FINETUNED = {
    "upernet": {
        "decoder": "UperNetDecoder",
        "decoder_channels": 32,
        "necks": [
            {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
            {"name": "ReshapeTokensToImage", "remove_cls_token": False},
        ],
    },
    "unet": {
        "decoder": "UNetDecoder",
        "decoder_channels": [64, 32, 16, 8],
        "necks": [
            {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
            {"name": "ReshapeTokensToImage", "remove_cls_token": False},
            {"name": "LearnedInterpolateToPyramidal"},
        ],
    },
}
FINETUNED_INPUT = {"modalities": ["S2L2A", "S1GRD"], "inputs": ["S2L2A", "S1GRD"]}


def finetuned_kwargs(name: str) -> dict[str, Any]:
    """``EncoderDecoderFactory.build_model`` arguments of a fine-tuned TerraMind segmentation model."""
    return {
        "task": "segmentation",
        "backbone": "terramind_v1_tiny",
        "backbone_modalities": list(FINETUNED_INPUT["modalities"]),
        "num_classes": 3,
        **FINETUNED[name],
    }


def write_weight_file(encoder: torch.nn.Module, path: Path) -> None:
    """Fill ``encoder`` by key name and save it in the published key layout (plus one decoder tensor)."""
    fill_named(encoder, torch)
    state = dict(encoder.state_dict())
    state["decoder.0.mlp.fc1.weight"] = torch.zeros(4, 4)
    torch.save(state, path)


def feature_indices(depth: int) -> list[int]:
    """The blocks whose outputs are stored: a middle one and the last."""
    return [depth // 2 - 1, depth - 1]


def flatten(prefix: str, feats: list[Any], keep: list[int]) -> dict[str, torch.Tensor]:
    """``{prefix.block<i>[.<modality>]: tensor}`` for the kept blocks."""
    out = {}
    for i in keep:
        if isinstance(feats[i], dict):
            for name, value in feats[i].items():
                out[f"{prefix}.block{i}.{name}"] = value.contiguous()
        else:
            out[f"{prefix}.block{i}"] = feats[i].contiguous()
    return out


def write(out: Path) -> int:
    import gc
    import tempfile

    from safetensors.torch import save_file

    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    torch.set_float32_matmul_precision("highest")

    def build(variant: str, **kwargs: Any) -> torch.nn.Module:
        return TERRATORCH_BACKBONE_REGISTRY.build(variant, **kwargs)

    manifest: dict[str, Any] = {"layouts": {}, "cases": {}}
    tensors: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            # TerraTorch 1.2 cannot build on the meta device (it calls .item()); the CPU it is
            enc = build(variant, modalities=ALL_MODALITIES, merge_method="concat")
            manifest["layouts"][variant] = {
                "state_dict": {k: list(v.shape) for k, v in enc.state_dict().items()},
                "out_channels": list(enc.out_channels),
            }
            if variant not in FEATURE_VARIANTS:
                del enc
                gc.collect()
                continue
            path = Path(tmp) / f"{variant}.pt"
            write_weight_file(enc, path)
            del enc
            gc.collect()
            for case in cases():
                kwargs = {"bands": case["bands"]} if "bands" in case else {}
                torch.manual_seed(0)
                model = build(
                    variant,
                    modalities=case["modalities"],
                    merge_method=case["merge_method"],
                    ckpt_path=str(path),
                    **kwargs,
                ).eval()
                keep = feature_indices(len(model.encoder))
                with torch.no_grad():
                    feats = model(inputs_for(case))
                key = f"{variant}.{case['case']}"
                tensors.update(flatten(key, feats, keep))
                manifest["cases"][key] = {
                    **case,
                    "variant": variant,
                    "blocks": keep,
                    "n_features": len(feats),
                }
                del model
            path.unlink()
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory

    manifest["finetuned"] = {}
    for name in FINETUNED:
        model = EncoderDecoderFactory().build_model(**finetuned_kwargs(name))
        fill_named(model, torch)
        model.eval()
        with torch.no_grad():
            tensors[f"finetuned.{name}"] = model(inputs_for(FINETUNED_INPUT)).output.contiguous()
        manifest["finetuned"][name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest["cases"])
