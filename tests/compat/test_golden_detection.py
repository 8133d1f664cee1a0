"""``ObjectDetectionModelFactory`` against the reference: layouts, detections, losses and a real checkpoint.

Every framework over ``timm_test_resnet`` and over ``prithvi_eo_tiny`` (with the ViT necks and an
FPN) is filled by key (``fill_detector``) like the reference's and must give the same state-dict
layout, eval detections and train losses; the reference's FCOS checkpoint loads strictly and gives
its detections; the model sections of two documented detection configs build with the reference's
layout.
Fixtures: ``tools/reference/golden_detection.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from golden_detection import CASES, CHECKPOINT_CASE, CONFIGS, THREADS, build, fill_detector, layout, outputs
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("detection")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "detection" / "outputs.safetensors"))


@pytest.fixture(autouse=True)
def _full_precision_fixed_threads() -> Iterator[None]:
    previous, threads = torch.get_float32_matmul_precision(), torch.get_num_threads()
    torch.set_float32_matmul_precision("highest")
    torch.set_num_threads(THREADS)  # the fixtures' summation order (see golden_detection.THREADS)
    yield
    torch.set_float32_matmul_precision(previous)
    torch.set_num_threads(threads)


def _compare(
    prefix: str, model: torch.nn.Module, case: dict[str, Any], expected: dict[str, torch.Tensor]
) -> None:
    ours = outputs(model, case)
    theirs = {k[len(prefix) + 1 :]: v for k, v in expected.items() if k.startswith(prefix + ".")}
    assert sorted(ours) == sorted(theirs), (
        f"{prefix}: output keys {sorted(ours)} != reference {sorted(theirs)}"
    )
    for key, want in theirs.items():
        got = ours[key]
        assert got.shape == want.shape, f"{prefix}.{key}: {tuple(got.shape)} != reference {tuple(want.shape)}"
        if key.endswith("labels"):
            assert torch.equal(got, want), f"{prefix}.{key}: {got.tolist()} != reference {want.tolist()}"
        else:
            error = (got.float() - want.float()).abs().max().item() if got.numel() else 0.0
            assert error <= ATOL, f"{prefix}.{key}: max |ours - reference| = {error:.3g}"


@pytest.mark.parametrize("name", list(CASES))
def test_detector_matches_reference(name: str, expected: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    model = build(CASES[name]["args"])
    diff = layout_diff(MANIFEST["cases"][name]["state_dict"], layout(model))
    assert not diff, f"{name} layout: {diff}"
    fill_detector(model)
    _compare(name, model, CASES[name], expected)


def test_reference_checkpoint_loads_strictly(expected: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import load_file

    state = load_file(str(GOLDEN / "detection" / "checkpoint_fcos.safetensors"))
    model = build(CHECKPOINT_CASE["args"])
    assert not layout_diff(MANIFEST["checkpoint"]["state_dict"], layout(model))
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True
    )
    _compare("checkpoint", model, CHECKPOINT_CASE, expected)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_documented_config_builds_reference_layout(name: str) -> None:
    diff = layout_diff(MANIFEST["configs"][name]["state_dict"], layout(build(CONFIGS[name])))
    assert not diff, f"{name} layout: {diff}"
