"""Golden fixtures of the torchgeo-weight backbones (ResNet-18/50, ViT-Small/16, Satlas Swin-V2-B).

For one registry name per architecture the torchgeo constructor (``torchgeo.models.resnet18`` ...,
the layout of the published weight files) is built, its parameters filled by :func:`fill_param`
(values derived only from key and shape, so nothing large is stored) and saved as a weights file;
the reference backbone is then built with ``pretrained=True, ckpt_data=<file>`` and chosen
``model_bands`` (subsets / reorders of the weights' bands) and its features for a seeded input are
summarised by :func:`summarise`. The manifest records the torchgeo keys, shapes, which are
parameters, and checksums of the buffers (which both sides rebuild themselves). This module imports
no ``terratorch`` at import time, so the golden test reuses its helpers with our implementation.
"""

from __future__ import annotations

import json
import math
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch

IMG_SIZE = 32
S2 = [
    "COASTAL_AEROSOL",
    "BLUE",
    "GREEN",
    "RED",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "NIR_BROAD",
    "NIR_NARROW",
    "WATER_VAPOR",
    "CIRRUS",
    "SWIR_1",
    "SWIR_2",
]

CASES: dict[str, dict[str, Any]] = {
    # subset + reorder of the 13 Sentinel-2 bands, every feature level
    "resnet18_s2_subset": {
        "name": "ssl4eos12_resnet18_sentinel2_all_moco",
        "arch": "resnet18",
        "ckpt_chans": 13,
        "model_bands": ["RED", "GREEN", "BLUE", "NIR_BROAD", "SWIR_1"],
        "out_indices": [0, 1, 2, 3, 4],
        "kwargs": {},
    },
    # RGB weights (B4, B3, B2) fed BGR, default (last) feature
    "resnet18_rgb_reorder": {
        "name": "seco_resnet18_sentinel2_rgb_seco",
        "arch": "resnet18",
        "ckpt_chans": 3,
        "model_bands": ["BLUE", "GREEN", "RED"],
        "out_indices": None,
        "kwargs": {},
    },
    # all 13 bands in the weights' order
    "resnet50_s2_all": {
        "name": "ssl4eos12_resnet50_sentinel2_all_moco",
        "arch": "resnet50",
        "ckpt_chans": 13,
        "model_bands": list(S2),
        "out_indices": [1, 4],
        "kwargs": {},
    },
    "vit_small_s2_subset": {
        "name": "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino",
        "arch": "vit_small_patch16_224",
        "ckpt_chans": 13,
        "model_bands": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
        "out_indices": None,
        "kwargs": {"img_size": IMG_SIZE},
    },
    # Satlas multispectral (9 bands) Swin-V2-B, four bands, the four stages (channels-last)
    "swin_v2_b_s2_subset": {
        "name": "satlas_swin_b_sentinel2_si_ms",
        "arch": "swin_v2_b",
        "ckpt_chans": 9,
        "model_bands": ["BLUE", "GREEN", "RED", "NIR_BROAD"],
        "out_indices": [1, 3, 5, 7],
        "kwargs": {},
    },
}

WRAPPER_ATTR = {"resnet": "resnet_model", "vit": "vit_model", "swin": "swin_model"}


def wrapper_attr(arch: str) -> str:
    """Attribute of the wrapper that holds the torchgeo model (``resnet_model`` ...)."""
    return WRAPPER_ATTR[arch.split("_")[0].rstrip("0123456789")]


def fill_param(key: str, shape: list[int]) -> torch.Tensor:
    """A well-conditioned value for parameter ``key`` seeded by a CRC of its name.

    Matrices/kernels get fan-in scaled normals, norm weights ``1 + noise``, other vectors small
    normals, Swin-V2 ``logit_scale`` values near ``log 10``; features stay of order one, so a 1e-4
    comparison means something.
    """
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    noise = torch.randn(shape, generator=generator)
    if key.endswith("logit_scale"):
        return math.log(10.0) + 0.1 * noise
    if len(shape) >= 2:
        fan_in = max(1, math.prod(shape[1:]))
        return noise / math.sqrt(fan_in)
    if key.endswith("weight"):
        return 1.0 + 0.1 * noise
    return 0.1 * noise


def checksum(tensor: torch.Tensor) -> float:
    """Sum of a buffer (as float64), to check both sides rebuild it alike."""
    return float(tensor.double().sum())


def checkpoint(layout: dict[str, Any], buffers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The torchgeo-layout state dict: filled parameters, plus ``buffers`` as the model built them."""
    state = {}
    for key, info in layout.items():
        state[key] = fill_param(key, info["shape"]) if info["param"] else buffers[key].clone()
    return state


def make_input(channels: int, seed: int = 0) -> torch.Tensor:
    """The seeded ``[1, channels, IMG_SIZE, IMG_SIZE]`` input both sides feed."""
    return torch.randn((1, channels, IMG_SIZE, IMG_SIZE), generator=torch.Generator().manual_seed(seed))


def summarise(features: Any) -> dict[str, torch.Tensor]:
    """Per output: a strided sample of at most ~2048 values and the means of 64 consecutive chunks."""
    out = {}
    for i, tensor in enumerate(features):
        flat = tensor.detach().reshape(-1).double()
        step = max(1, flat.numel() // 2048)
        out[f"{i}.sample"] = flat[::step].float().contiguous()
        out[f"{i}.chunks"] = torch.stack([c.mean() for c in torch.tensor_split(flat, 64)]).float()
    return out


def torchgeo_model(arch: str, ckpt_chans: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """The torchgeo constructor's model for weights with ``ckpt_chans`` input channels."""
    import torchgeo.models

    if arch.startswith("swin"):
        model = getattr(torchgeo.models, arch)(**kwargs)
        old = model.features[0][0]
        model.features[0][0] = torch.nn.Conv2d(
            ckpt_chans, old.out_channels, kernel_size=old.kernel_size, stride=old.stride
        )
        return model
    return getattr(torchgeo.models, arch)(in_chans=ckpt_chans, **kwargs)


def write(out: Path) -> int:
    from safetensors.torch import save_file

    from terratorch.registry import BACKBONE_REGISTRY

    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {"img_size": IMG_SIZE, "cases": {}}
    tensors: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case_name, case in CASES.items():
            oracle = torchgeo_model(case["arch"], case["ckpt_chans"], case["kwargs"])
            params = {k for k, _ in oracle.named_parameters()}
            layout = {
                k: {
                    "shape": list(v.shape),
                    "param": k in params,
                    "dtype": str(v.dtype).removeprefix("torch."),
                }
                for k, v in oracle.state_dict().items()
            }
            buffers = {k: v for k, v in oracle.state_dict().items() if k not in params}
            path = Path(tmp) / f"{case_name}.pth"
            torch.save(checkpoint(layout, buffers), path)
            del oracle
            model = BACKBONE_REGISTRY.build(
                case["name"],
                model_bands=list(case["model_bands"]),
                pretrained=True,
                ckpt_data=str(path),
                out_indices=case["out_indices"],
                **case["kwargs"],
            ).eval()
            with torch.no_grad():
                feats = model(make_input(len(case["model_bands"])))
            for key, tensor in summarise(feats).items():
                tensors[f"{case_name}.{key}"] = tensor
            manifest["cases"][case_name] = {
                **case,
                "torchgeo_layout": layout,
                "buffer_checksums": {k: checksum(v) for k, v in buffers.items()},
                "wrapper_keys": sorted(model.state_dict()),
                "out_channels": list(model.out_channels),
                "feature_shapes": [list(f.shape) for f in feats],
            }
            del model
    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest["cases"])
