"""TerraMind checkpoints fine-tuned by the reference load strictly into our tasks and predict the same.

Fixtures: ``tools/reference/golden_terramind_checkpoint.py``. The stored ``.ckpt`` files lack the
frozen backbone tensors (a tiny TerraMind is ~22 MB); they are rebuilt here with ``fill_named`` from
their keys and the completed state dict must hash to the reference's digest before it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from golden_terramind_checkpoint import digest, fill_layout
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
CASES = ["seg_terramind_tiny_lora_upernet", "seg_terramind_tiny_unet"]
HERE = GOLDEN / "terramind_checkpoint"

pytest.importorskip("peft")  # the LoRA case needs it; the reference checkpoints come from a peft run


def _task(case: dict[str, Any]) -> Any:
    import terratorch.tasks as tasks

    return getattr(tasks, case["task"])(**case["task_args"])


def _completed_checkpoint(case: dict[str, Any], tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """The reference checkpoint with the dropped backbone tensors rebuilt; checked against its digest."""
    checkpoint = torch.load(HERE / case["checkpoint"], map_location="cpu", weights_only=False)
    state = {**checkpoint["state_dict"], **fill_layout(case["regenerated"], torch)}
    assert digest(state) == case["digest"], "rebuilt state dict differs from the reference's"
    checkpoint["state_dict"] = state
    path = tmp_path / case["checkpoint"]
    torch.save(checkpoint, path)
    return checkpoint, path


def _check_prediction(model: torch.nn.Module, name: str) -> None:
    expected = load_file(str(HERE / f"{name}.safetensors"))
    x = {k.split(".", 1)[1]: v for k, v in expected.items() if k.startswith("input.")}
    model.eval()
    with torch.no_grad():
        output = model(x).output
    torch.testing.assert_close(output, expected["output"], atol=ATOL, rtol=0)


def test_manifest_lists_the_cases() -> None:
    assert sorted(load_manifest("terramind_checkpoint")) == CASES


@pytest.mark.parametrize("name", CASES)
def test_reference_terramind_checkpoint_loads_strictly_and_predicts_the_same(
    name: str, tmp_path: Path
) -> None:
    case = load_manifest("terramind_checkpoint")[name]
    task = _task(case)
    ours = {k: list(v.shape) for k, v in task.state_dict().items()}
    diff = layout_diff(case["state_dict"], ours)
    assert not diff, f"{name}: {diff}"
    checkpoint, _ = _completed_checkpoint(case, tmp_path)
    task.load_state_dict(checkpoint["state_dict"], strict=True)
    _check_prediction(task.model, name)


@pytest.mark.parametrize("name", CASES)
def test_load_from_checkpoint_restores_the_reference_terramind_task(name: str, tmp_path: Path) -> None:
    case = load_manifest("terramind_checkpoint")[name]
    _, path = _completed_checkpoint(case, tmp_path)
    task = _task(case).__class__.load_from_checkpoint(str(path), map_location="cpu", weights_only=False)
    _check_prediction(task.model, name)
