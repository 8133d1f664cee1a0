"""``terratorch iterate --dry-run`` accepts each benchmark-config corpus file and resolves the same facts
as the reference benchmark tool (terratorch-iterate) parses from it.

The facts (``tests/compat/golden/iterate/``) were recorded with the reference tool's own parser by
``tools/reference/golden_iterate.py``; the same module's :func:`typed` encodes our values, so numbers
must have the same Python type (``lr: 1e-6`` a float on both sides), class paths the same full path.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import golden_iterate as golden
import pytest
from tests.compat.conftest import load_manifest

MANIFEST = load_manifest("iterate")
GOLDEN = Path(__file__).resolve().parent / "golden" / "iterate"


def _write(name: str, tmp_path: Path) -> tuple[Path, str, str]:
    data_root, storage = str(tmp_path / "data"), str(tmp_path / "storage")
    (tmp_path / "storage").mkdir()
    path = tmp_path / f"{name}.yaml"
    path.write_text(golden.substituted(name, data_root, storage))
    return path, data_root, storage


def _restrict(ours: Any, reference: Any) -> Any:
    """``ours`` limited to the keys the reference has (nested), so our added keys do not count."""
    if isinstance(reference, dict) and isinstance(ours, dict):
        return {k: _restrict(ours[k], v) if k in ours else "<missing>" for k, v in reference.items()}
    return ours


def _align(ours: Any, reference: Any) -> Any:
    """Two known representation differences that are not about the benchmark tool's parsing.

    * A data root the reference's datamodule annotates as ``Path`` and ours as ``str`` (the same
      folder; checked by the datamodule goldens, not here): ours is taken as the reference's type.
    * Transform class paths: the CLI loader of ``terratorch fit`` expands short transform names
      (``ToTensorV2`` -> ``albumentations.ToTensorV2``), which the reference keeps as written; only
      the class name is compared (and the defaults our parser fills in for the expanded name are
      dropped where the reference, not knowing the class, has none).
    """
    if isinstance(reference, dict) and isinstance(ours, dict):
        aligned = {k: _align(ours[k], reference[k]) if k in reference else v for k, v in ours.items()}
        if "class_path" in reference and "class_path" in ours:
            ref_name = reference["class_path"][1].rsplit(".", 1)[-1]
            if ours["class_path"][1].rsplit(".", 1)[-1] == ref_name:
                aligned["class_path"] = reference["class_path"]
                if "init_args" not in reference:
                    aligned.pop("init_args", None)
        return aligned
    if isinstance(reference, list) and isinstance(ours, list) and len(reference) == len(ours):
        if len(reference) == 2 and reference[0] == "PosixPath" and ours[0] == "str":
            return ["PosixPath", ours[1]] if ours[1] == reference[1] else ours
        return [_align(o, r) for o, r in zip(ours, reference, strict=True)]
    return ours


def _our_facts(path: Path, data_root: str, storage: str) -> dict[str, Any]:
    from terratorch.iterate import lightning_bridge
    from terratorch.iterate.config import _read_yaml, is_summarize_config, load_plan, load_summarize_config

    raw = _read_yaml(path, str(path))
    facts: dict[str, Any] = {"top_level": {}, "tasks": []}
    if is_summarize_config(raw):
        config = load_summarize_config(path)
        facts["summarize"] = {
            k: golden.typed(getattr(config, k)) for k in (*golden.SUMMARIZE_KEYS, "storage_uri") if k in raw
        }
        return golden.normalise(facts, data_root, storage)
    plan = load_plan(path)
    config = plan.config
    for key in golden.TOP_LEVEL:
        if key in raw:
            facts["top_level"][key] = golden.typed(getattr(config, key))
    facts["trainer_args"] = golden.typed(config.defaults.trainer_args)
    facts["optimization_space"] = golden.typed(config.optimization_space)
    for spec, task in zip(config.tasks, plan.tasks, strict=True):
        data = lightning_bridge.parse_section("data", task.datamodule)
        given = sorted((spec.datamodule.init_args or {}).keys())
        facts["tasks"].append(
            {
                "name": spec.name,
                "type": golden.typed(spec.type),
                "direction": task.direction,
                "metric": spec.metric if spec.metric is not None else "val/loss",
                "early_prune": task.early_prune,
                "early_stop_patience": task.early_stop_patience,
                "max_run_duration": task.max_run_duration,
                "optimization_except": sorted(spec.optimization_except),
                "datamodule_class": data.class_path,
                "datamodule_args": {k: golden.typed(data.init_args[k]) for k in given},
                "terratorch_task": golden.typed(copy.deepcopy(task.task_kwargs)),
            }
        )
    return golden.normalise(facts, data_root, storage)


@pytest.mark.parametrize("name", MANIFEST["configs"])
def test_dry_run_accepts_and_resolves_like_the_reference(name, tmp_path, capsys):
    import json

    from terratorch.iterate.__main__ import main

    path, data_root, storage = _write(name, tmp_path)
    assert main(["--config", str(path), "--dry-run"]) == 0
    assert "dry run: config is valid" in capsys.readouterr().out
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    ours = _our_facts(path, data_root, storage)
    for ref_task, our_task in zip(expected["tasks"], ours["tasks"], strict=True):
        our_task["terratorch_task"] = _restrict(our_task["terratorch_task"], ref_task["terratorch_task"])
        our_task["datamodule_args"] = _align(our_task["datamodule_args"], ref_task["datamodule_args"])
    assert ours == expected


def test_corpus_is_the_recorded_one():
    assert MANIFEST["configs"] == golden.config_names()
