"""Configs the reference CLI resolves resolve the same way in ours (``tools/reference/golden_configs.py``).

Each config of ``tests/compat/configs/`` is instantiated with our ``build_lightning_cli(run=False)``
and compared with what the reference built from it: task class, model state-dict layout,
datamodule class and resolved arguments, dataset sizes and first sample, callbacks, optimizers
and schedulers, top-level CLI settings.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import golden_configs
import pytest
from tests.compat.conftest import layout_diff, load_manifest

NAMES = golden_configs.config_names()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden_configs.make_data(tmp_path_factory.mktemp("golden_configs") / "data")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_manifest("configs")


def _ours(name: str, data_root: Path, tmp_path: Path) -> dict[str, Any]:
    from terratorch.cli_tools import build_lightning_cli

    return golden_configs.collect(build_lightning_cli, name, data_root, tmp_path)


def _init_args_diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Reference arguments that ours lacks or resolves to another value (extra ones of ours are fine)."""
    problems = []
    for key, value in expected.items():
        if key not in actual:
            problems.append(f"{key}: missing in ours (reference: {value!r})")
        elif key.endswith("transform") and isinstance(value, list) and isinstance(actual[key], list):
            problems += [f"{key}: {p}" for p in _transforms_diff(value, actual[key])]
        elif actual[key] != value and not (_number(value) and _number(actual[key]) and value == actual[key]):
            problems.append(f"{key}: reference {value!r}, ours {actual[key]!r}")
    return problems


def _transforms_diff(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Same transforms in the same order with the same arguments.

    One side may spell out defaults the other leaves implicit; an argument the reference records
    but ours lacks must be an albumentations 1.x one (not taken by the albumentations 2 class),
    which ours rewrites with a warning (checked separately).
    """
    import albumentations
    import albumentations.pytorch

    names = [t.get("class_path") for t in expected], [t.get("class_path") for t in actual]
    if names[0] != names[1]:
        return [f"transforms: reference {names[0]}, ours {names[1]}"]
    problems = []
    for ref, ours in zip(expected, actual, strict=True):
        cls = getattr(albumentations, ref["class_path"], None) or getattr(
            albumentations.pytorch, ref["class_path"]
        )
        accepted = set(inspect.signature(cls).parameters)
        ref_args, our_args = ref.get("init_args") or {}, ours.get("init_args") or {}
        for arg, value in ref_args.items():
            if arg in our_args and our_args[arg] != value:
                problems.append(f"{ref['class_path']}.{arg}: reference {value!r}, ours {our_args[arg]!r}")
            elif (
                arg not in our_args
                and arg in accepted
                and value != inspect.signature(cls).parameters[arg].default
            ):
                problems.append(f"{ref['class_path']}.{arg}: reference {value!r}, missing in ours")
    return problems


def _given_keys(name: str) -> set[str]:
    """Top-level keys the config file or its extra flags set."""
    import yaml

    config = yaml.safe_load((golden_configs.CONFIGS / f"{name}.yaml").read_text())
    flags = {a[2:] for a in golden_configs.EXTRA_ARGS.get(name, []) if a.startswith("--")}
    return set(config) | flags


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_corpus_is_in_the_manifest(manifest: dict[str, Any]) -> None:
    assert sorted(manifest) == NAMES, "re-run tools/reference/make_golden.py --only configs"
    refused = {n: v["reference_error"] for n, v in manifest.items() if "reference_error" in v}
    assert not refused, f"the corpus must hold configs the reference accepts: {refused}"


@pytest.mark.parametrize("name", NAMES)
def test_config_instantiates_like_the_reference(
    name: str, manifest: dict[str, Any], data_root: Path, tmp_path: Path
) -> None:
    expected = manifest[name]
    actual = _ours(name, data_root, tmp_path)
    problems = []
    for key in ("task", "datamodule"):
        if actual[key] != expected[key]:
            problems.append(f"{key}: reference {expected[key]}, ours {actual[key]}")
    layout = layout_diff(expected["layout"], actual["layout"])
    if layout:
        problems.append(f"model layout: {layout}")
    problems += [
        f"data.init_args.{p}"
        for p in _init_args_diff(expected["datamodule_init_args"], actual["datamodule_init_args"])
    ]
    if expected["datasets"] != actual["datasets"]:
        problems.append(f"datasets: reference {expected['datasets']}, ours {actual['datasets']}")
    if actual["callbacks"] != expected["callbacks"]:
        problems.append(f"callbacks: reference {expected['callbacks']}, ours {actual['callbacks']}")
    reference_opt, our_opt = expected["optimization"], actual["optimization"]
    if "error" in reference_opt:  # a reference bug (e.g. monitor handed to torch's ReduceLROnPlateau)
        if "error" in our_opt:
            problems.append(f"configure_optimizers fails in ours too: {our_opt['error']}")
    elif our_opt != reference_opt:
        problems.append(f"optimization: reference {reference_opt}, ours {our_opt}")
    given = _given_keys(name)
    for key, value in expected["top_level"].items():  # defaults may differ (out_dtype, see docs)
        if key in given and actual["top_level"].get(key) != value:
            problems.append(f"{key}: reference {value!r}, ours {actual['top_level'].get(key)!r}")
    missing = sorted(set(expected["warned_transforms"]) - set(actual["warned_transforms"]))
    if missing:  # albumentations 1.x arguments: ours must warn as well
        problems.append(f"no warning about the albumentations 1.x arguments of {missing}")
    assert not problems, "\n".join(problems)
