"""Clay v1.5 and the Clay model factories against the reference's layouts and outputs.

Our ``clay_v15_tiny`` backbone loads, through ``ckpt_path``, a checkpoint in the published Lightning
layout (``model.encoder.*``) regenerated here from ``fill_named``; its features must equal the
reference encoder's (built with the same tiny size and weights). Fixtures:
``tools/reference/golden_clay15.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from golden_cases import fill_named
from golden_clay15 import (
    BACKBONE_CASES,
    FACTORY_CASES,
    FACTORY_MODULES,
    MAE_KWARGS,
    TINY,
    TINY_DECODER,
    backbone_kwargs,
    forward_kwargs,
    input_for,
    layout,
    mae_outputs,
    signature_of,
    with_teacher,
    write_encoder_checkpoint,
)
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("clay15")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "clay15" / "features.safetensors"))


@pytest.fixture(autouse=True)
def _full_precision() -> Iterator[None]:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def _max_errors(ours: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> dict[str, float]:
    report = {}
    for key, tensor in ours.items():
        assert tensor.shape == want[key].shape, f"{key}: {tuple(tensor.shape)} != {tuple(want[key].shape)}"
        report[key] = (tensor - want[key]).abs().max().item()
    return report


@pytest.mark.parametrize("name", list(BACKBONE_CASES))
def test_clay15_backbone_matches_reference(
    name: str, expected: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from terratorch.registry import BACKBONE_REGISTRY

    case, ref = BACKBONE_CASES[name], MANIFEST["backbone"][name]
    path = tmp_path / "clay-v1.5-tiny.ckpt"
    write_encoder_checkpoint(
        BACKBONE_REGISTRY.build("clay_v15_tiny", **backbone_kwargs(case)).clay_encoder, path
    )
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert layout_diff(ref["checkpoint_layout"], {k: list(v.shape) for k, v in saved.items()}) == ""
    model = BACKBONE_REGISTRY.build("clay_v15_tiny", **backbone_kwargs(case, str(path))).eval()
    with torch.no_grad():
        features = model(input_for(case), **forward_kwargs(case))
    assert len(features) == TINY["depth"] and model.out_channels == [TINY["dim"]] * TINY["depth"]
    ours = {f"{name}.block0": features[0], f"{name}.last": features[-1]}
    report = _max_errors(ours, expected)
    assert max(report.values()) <= ATOL, f"{name}: max |ours - reference| per output: {report}"
    grid = model.prepare_features_for_image_model(features)[-1]
    assert grid.shape == (1, TINY["dim"], 4, 4)
    assert torch.equal(grid.flatten(2).transpose(1, 2), features[-1][:, 1:])


def _expand_blocks(keys: dict[str, list[int]], prefix: str, depth: int) -> dict[str, list[int]]:
    """A layout built with one block under ``prefix``, with that block repeated ``depth`` times."""
    out = {}
    for key, shape in keys.items():
        if key.startswith(prefix + "0."):
            for i in range(depth):
                out[f"{prefix}{i}." + key.removeprefix(prefix + "0.")] = shape
        else:
            out[key] = shape
    return out


def test_clay15_published_layout() -> None:
    """The encoder of ``clay_v15_large`` and our large decoder have the key names and shapes of the
    published checkpoint (built with one block each, then repeated: the blocks are identical)."""
    from terratorch.models.backbones.clay_v15.model import Decoder
    from terratorch.registry import BACKBONE_REGISTRY

    encoder = BACKBONE_REGISTRY.build("clay_v15_large", depth=1).clay_encoder
    decoder = Decoder(0.75, 8, encoder_dim=1024, dim=512, depth=1, heads=4, dim_head=64, mlp_ratio=4)
    ours = {f"model.encoder.{k}": v for k, v in layout(encoder).items()}
    ours = _expand_blocks(ours, "model.encoder.transformer.layers.", 24)
    ours.update(_expand_blocks({f"model.decoder.{k}": v for k, v in layout(decoder).items()},
                               "model.decoder.transformer.layers.", 4))  # fmt: skip
    assert layout_diff(MANIFEST["large_layout"], ours) == ""


def test_clay15_mae_matches_reference(expected: dict[str, torch.Tensor]) -> None:
    from terratorch.models.backbones.clay_v15.model import ClayMAE

    mae = ClayMAE(**with_teacher(MAE_KWARGS), **TINY, **TINY_DECODER)
    assert layout_diff(MANIFEST["mae_layout"], layout(mae)) == ""
    fill_named(mae, torch)
    ours = {f"mae.{k}": v for k, v in mae_outputs(mae).items()}
    report = _max_errors(ours, expected)
    assert max(report.values()) <= ATOL, f"max |ours - reference| per output: {report}"


@pytest.mark.parametrize("name", list(FACTORY_CASES))
def test_clay_factory_layout_matches_reference(name: str) -> None:
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    factory, kwargs = FACTORY_CASES[name]
    ref = MANIFEST["factories"][name]
    model = MODEL_FACTORY_REGISTRY.build(factory).build_model(**with_teacher(kwargs))
    assert type(model).__name__ == ref["type"]
    assert layout_diff(ref["layout"], layout(model)) == ""
    if "output_shape" in ref:
        from golden_clay15 import factory_output_shape

        assert factory_output_shape(model, kwargs) == ref["output_shape"]


@pytest.mark.parametrize("factory", list(FACTORY_MODULES))
def test_clay_factory_signatures(factory: str) -> None:
    import importlib

    cls = getattr(importlib.import_module(FACTORY_MODULES[factory]), factory)
    assert signature_of(cls.build_model) == MANIFEST["signatures"][factory]
