"""Golden part "iterate": what the reference benchmark tool's parser makes of each corpus config.

Every YAML file of ``tests/compat/iterate_configs/`` (placeholders ``@DATA_ROOT@`` and ``@STORAGE@``
replaced by fixed folders) is given to the reference tool's own entry point
(``terratorch_iterate.main.main``, which ``terratorch iterate`` runs in the reference release) with
``--config FILE``. Its parser's ``parse_path`` result is captured and the run is stopped before
anything trains. Recorded per config:

* per task: name, type, direction, metric, early-stopping/pruning settings, ``max_run_duration``,
  ``optimization_except``;
* per task: the datamodule's full class path and the values (with Python types) of the init args
  the config gives;
* per task: the task arguments after merging ``defaults.terratorch_task`` (the reference's own
  merge), with types;
* ``defaults.trainer_args`` and ``optimization_space`` with types, and the top-level settings;
* for a summarize config: its summarize keys.

:func:`typed` is the one encoding of values used on both sides; ``tests/compat/test_golden_iterate.py``
imports it to describe our ``terratorch iterate --dry-run`` plan the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[2] / "tests" / "compat" / "iterate_configs"
DATA_ROOT = "/tmp/terratorch-golden-iterate/data"
STORAGE = "/tmp/terratorch-golden-iterate/storage"
# Top-level settings recorded when the config sets them.
TOP_LEVEL = (
    "experiment_name",
    "run_name",
    "n_trials",
    "run_repetitions",
    "save_models",
    "storage_uri",
    "ray_storage_path",
    "bayesian_search",
    "test_models",
    "report_on_best_val",
)
SUMMARIZE_KEYS = (
    "list_of_experiment_names",
    "task_names",
    "task_metrics",
    "benchmark_name",
    "run_repetitions",
)


def config_names() -> list[str]:
    """Stems of the corpus configs, sorted."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def substituted(name: str, data_root: str = DATA_ROOT, storage: str = STORAGE) -> str:
    """The text of corpus config ``name`` with its placeholders replaced."""
    text = (CONFIGS / f"{name}.yaml").read_text()
    return text.replace("@DATA_ROOT@", data_root).replace("@STORAGE@", storage)


def typed(value: Any) -> Any:
    """JSON form of a parsed value that keeps its type: leaves become ``[type name, value]``."""
    if hasattr(value, "as_dict") and callable(value.as_dict):  # a jsonargparse Namespace
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [typed(v) for v in items]
    if value is None:
        return ["NoneType", None]
    if isinstance(value, bool | int | float | str):
        return [type(value).__name__, value]
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # an Enum
        return typed(value.value)
    return [type(value).__name__, str(value)]


def normalise(value: Any, data_root: str, storage: str) -> Any:
    """Replace the substituted folders by the placeholders again (so both sides compare equal)."""
    if isinstance(value, dict):
        return {k: normalise(v, data_root, storage) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, data_root, storage) for v in value]
    if isinstance(value, str):
        return value.replace(data_root, "@DATA_ROOT@").replace(storage, "@STORAGE@")
    return value


def _given_keys(raw_task: dict[str, Any]) -> list[str]:
    datamodule = raw_task.get("datamodule") or {}
    return sorted((datamodule.get("init_args") or {}).keys())


_RAY_MODULES = (
    "ray",
    "ray.tune",
    "ray.air",
    "ray.train",
    "ray.train._internal",
    "ray.train._internal.storage",
    "ray.tune.experiment",
    "ray.tune.integration",
    "ray.tune.integration.pytorch_lightning",
    "ray.tune.schedulers",
    "ray.tune.schedulers.hb_bohb",
    "ray.tune.search",
    "ray.tune.search.basic_variant",
    "ray.tune.search.optuna",
    "ray.tune.search.bohb",
)


def _stub_ray() -> None:
    """Stand-in ``ray`` modules: the reference tool imports Ray at module level, parsing never uses it.

    Only installed when Ray itself is not importable (it is not a dependency of the reference venv).
    """
    import importlib.util
    import types

    if "ray" in sys.modules or importlib.util.find_spec("ray") is not None:
        return

    class _Meta(type):
        def __getattr__(cls, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Meta(name, (), {})

    class _Anything(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Meta(name, (), {})

    for module in _RAY_MODULES:
        sys.modules.setdefault(module, _Anything(module))
    sys.modules["ray"].remote = lambda *args, **kwargs: lambda fn: fn  # decorator factory
    for module in _RAY_MODULES:
        parent, _, child = module.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[module])


class _StopParsingError(Exception):
    """Raised from the patched parser once the parsed config is captured."""


def _reference_parse(path: Path) -> Any:
    """The reference tool's ``parse_path`` result for ``path`` (its entry point stopped right after)."""
    import jsonargparse

    _stub_ray()
    from terratorch_iterate import main as reference_main

    captured: dict[str, Any] = {}
    original = jsonargparse.ArgumentParser.parse_path

    def capture(self: Any, *args: Any, **kwargs: Any) -> Any:
        captured["config"] = original(self, *args, **kwargs)
        raise _StopParsingError

    argv = sys.argv
    jsonargparse.ArgumentParser.parse_path = capture  # type: ignore[method-assign]
    sys.argv = ["iterate", "--config", str(path)]
    try:
        reference_main.main()
    except _StopParsingError:
        pass
    finally:
        jsonargparse.ArgumentParser.parse_path = original  # type: ignore[method-assign]
        sys.argv = argv
    if "config" not in captured:
        raise RuntimeError(f"the reference tool did not parse {path}")
    return captured["config"]


def reference_facts(name: str, work: Path) -> dict[str, Any]:
    """Facts of corpus config ``name`` as the reference tool parses it."""
    import copy

    import yaml
    from terratorch_iterate.iterate_types import recursive_merge

    path = work / f"{name}.yaml"
    path.write_text(substituted(name))
    raw = yaml.safe_load(path.read_text())
    config = _reference_parse(path)
    facts: dict[str, Any] = {"top_level": {}, "tasks": []}
    if raw.get("list_of_experiment_names") and not raw.get("tasks"):
        facts["summarize"] = {k: typed(config[k]) for k in SUMMARIZE_KEYS if config.get(k) is not None}
        facts["summarize"]["storage_uri"] = typed(config["storage_uri"])
        return normalise(facts, DATA_ROOT, STORAGE)
    for key in TOP_LEVEL:
        if key in raw:
            facts["top_level"][key] = typed(config[key])
    defaults = config.defaults
    facts["trainer_args"] = typed(defaults.trainer_args)
    facts["optimization_space"] = typed(config.optimization_space)
    for raw_task, task in zip(raw["tasks"], config.tasks, strict=True):
        merged = copy.deepcopy(defaults.terratorch_task) or {}
        recursive_merge(merged, copy.deepcopy(task.terratorch_task or {}))
        datamodule = task.datamodule
        init_args = datamodule.init_args
        facts["tasks"].append(
            {
                "name": task.name,
                "type": typed(task.type),
                "direction": task.direction,
                "metric": task.metric,
                "early_prune": task.early_prune,
                "early_stop_patience": task.early_stop_patience,
                "max_run_duration": task.max_run_duration,
                "optimization_except": sorted(task.optimization_except or []),
                "datamodule_class": datamodule.class_path,
                "datamodule_args": {k: typed(init_args[k]) for k in _given_keys(raw_task)},
                "terratorch_task": typed(merged),
            }
        )
    return normalise(facts, DATA_ROOT, STORAGE)


def write(out: Path) -> int:
    """Record the facts of every corpus config into ``out`` (``<name>.json`` and ``manifest.json``)."""
    import importlib.metadata
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    names = config_names()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            facts = reference_facts(name, Path(tmp))
            (out / f"{name}.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    manifest = {
        "configs": names,
        "terratorch_iterate": importlib.metadata.version("terratorch-iterate"),
        "data_root": "@DATA_ROOT@",
        "storage": "@STORAGE@",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(names)
