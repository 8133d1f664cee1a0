"""TerraMind configs in the reference's documented styles build the same model in ours.

Fixtures: ``tools/reference/golden_terramind_configs.py`` (configs in
``tests/compat/golden/terramind_configs/configs/``). Each config is instantiated with our
``build_lightning_cli(run=False)``; the task/datamodule classes, the model's state-dict layout, the
classes of the torch/peft modules holding parameters, the trainable parameters, the first validation
sample and the model output with ``fill_named`` weights must equal what the reference recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import golden_terramind_configs as golden
import pytest
import torch
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
NAMES = golden.config_names()
#: Module classes compared by name: the library ones both implementations share.
SHARED_PREFIXES = ("torch.nn.", "peft.")
#: config -> key prefix of reference modules we do not ship (see docs/compatibility.md, TerraMind).
NOT_SHIPPED: dict[str, str] = {}


def _without(expected: dict[str, Any], name: str) -> dict[str, Any]:
    """The reference's facts minus the modules ours does not ship for ``name`` (which must be there)."""
    prefix = NOT_SHIPPED.get(name)
    if prefix is None:
        return expected
    dropped = [k for k in expected["layout"] if k.startswith(prefix)]
    assert dropped, f"{name}: the reference has no {prefix}* keys any more; drop it from NOT_SHIPPED"
    out = dict(expected)
    out["layout"] = {k: v for k, v in expected["layout"].items() if not k.startswith(prefix)}
    out["trainable"] = [k for k in expected["trainable"] if not k.startswith(prefix)]
    out["module_classes"] = {
        k: v for k, v in expected["module_classes"].items() if not (k + ".").startswith(prefix)
    }
    return out


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_manifest("terramind_configs")


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "terramind_configs" / "outputs.safetensors"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden.make_data(tmp_path_factory.mktemp("golden_terramind_configs") / "data")


def _class_diff(expected: dict[str, str], actual: dict[str, str], limit: int = 5) -> list[str]:
    """torch/peft modules of the reference missing in ours or of another class at the same path."""
    problems = []
    for path, cls in sorted(expected.items()):
        if not cls.startswith(SHARED_PREFIXES):
            continue
        ours = actual.get(path)
        if ours is None or ours.rsplit(".", 1)[-1] != cls.rsplit(".", 1)[-1]:
            problems.append(f"{path or '<model>'}: reference {cls}, ours {ours}")
    return problems[:limit]


def test_configs_are_in_the_manifest(manifest: dict[str, Any]) -> None:
    assert sorted(manifest) == NAMES, "re-run tools/reference/make_golden.py --only terramind_configs"
    refused = {n: v["reference_error"] for n, v in manifest.items() if "reference_error" in v}
    assert not refused, f"the configs must be ones the reference accepts: {refused}"


@pytest.mark.parametrize("name", NAMES)
def test_terramind_config_builds_like_the_reference(
    name: str, manifest: dict[str, Any], outputs: dict[str, torch.Tensor], data_root: Path, tmp_path: Path
) -> None:
    from terratorch.cli_tools import build_lightning_cli

    expected = _without(manifest[name], name)
    actual, output = golden.collect(build_lightning_cli, name, data_root, tmp_path)
    problems = [
        f"{key}: reference {expected[key]}, ours {actual[key]}"
        for key in ("task", "datamodule")
        if actual[key] != expected[key]
    ]
    layout = layout_diff(expected["layout"], actual["layout"])
    if layout:
        problems.append(f"model layout: {layout}")
    problems += [
        f"module class {p}" for p in _class_diff(expected["module_classes"], actual["module_classes"])
    ]
    if actual["trainable"] != expected["trainable"]:
        missing = sorted(set(expected["trainable"]) - set(actual["trainable"]))[:5]
        extra = sorted(set(actual["trainable"]) - set(expected["trainable"]))[:5]
        problems.append(f"trainable parameters: reference-only {missing}, ours-only {extra}")
    if actual["datasets"] != expected["datasets"]:
        problems.append(f"datasets: reference {expected['datasets']}, ours {actual['datasets']}")
    reference_output = outputs[name]
    if tuple(output.shape) != tuple(reference_output.shape):
        problems.append(
            f"output shape: reference {tuple(reference_output.shape)}, ours {tuple(output.shape)}"
        )
    elif not torch.allclose(output, reference_output, atol=ATOL, rtol=0):
        problems.append(f"output differs by up to {(output - reference_output).abs().max().item():.3g}")
    assert not problems, "\n".join(problems)
