"""Golden fixtures of ``ObjectDetectionModelFactory``: every framework over a timm CNN and a Prithvi ViT.

For each case the reference builds the detector, :func:`fill_detector` fills it by key, and
the fixture stores its state-dict layout, its eval detections (boxes, scores, labels and, for Mask
R-CNN, a subsampled mask) on a seeded batch, and its train-mode losses for fixed targets. One case
(FCOS over a trimmed ``timm_test_resnet``) is also stored as a real checkpoint (float16 safetensors,
so its values are exact in either precision) to prove that the reference's weights load strictly.
Two model sections adapted from the reference's documented detection configs are stored as layouts.
The helpers here import no ``terratorch``, so the golden test runs the same cases with ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from golden_cases import fill_named, make_input

IMG = 64
HLS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
FRAMEWORKS = ("faster-rcnn", "fcos", "retinanet", "mask-rcnn")
FPN = {"name": "FeaturePyramidNetworkNeck", "out_channel": 32}
PRITHVI_NECKS = [
    {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
    {"name": "ReshapeTokensToImage"},
    {"name": "LearnedInterpolateToPyramidal"},
    FPN,
]
_TIMM = {
    "backbone": "timm_test_resnet",
    "backbone_pretrained": False,
    "backbone_in_chans": 3,
    "in_channels": 3,
    "necks": [FPN],
}
_PRITHVI = {
    "backbone": "prithvi_eo_tiny",
    "backbone_pretrained": False,
    "backbone_num_frames": 1,
    "backbone_bands": HLS,
    "necks": PRITHVI_NECKS,
}
#: Intra-op threads of both sides: box coordinates (pixels) of the ViT cases move by ~1e-4 with the
#: thread count (float32 summation order), so fixtures are written and checked with this many.
THREADS = 2
#: At most this many detections per image (keeps the fixture small; routes a framework_* key).
DETECTIONS = 8


#: R-CNN proposal budgets (torchvision's defaults, up to 2000 per image, dominate the test time).
_RCNN_BUDGET = {
    "framework_rpn_pre_nms_top_n_train": 100,
    "framework_rpn_post_nms_top_n_train": 16,
    "framework_rpn_pre_nms_top_n_test": 100,
    "framework_rpn_post_nms_top_n_test": 16,
    "framework_box_batch_size_per_image": 16,
}


def _limit(framework: str) -> dict[str, Any]:
    if "rcnn" in framework:
        return {"framework_box_detections_per_img": DETECTIONS, **_RCNN_BUDGET}
    return {"framework_detections_per_img": DETECTIONS}


def _cases() -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for framework in FRAMEWORKS:
        short = framework.replace("-", "")
        for name, base, channels in (("timm", _TIMM, 3), ("prithvi", _PRITHVI, 6)):
            cases[f"{name}_{short}"] = {
                "channels": channels,
                "args": {**base, "framework": framework, "num_classes": 3, **_limit(framework)},
            }
    return cases


CASES = _cases()
#: The case also stored as a checkpoint: three levels of ``timm_test_resnet`` (about 170k weights).
CHECKPOINT_CASE = {
    "channels": 3,
    "args": {
        **_TIMM,
        "backbone_out_indices": [0, 1, 2],
        "framework": "fcos",
        "num_classes": 3,
        **_limit("fcos"),
    },
}

# The model sections of the reference's documented configs (examples/confs/
# object_detection_substation_prithvi.yaml and object_detection_aed_elephants.yaml), with tiny
# backbones instead of prithvi_eo_v2_300 / pretrained terramind_v1_tiny, and layers that exist there.
CONFIGS_YAML = """
substation_prithvi:
  framework: mask-rcnn
  backbone: prithvi_eo_tiny
  num_classes: 12
  backbone_pretrained: false
  framework_min_size: 64
  framework_max_size: 64
  backbone_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
  necks:
    - name: SelectIndices
      indices: [0, 1, 2, 3]
    - name: ReshapeTokensToImage
    - name: LearnedInterpolateToPyramidal
    - name: FeaturePyramidNetworkNeck
elephants_terramind:
  framework: faster-rcnn
  backbone: terramind_v1_tiny
  backbone_pretrained: false
  num_classes: 2
  framework_min_size: 64
  framework_max_size: 64
  backbone_modalities: [RGB]
  in_channels: 3
  necks:
    - name: SelectIndices
      indices: [2, 5, 8, 11]
    - name: ReshapeTokensToImage
      remove_cls_token: false
    - name: LearnedInterpolateToPyramidal
    - name: FeaturePyramidNetworkNeck
"""
CONFIGS: dict[str, dict[str, Any]] = yaml.safe_load(CONFIGS_YAML)


def fill_detector(model: torch.nn.Module) -> None:
    """:func:`fill_named`, then weights rescaled so that activations neither vanish nor saturate.

    Matrices get a standard deviation of ``1 / sqrt(fan_in)`` and norm-layer scales ``1 + v``: with
    ``fill_named``'s small values alone the deep R-CNN heads give all proposals nearly equal scores,
    whose order (and so the detections kept) would hinge on float rounding.
    """
    fill_named(model, torch)
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point() or not key.endswith("weight"):
                continue
            if tensor.dim() >= 2:
                fan_in = tensor.numel() // tensor.shape[0]
                tensor.mul_(1.0 / (0.05 * fan_in**0.5))
            else:
                tensor.add_(1.0)


def build(args: dict[str, Any]) -> torch.nn.Module:
    """Build ``args`` (a model_args dict) with the installed package's ``ObjectDetectionModelFactory``."""
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    factory = MODEL_FACTORY_REGISTRY.build("ObjectDetectionModelFactory")
    return factory.build_model("object_detection", **json.loads(json.dumps(args)))


def layout(model: torch.nn.Module) -> dict[str, list[int]]:
    """``{state-dict key: shape}``."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def batch(channels: int) -> torch.Tensor:
    """The seeded ``[2, channels, IMG, IMG]`` input."""
    return make_input(torch, (2, channels, IMG, IMG))


def targets(masks: bool) -> list[dict[str, torch.Tensor]]:
    """Fixed targets of the two images (two boxes, then one), with instance masks when asked."""
    out = []
    for boxes, labels in (
        ([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 28.0]], [1, 2]),
        ([[8.0, 8.0, 50.0, 56.0]], [2]),
    ):
        target = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}
        if masks:
            mask = torch.zeros(len(boxes), IMG, IMG, dtype=torch.uint8)
            for index, (x0, y0, x1, y1) in enumerate(boxes):
                mask[index, int(y0) : int(y1), int(x0) : int(x1)] = 1
            target["masks"] = mask
        out.append(target)
    return out


def outputs(model: torch.nn.Module, case: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Eval detections per image and train losses (seeded sampling) of ``model`` on the case's batch."""
    x = batch(case["channels"])
    model.eval()
    with torch.no_grad():
        detections = model(x).output
    out: dict[str, torch.Tensor] = {}
    for index, det in enumerate(detections):
        for key in ("boxes", "scores", "labels"):
            out[f"{index}.{key}"] = det[key].contiguous()
        if "masks" in det:
            out[f"{index}.masks"] = det["masks"][:, 0, ::8, ::8].contiguous()
    model.train()
    torch.manual_seed(0)
    losses = model(x, targets(case["args"]["framework"] == "mask-rcnn")).output
    for key, value in losses.items():
        out[f"loss.{key}"] = value.detach().reshape(1)
    model.eval()
    return out


def half_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's float tensors rounded to float16 (others unchanged), written back into ``model``."""
    state = {}
    for key, value in model.state_dict().items():
        state[key] = value.half() if value.is_floating_point() else value.clone()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return state


def write(out: Path) -> int:
    from safetensors.torch import save_file

    torch.set_float32_matmul_precision("highest")
    torch.set_num_threads(THREADS)
    manifest: dict[str, Any] = {"cases": {}, "configs": {}, "img": IMG}
    tensors: dict[str, torch.Tensor] = {}
    for name, case in CASES.items():
        torch.manual_seed(0)
        model = build(case["args"])
        fill_detector(model)
        for key, tensor in outputs(model, case).items():
            tensors[f"{name}.{key}"] = tensor
        manifest["cases"][name] = {"state_dict": layout(model)}
    torch.manual_seed(0)
    model = build(CHECKPOINT_CASE["args"])
    fill_detector(model)
    save_file(half_state(model), str(out / "checkpoint_fcos.safetensors"))
    for key, tensor in outputs(model, CHECKPOINT_CASE).items():
        tensors[f"checkpoint.{key}"] = tensor
    manifest["checkpoint"] = {"state_dict": layout(model)}
    for name, args in CONFIGS.items():
        manifest["configs"][name] = {"state_dict": layout(build(args))}
    save_file(tensors, str(out / "outputs.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(CASES) + 1 + len(CONFIGS)
