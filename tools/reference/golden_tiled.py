"""Golden fixtures of tiled inference: the reference's blended output for small, fixed cases.

The forward is a fixed 3x3 convolution (zero padding, so crop borders differ from the image and
blending shows), its weights a function of their index; inputs are a smooth deterministic pattern.
``tests/compat/test_golden_tiled.py`` runs ours on the same cases and compares to 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: name -> input shape, out channels, ``TiledInferenceParameters`` fields (positional call) or keywords.
CASES: dict[str, dict[str, Any]] = {
    "params_positional": {
        "shape": [1, 3, 40, 52],
        "out_channels": 4,
        "parameters": {
            "h_crop": 16,
            "h_stride": 12,
            "w_crop": 16,
            "w_stride": 12,
            "delta": 2,
            "average_patches": True,
            "blend_overlaps": True,
            "batch_size": 5,
            "verbose": False,
        },
    },
    "keywords_crop_stride": {
        "shape": [2, 3, 37, 45],
        "out_channels": 3,
        "kwargs": {"crop": 16, "stride": 10, "delta": 3, "batch_size": 3},
    },
    "no_padding": {
        "shape": [1, 3, 41, 47],
        "out_channels": 2,
        "kwargs": {"h_crop": 16, "w_crop": 20, "h_stride": 12, "w_stride": 14, "delta": 2, "padding": False},
    },
    "no_average": {
        "shape": [1, 3, 36, 36],
        "out_channels": 2,
        "kwargs": {"crop": 16, "stride": 12, "delta": 2, "average_patches": False},
    },
    "no_blend": {
        "shape": [1, 3, 36, 40],
        "out_channels": 2,
        "kwargs": {"crop": 16, "stride": 12, "delta": 2, "blend_overlaps": False},
    },
    "replicate_padding": {
        "shape": [1, 3, 33, 29],
        "out_channels": 2,
        "kwargs": {"crop": 12, "stride": 6, "delta": 2, "padding": "replicate"},
    },
    "delta_reduced": {
        "shape": [1, 3, 40, 40],
        "out_channels": 2,
        "kwargs": {"crop": 16, "stride": 14, "delta": 8},
    },
    "defaults_large": {"shape": [1, 3, 250, 230], "out_channels": 2, "kwargs": {}},
    "fits_one_crop": {"shape": [1, 3, 16, 16], "out_channels": 2, "kwargs": {"crop": 16, "stride": 12}},
    "temporal": {
        "shape": [1, 3, 2, 30, 34],
        "out_channels": 2,
        "kwargs": {"crop": 16, "stride": 12, "delta": 2},
    },
}


def make_input(torch: Any, shape: list[int]) -> Any:
    """A smooth, non-periodic deterministic pattern of ``shape``."""
    count = 1
    for size in shape:
        count *= size
    values = torch.arange(count, dtype=torch.float64)
    return (torch.sin(values * 0.37) + torch.cos(values * 0.011)).reshape(shape).to(torch.float32)


def make_forward(torch: Any, in_channels: int, out_channels: int) -> Any:
    """A fixed 3x3 convolution; 5-D inputs are averaged over time first."""
    index = torch.arange(out_channels * in_channels * 9, dtype=torch.float64)
    weight = (torch.sin(index * 1.3) / 4).reshape(out_channels, in_channels, 3, 3).to(torch.float32)
    bias = torch.linspace(-0.5, 0.5, out_channels)

    def forward(x: Any) -> Any:
        if x.ndim == 5:
            x = x.mean(dim=2)
        return torch.nn.functional.conv2d(x, weight, bias, padding=1)

    return forward


def run(tiled_inference: Any, parameters_cls: Any, torch: Any, case: dict[str, Any]) -> Any:
    """Call ``tiled_inference`` on one case the way a reference user would."""
    x = make_input(torch, case["shape"])
    forward = make_forward(torch, case["shape"][1], case["out_channels"])
    if "parameters" in case:
        return tiled_inference(forward, x, case["out_channels"], parameters_cls(**case["parameters"]))
    return tiled_inference(forward, x, **case["kwargs"])


def write(out: Path) -> int:
    import warnings

    import torch
    from safetensors.torch import save_file

    from terratorch.tasks.tiled_inference import TiledInferenceParameters, tiled_inference

    # Importing the reference's models sets float32 matmul precision to "medium" process-wide (its
    # Clay backbone module does), which lowers CPU convolution precision; restore the default.
    torch.set_float32_matmul_precision("highest")
    tensors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, case in CASES.items():
            tensors[name] = run(tiled_inference, TiledInferenceParameters, torch, case).contiguous()
    save_file(tensors, str(out / "outputs.safetensors"))
    manifest = {name: {**case, "output_shape": list(tensors[name].shape)} for name, case in CASES.items()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(manifest)
