"""Clay v1 (``clay_v1_base``) against the reference's layout and features, loaded through ``ckpt_path``.

Checkpoints in Clay's Lightning layout (``model.encoder.*``) are regenerated in a temporary folder
from ``fill_named`` on our own backbone; fixtures: ``tools/reference/golden_clay.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from golden_cases import fill_named
from golden_clay import CASES, build_kwargs, features, write_clay_checkpoint
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("clay")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "clay" / "features.safetensors"))


@pytest.fixture(autouse=True)
def _full_precision() -> Iterator[None]:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.mark.parametrize("name", list(CASES))
def test_clay_matches_reference(name: str, expected: dict[str, torch.Tensor], tmp_path: Path) -> None:
    from terratorch.registry import BACKBONE_REGISTRY

    case, ref = CASES[name], MANIFEST["cases"][name]
    model = BACKBONE_REGISTRY.build("clay_v1_base", **build_kwargs(case))
    if case["vpt"]:
        fill_named(model, torch)
    else:
        path = tmp_path / f"{name}.ckpt"
        write_clay_checkpoint(model, path)
        model = BACKBONE_REGISTRY.build("clay_v1_base", **build_kwargs(case, str(path)))
    diff = layout_diff(ref["state_dict"], {k: list(v.shape) for k, v in model.state_dict().items()})
    assert not diff, f"{name} layout: {diff}"
    assert list(model.out_channels) == ref["out_channels"]
    report = {}
    for key, tensor in features(model, case).items():
        want = expected[f"{name}.{key}"]
        assert tensor.shape == want.shape, f"{name}.{key}: {tuple(tensor.shape)} != {tuple(want.shape)}"
        report[key] = (tensor - want).abs().max().item()
    assert max(report.values()) <= ATOL, f"{name}: max |ours - reference| per output: {report}"
    model.freeze()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == ref["trainable_after_freeze"]
