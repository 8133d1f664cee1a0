"""Real checkpoints written by the reference release load into our tasks and predict the same.

The fixtures (``tools/reference/golden_checkpoints.py``) are Lightning checkpoints of reference tasks
fine-tuned for two steps, plus a ``state_dict`` with the legacy ``_timm_module.`` key prefix.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
CKPT_CASES = ["seg_prithvi_upernet_aux", "reg_prithvi_fcn", "cla_timm_identity"]


def _task_class(name: str) -> type:
    import terratorch.tasks as tasks

    return getattr(tasks, name)


def _build_task(case: dict[str, Any]) -> Any:
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(case["task_args"])
    if case.get("aux_heads"):
        kwargs["aux_heads"] = [AuxiliaryHead(**a) for a in case["aux_heads"]]
    return _task_class(case["task"])(**kwargs)


def _check_outputs(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    model.eval()
    with torch.no_grad():
        result = model(expected["input"])
    torch.testing.assert_close(result.output, expected["output"], atol=ATOL, rtol=0)
    aux = {k[4:]: v for k, v in expected.items() if k.startswith("aux.")}
    got = result.auxiliary_heads or {}
    assert sorted(got) == sorted(aux)
    for key, value in aux.items():
        torch.testing.assert_close(got[key], value, atol=ATOL, rtol=0)


def test_manifest_lists_the_cases():
    assert sorted(load_manifest("checkpoints")) == sorted([*CKPT_CASES, "cla_timm_legacy_prefix"])


@pytest.mark.parametrize("name", CKPT_CASES)
def test_task_state_dict_layout_matches_reference(name):
    case = load_manifest("checkpoints")[name]
    task = _build_task(case)
    ours = {k: list(v.shape) for k, v in task.state_dict().items()}
    diff = layout_diff(case["state_dict"], ours)
    assert not diff, f"{name}: {diff}"


@pytest.mark.parametrize("name", CKPT_CASES)
def test_reference_checkpoint_loads_strictly_into_our_task(name):
    case = load_manifest("checkpoints")[name]
    checkpoint = torch.load(
        GOLDEN / "checkpoints" / case["checkpoint"], map_location="cpu", weights_only=False
    )
    task = _build_task(case)
    task.load_state_dict(checkpoint["state_dict"], strict=True)
    _check_outputs(task.model, load_file(str(GOLDEN / "checkpoints" / f"{name}.safetensors")))


@pytest.mark.parametrize("name", CKPT_CASES)
def test_load_from_checkpoint_restores_the_reference_task(name):
    case = load_manifest("checkpoints")[name]
    task = _task_class(case["task"]).load_from_checkpoint(
        str(GOLDEN / "checkpoints" / case["checkpoint"]), map_location="cpu", weights_only=False
    )
    _check_outputs(task.model, load_file(str(GOLDEN / "checkpoints" / f"{name}.safetensors")))


def test_legacy_timm_module_prefix_is_stripped_on_load():
    case = load_manifest("checkpoints")["cla_timm_legacy_prefix"]
    state = torch.load(
        GOLDEN / "checkpoints" / case["state_dict_file"], map_location="cpu", weights_only=True
    )
    assert any("._timm_module." in k for k in state["state_dict"])
    task = _build_task(case)
    task.load_state_dict(state["state_dict"], strict=True)
    _check_outputs(task.model, load_file(str(GOLDEN / "checkpoints" / f"{case['outputs_of']}.safetensors")))


def test_mismatching_checkpoint_names_the_first_keys_and_shapes():
    case = load_manifest("checkpoints")["cla_timm_identity"]
    checkpoint = torch.load(
        GOLDEN / "checkpoints" / case["checkpoint"], map_location="cpu", weights_only=False
    )
    other = dict(
        case,
        task_args={
            **case["task_args"],
            "model_args": {**case["task_args"]["model_args"], "head_dim_list": [8]},
        },
    )
    task = _build_task(other)
    with pytest.raises(RuntimeError) as info:
        task.load_state_dict(checkpoint["state_dict"], strict=True)
    message = str(info.value)
    assert "model.head.head.0.0.0.weight: checkpoint [16, 96], model [8, 96]" in message
    assert "3 shape mismatch(es)" in message and len(message) < 2000
