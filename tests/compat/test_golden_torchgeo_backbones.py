"""torchgeo-weight backbones (ResNet-18/50, ViT-S/16, Satlas Swin-V2-B) against the reference.

Fixtures: ``tools/reference/golden_torchgeo_backbones.py``. For each case the torchgeo-layout weights
file is regenerated from the recorded keys and shapes (parameters from ``fill_param``; buffers as our
model builds them, checked against torchgeo's checksums), loaded into our model the way
``pretrained=True, ckpt_data=<file>`` loads it (no tensor may be missing or unused); the features
must match the reference's to 1e-4.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from golden_torchgeo_backbones import CASES, checkpoint, checksum, make_input, summarise, wrapper_attr
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

from terratorch.models.backbones.torchgeo_weights import load_torchgeo_weights

ATOL = 1e-4
MANIFEST = load_manifest("torchgeo_backbones")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "torchgeo_backbones" / "features.safetensors"))


@pytest.fixture(autouse=True)
def _full_precision() -> Iterator[None]:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


_FIRST_LAYER = {"resnet_model": "conv1.weight", "vit_model": "patch_embed.proj.weight"}


@pytest.mark.parametrize("case_name", list(CASES))
def test_torchgeo_backbone_matches_reference(
    case_name: str, expected: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

    case, ref = CASES[case_name], MANIFEST["cases"][case_name]
    layout = ref["torchgeo_layout"]
    attr = wrapper_attr(case["arch"])
    first = _FIRST_LAYER.get(attr, "features.0.0.weight")
    model = BACKBONE_REGISTRY.build(
        case["name"], model_bands=list(case["model_bands"]), out_indices=case["out_indices"], **case["kwargs"]
    ).eval()
    inner = getattr(model, attr)

    # our bare model is torchgeo's but for the input channels of the first layer
    ours = {k: list(v.shape) for k, v in inner.state_dict().items()}
    ours[first][1] = case["ckpt_chans"]
    diff = layout_diff({k: v["shape"] for k, v in layout.items()}, ours)
    assert not diff, f"{case_name} torchgeo layout: {diff}"
    buffers = {k: v for k, v in inner.state_dict().items() if not layout[k]["param"]}
    wrong = [k for k, v in buffers.items() if abs(checksum(v) - ref["buffer_checksums"][k]) > 1e-6]
    assert not wrong, f"{case_name}: buffers differ from torchgeo's: {wrong[:5]}"
    assert sorted(model.state_dict()) == ref["wrapper_keys"]
    assert list(model.out_channels) == ref["out_channels"]

    # the file a user would pass as ckpt_data; every tensor must be used (warnings are errors)
    path = tmp_path / "weights.pth"
    torch.save(checkpoint(layout, buffers), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_torchgeo_weights(
            inner,
            model_bands=list(case["model_bands"]),
            ckpt_data=str(path),
            weights=TERRATORCH_BACKBONE_REGISTRY.metadata(case["name"])["weights"],
            first_layer=first,
            classifier="head." if attr != "resnet_model" else "fc.",
            wrapper_attr=attr,
            model_name=case["name"],
            state_dict_hook=None,
        )
    with torch.no_grad():
        feats = model(make_input(len(case["model_bands"])))
    assert [list(f.shape) for f in feats] == ref["feature_shapes"]
    errors = {}
    for key, tensor in summarise(feats).items():
        want = expected[f"{case_name}.{key}"]
        assert want.abs().max() > 1e-2, f"{case_name}.{key}: degenerate reference features"
        errors[key] = (tensor - want).abs().max().item()
    assert max(errors.values()) <= ATOL, f"{case_name}: max |ours - reference|: {errors}"
