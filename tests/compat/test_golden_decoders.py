"""Decoders on their own: our state-dict layout, out_channels, includes_head and eval outputs equal
the reference's, case by case (fixtures from ``tools/reference/golden_decoders.py``)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from golden_cases import fill_named
from golden_decoders import CASES, build, extra_inputs, features, run
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
NAMES = sorted(case["name"] for case in CASES)
BY_NAME = {case["name"]: case for case in CASES}


def build_ours(name: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # UperNetDecoder(scale_modules=True)
        return build(BY_NAME[name])


@pytest.fixture(autouse=True)
def _full_precision_matmul():
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def test_manifest_covers_every_case():
    manifest = load_manifest("decoders")
    assert sorted(manifest) == NAMES
    for name in NAMES:
        case = json.loads(json.dumps(BY_NAME[name]))
        for field in ("decoder", "channel_list", "kwargs", "feature_shapes"):
            assert manifest[name][field] == case[field], f"{name}: {field}"
        assert manifest[name]["call"] == case.get("call", "list"), name


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_layout_out_channels_and_includes_head_match_reference(name):
    golden = load_manifest("decoders")[name]
    decoder = build_ours(name)
    ours = {k: list(v.shape) for k, v in decoder.state_dict().items()}
    diff = layout_diff(golden["state_dict"], ours)
    assert not diff, f"{name}: {diff}"
    if golden["out_channels"] is not None:
        assert decoder.out_channels == golden["out_channels"]
    assert bool(getattr(type(decoder), "includes_head", False)) is golden["includes_head"]


@pytest.mark.parametrize("name", NAMES)
def test_eval_outputs_match_reference(name):
    golden = load_manifest("decoders")[name]
    tensors = load_file(str(GOLDEN / "decoders" / f"{name}.safetensors"))
    inputs = [tensors[f"feature.{i}"] for i in range(len(golden["feature_shapes"]))]
    # the fixture's features are the seeded ones the test can regenerate
    for seeded, stored in zip(features(torch, BY_NAME[name]), inputs):
        torch.testing.assert_close(seeded, stored, atol=0, rtol=0)
    extra = {key: tensors[key] for key in extra_inputs(torch, BY_NAME[name])}
    decoder = build_ours(name)
    fill_named(decoder, torch)
    decoder.eval()
    with torch.no_grad():
        result = run(decoder, inputs, extra, BY_NAME[name])
    outputs = {k: v for k, v in tensors.items() if k.startswith("output")}
    if isinstance(result, (list, tuple)):
        assert sorted(outputs) == sorted(f"output.{i}" for i in range(len(result)))
        got = {f"output.{i}": r for i, r in enumerate(result)}
    else:
        assert list(outputs) == ["output"]
        got = {"output": result}
    for key, expected in outputs.items():
        assert got[key].shape == expected.shape, f"{name} {key}"
        torch.testing.assert_close(got[key], expected, atol=ATOL, rtol=0)
