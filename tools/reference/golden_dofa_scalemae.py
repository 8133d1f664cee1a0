"""Golden fixtures of the DOFA and Scale-MAE backbones (reference release + torchgeo 0.8.1).

Layouts: state-dict key names and shapes of torchgeo's ``dofa_{small,base,large}_patch16_224`` and
``scalemae_large_patch16`` (built on the meta device: the published weight files have these keys) and
of the reference's encoders (``dofa_*`` wrappers, ``scalemae.create_model`` ViTs).

Features, of tiny configurations (the published sizes take too long to build in CI): a checkpoint
is written in the published layout (torchgeo ``DOFA`` keys for DOFA; the original Scale-MAE
``{"model": ...}`` file for Scale-MAE) from a model filled by :func:`golden_cases.fill_named` (values
derived from key names only, so both sides regenerate the same file without storing weights), loaded
through the reference's loader (``load_dofa_weights`` + ``DOFAEncoderWrapper``; a tiny ViT registered
with ``register_scalemae_model`` + ``create_model(ckpt_path=...)``), and run on a seeded input.
Checkpoints are built at another grid than the model where the loader resizes or drops ``pos_embed``.
The helpers here import
no ``terratorch``, so the golden test runs the same cases with our implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

#: A tiny DOFA (the published sizes are too slow to build in CI; the builders' layouts are checked on
#: the meta device instead). Patch size 16, as in every published DOFA.
DOFA_TINY = {"patch_size": 16, "embed_dim": 32, "depth": 3, "num_heads": 2}
#: DOFA cases: bands, model and checkpoint image sizes, out_indices, position interpolation.
DOFA_CASES: dict[str, dict[str, Any]] = {
    # checkpoint at the published 224 grid, model at 32: pos_embed resized bilinearly
    "rgbn_resized": {
        "bands": ["RED", "GREEN", "BLUE", "NIR_NARROW"],
        "img_size": 32,
        "ckpt_img_size": 224,
        "out_indices": [0, 2],
        "mode": "bilinear",
    },
    # SAR bands, checkpoint at the model's grid, default out_indices (last block)
    "sar_same_grid": {
        "bands": ["VV", "VH"],
        "img_size": 32,
        "ckpt_img_size": 32,
        "out_indices": None,
        "mode": "bilinear",
    },
    # six HLS bands, bicubic resize to a 4x4 grid, three blocks
    "hls_bicubic": {
        "bands": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
        "img_size": 64,
        "ckpt_img_size": 224,
        "out_indices": [0, 1, -1],
        "mode": "bicubic",
    },
}
DOFA_SIZES = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
#: Keys torchgeo's published DOFA files lack (the classifier is rebuilt per task).
DOFA_CLASSIFIER = ("fc_norm.", "head.")

#: A tiny Scale-MAE ViT, registered under this name with ``register_scalemae_model`` on both sides.
SCALEMAE_TINY_NAME = "golden_tiny_vit"
SCALEMAE_TINY = {"embed_dim": 64, "depth": 6, "num_heads": 4}
#: Scale-MAE cases: bands, image size, out_indices, forward resolution.
SCALEMAE_CASES: dict[str, dict[str, Any]] = {
    # RGB as pretrained, default resolution (1 m), a middle and the last block
    "rgb_default_res": {
        "bands": ["RED", "GREEN", "BLUE"],
        "img_size": 32,
        "out_indices": [2, -1],
        "res": None,
    },
    # reordered bands (patch projection remapped) and a 2.5 m input resolution
    "bgr_res": {"bands": ["BLUE", "GREEN", "RED"], "img_size": 32, "out_indices": [-1], "res": 2.5},
}


def dofa_input(case: dict[str, Any]) -> torch.Tensor:
    """The seeded ``[1, C, H, H]`` input of a DOFA case."""
    return make_input(torch, (1, len(case["bands"]), case["img_size"], case["img_size"]))


def write_dofa_checkpoint(network: torch.nn.Module, path: Path) -> None:
    """Fill a DOFA network (torchgeo layout) by key name and save it as the published files are.

    The published files lack the classifier (``fc_norm``, ``head``), so it is left out.
    """
    fill_named(network, torch)
    state = {k: v for k, v in network.state_dict().items() if not k.startswith(DOFA_CLASSIFIER)}
    torch.save(state, path)


def dofa_encoder(module: Any, network_cls: Any, case: dict[str, Any], ckpt_data: str) -> torch.nn.Module:
    """The tiny DOFA of ``case`` loaded from ``ckpt_data`` by ``module.load_dofa_weights``, as an encoder.

    ``module`` is the DOFA backbone module (ours or the reference's), ``network_cls`` the DOFA network
    class (ours, or torchgeo's for the reference).
    """
    network = network_cls(img_size=case["img_size"], **DOFA_TINY)
    network = module.load_dofa_weights(network, case["mode"], ckpt_data, None, case["img_size"], 16)
    wavelengths = module.get_wavelenghts(case["bands"])
    return module.DOFAEncoderWrapper(network, wavelengths, None, case["out_indices"]).eval()


def register_tiny_scalemae(module: Any) -> None:
    """Register :data:`SCALEMAE_TINY_NAME` in ``module.scalemae_model_registry`` (ours or the reference's)."""

    def golden_tiny_vit(**kwargs: Any) -> torch.nn.Module:
        return module.VisionTransformer(**SCALEMAE_TINY, **kwargs)

    module.register_scalemae_model(golden_tiny_vit)


def scalemae_input(case: dict[str, Any]) -> torch.Tensor:
    """The seeded ``[1, C, H, H]`` input of a Scale-MAE case."""
    return make_input(torch, (1, len(case["bands"]), case["img_size"], case["img_size"]), seed=1)


def scalemae_forward_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    """``input_res`` of a Scale-MAE case (none: the model's default)."""
    return {} if case["res"] is None else {"input_res": torch.tensor([case["res"]])}


def scalemae_create_kwargs(case: dict[str, Any], ckpt_path: str) -> dict[str, Any]:
    """Keyword arguments of ``scalemae.create_model(SCALEMAE_TINY_NAME, ...)``."""
    return {
        "ckpt_path": ckpt_path,
        "bands": list(case["bands"]),
        "img_size": case["img_size"],
        "input_size": case["img_size"],
        "out_indices": list(case["out_indices"]),
    }


def write_scalemae_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Fill an RGB 224 px Scale-MAE ViT by key name and save it as ``{"model": state}`` (Scale-MAE's)."""
    fill_named(model, torch)
    torch.save({"model": model.state_dict()}, path)


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    """State-dict key → shape."""
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def write(out: Path) -> int:
    import tempfile

    from safetensors.torch import save_file
    from torchgeo.models import dofa, scale_mae

    from terratorch.models.backbones import dofa_vit, scalemae
    from terratorch.registry import BACKBONE_REGISTRY

    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {"torchgeo": {}, "reference": {}, "dofa": {}, "scalemae": {}}
    tensors: dict[str, torch.Tensor] = {}
    with torch.device("meta"):
        for size in DOFA_SIZES:
            name = f"dofa_{size}_patch16_224"
            manifest["torchgeo"][name] = shapes(getattr(dofa, name)())
            manifest["reference"][name] = shapes(BACKBONE_REGISTRY.build(name, model_bands=["RED"]))
        manifest["torchgeo"]["scalemae_large_patch16"] = shapes(scale_mae.scalemae_large_patch16())
        for name in list(scalemae.scalemae_model_registry):
            manifest["reference"][f"scalemae.{name}"] = shapes(scalemae.create_model(name))
    register_tiny_scalemae(scalemae)
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in DOFA_CASES.items():
            path = Path(tmp) / f"{name}.pth"
            write_dofa_checkpoint(dofa.DOFA(img_size=case["ckpt_img_size"], **DOFA_TINY), path)
            model = dofa_encoder(dofa_vit, dofa.DOFA, case, str(path))
            with torch.no_grad():
                feats = model(dofa_input(case))
            for i, tensor in enumerate(feats):
                tensors[f"dofa.{name}.{i}"] = tensor.contiguous()
            manifest["dofa"][name] = {
                **case,
                "out_channels": list(model.out_channels),
                "wavelengths": list(model.wavelengths),
                "num_features": len(feats),
                "state_dict": shapes(model),
            }
        for name, case in SCALEMAE_CASES.items():
            path = Path(tmp) / f"{name}.pth"
            write_scalemae_checkpoint(scalemae.create_model(SCALEMAE_TINY_NAME), path)
            model = scalemae.create_model(
                SCALEMAE_TINY_NAME, **scalemae_create_kwargs(case, str(path))
            ).eval()
            with torch.no_grad():
                feats = model(scalemae_input(case), **scalemae_forward_kwargs(case))
            for i, tensor in enumerate(feats):
                tensors[f"scalemae.{name}.{i}"] = tensor.contiguous()
            manifest["scalemae"][name] = {
                **case,
                "out_channels": list(model.out_channels),
                "num_features": len(feats),
                "state_dict": shapes(model),
            }
    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(DOFA_CASES) + len(SCALEMAE_CASES)
