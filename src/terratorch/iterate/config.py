"""Benchmark configs: loading, dotted overrides, the typed schema, and validation into a plan.

Both layouts of API.md §8 are accepted and normalised into one :class:`BenchmarkConfig`:

* backbone-centric: ``backbone: {backbone, backbone_args}`` plus task shorthands (``decoder``,
  ``loss``, ``bands``, ``num_classes``, ``lr``, ``max_epochs``, ...);
* defaults layout: ``defaults: {trainer_args, terratorch_task}`` merged under each task's
  ``terratorch_task`` / ``trainer_args``.

Precedence (lowest first): ``defaults`` → the task's ``terratorch_task``/``trainer_args`` → the
task's shorthand keys (``lr``, ``loss``, ``max_epochs``, ...) → the sampled hyperparameters.

:func:`build_plan` turns a config into one :class:`TaskPlan` per task and checks everything that can
be checked without training (keys, task types, metrics, directions, backbones). The task, datamodule
and trainer sections, and each search-space key injected into them, are validated by the
jsonargparse/LightningCLI parser of ``terratorch fit`` (:mod:`terratorch.iterate.lightning_bridge`),
which is also what builds them at run time. All problems are collected and raised together as one
:class:`ConfigError` whose lines carry the key paths.

The file is read with the CLI's YAML loader, so ``lr: 1e-6`` is a float as in ``terratorch fit``
(``yaml.safe_load`` would read it as a string). The keys of the reference benchmark tool
(terratorch-iterate) are accepted: ``ray_storage_path``, ``logger``, ``output_path``,
``max_run_duration``, leaf-name ``optimization_except`` and the summarize keys
(``list_of_experiment_names``, ``task_names``, ``task_metrics``, ``benchmark_name``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from terratorch.choices import did_you_mean
from terratorch.iterate import space as space_mod
from terratorch.iterate.metrics_table import DIRECTIONS, TASK_TYPES, resolve_metric

__all__ = [
    "BenchmarkConfig",
    "BenchmarkPlan",
    "ConfigError",
    "SummarizeConfig",
    "TaskPlan",
    "TaskSpec",
    "apply_overrides",
    "build_plan",
    "data_problems",
    "is_summarize_config",
    "load_config",
    "load_plan",
    "load_summarize_config",
    "parse_config",
    "used_splits",
]

# Keys that do not change what a trial computes: left out of the config hash, so raising n_trials or
# adding repetitions continues the same benchmark instead of starting a new one.
_HASH_EXCLUDED = (
    "n_trials",
    "run_repetitions",
    "description",
    "save_models",
    "ray_storage_path",
    "logger",
    "output_path",
    "parent_run_id",
    "list_of_experiment_names",
    "task_names",
    "task_metrics",
    "benchmark_name",
    "test_models",
    "demo_data",
    "ray",
    "reference_ranges",  # report-only: a new range re-renders the report, it does not retrain
    "normalization",
)
_FACTORY_PREFIXES = ("backbone_", "decoder_", "head_", "aux_", "smp_")


class ConfigError(ValueError):
    """One or more problems in a benchmark config.

    Attributes:
        problems: ``(key path, message)`` pairs, e.g. ``("tasks[0].direction", "...")``.
        source: The config file (or ``"<config>"``).
    """

    def __init__(self, problems: Sequence[tuple[str, str]], source: str = "<config>") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        lines = [f"invalid benchmark config {source} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {path}: {message}" if path else f"  - {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


# ----------------------------------------------------------------------------------------------
# Schema
# ----------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)


class ClassSpec(_Strict):
    """A class to instantiate: ``{class_path: pkg.mod.Class, init_args: {...}}``."""

    class_path: str
    init_args: dict[str, Any] = {}
    dict_kwargs: dict[str, Any] = {}


class BackboneSpec(_Strict):
    """The backbone under test: a registry name or a ``{class_path, init_args}`` module."""

    backbone: str | ClassSpec | None = None
    backbone_args: dict[str, Any] = {}


class DefaultsSpec(_Strict):
    """Defaults merged under every task (defaults layout)."""

    trainer_args: dict[str, Any] = {}
    terratorch_task: dict[str, Any] = {}


class DemoDataSpec(_Strict):
    """Demo data to generate before running (when ``root`` does not exist yet).

    ``task`` is a demo task of :func:`terratorch.datasets.demo.make_demo_dataset` (``segmentation``...)
    or a GEO-Bench task name (``m-eurosat``...), written in GEO-Bench's layout under ``root`` by
    :func:`terratorch.datasets.geobench_demo.make_geobench_demo` (``n_train`` samples per split),
    or ``object_detection`` (:func:`terratorch.datasets.demo.make_detection_demo`: GeoTIFFs of two
    classes of squares and COCO annotations).
    """

    task: str
    root: str
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    size: int | None = None
    num_bands: int | None = None
    num_classes: int | None = None
    seed: int | None = None


class TaskSpec(_Strict):
    """One downstream task of the benchmark (both layouts' keys)."""

    name: str
    type: str
    datamodule: ClassSpec
    metric: str | None = None
    direction: str | None = None
    model_factory: str | None = None
    decoder: str | None = None
    loss: str | list[Any] | dict[str, Any] | None = None
    bands: list[Any] | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    max_epochs: int | None = None
    lr: float | None = None
    freeze_backbone: bool | None = None
    ignore_index: int | None = None
    backbone_args: dict[str, Any] = {}
    decoder_args: dict[str, Any] = {}
    head_args: dict[str, Any] = {}
    early_stop_patience: int | None = None
    early_prune: bool = False
    optimization_except: list[str] = []
    max_run_duration: str | None = None
    trainer_args: dict[str, Any] = {}
    terratorch_task: dict[str, Any] | None = {}


class RaySpec(_Strict):
    """``ray:`` block: options of the Ray backend (``terratorch iterate --backend ray``, docs/scaling.md)."""

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None
    runtime_env: dict[str, Any] = {}


class BenchmarkConfig(_Strict):
    """The normalised benchmark config (both layouts of API.md §8, and the reference tool's keys).

    ``ray_storage_path`` (where the reference keeps Ray Tune results), ``logger`` (a
    ``logging.config`` file), ``output_path`` (CSV of the repeated runs) and ``parent_run_id`` are the
    reference tool's keys; ``list_of_experiment_names``, ``task_names``, ``task_metrics`` and
    ``benchmark_name`` form its summarize config (see :class:`SummarizeConfig`).
    """

    experiment_name: str
    run_name: str | None = None
    description: str | None = None
    backbone: BackboneSpec | None = None
    backbone_registration: str | list[str] | None = None
    custom_modules_path: str | list[str] | None = None
    defaults: DefaultsSpec = DefaultsSpec()
    tasks: list[TaskSpec]
    n_trials: int = 1
    save_models: bool = False
    storage_uri: str = "iterate_storage"
    optuna_storage: str | None = None
    optimization_space: dict[str, Any] = {}
    bayesian_search: bool = True
    run_repetitions: int = 0
    report_on_best_val: bool = True
    test_models: bool = False
    seed: int = 42
    heartbeat_interval: int = 30
    max_retries: int = 3
    reference_ranges: dict[str, list[float]] | str | None = None
    normalization: Literal["auto", "geobench"] = "auto"
    demo_data: list[DemoDataSpec] = []
    ray: RaySpec | None = None
    ray_storage_path: str | None = None
    logger: str | None = None
    output_path: str | None = None
    parent_run_id: str | None = None
    list_of_experiment_names: list[str] | None = None
    task_names: list[str] | None = None
    task_metrics: list[str] | None = None
    benchmark_name: str | None = None

    def config_hash(self) -> str:
        """Short hash of everything that changes what trials compute (see ``_HASH_EXCLUDED``)."""
        data = self.model_dump(mode="json", exclude=set(_HASH_EXCLUDED))
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def backbone_label(self) -> str:
        """Human-readable backbone name for tags and reports (registry name or class path).

        With one backbone per task (the reference tool's style, e.g. the quickstart's two backbones) the
        distinct names are joined in task order: ``"timm_resnet18, prithvi_eo_tiny"``.
        """
        spec = self.backbone.backbone if self.backbone else None
        if isinstance(spec, ClassSpec):
            return spec.class_path
        if spec:
            return spec
        names: dict[str, None] = {}
        for task in self.tasks:
            for source in (task.terratorch_task or {}, self.defaults.terratorch_task):
                name = _backbone_name(source.get("model_args", {}).get("backbone"))
                if name:
                    names[name] = None
                    break
        if names:
            return ", ".join(names)
        factory = self.tasks[0].model_factory or self.defaults.terratorch_task.get("model_factory")
        return str(factory or "unknown")


def _backbone_name(backbone: Any) -> str | None:
    """Registry name or class path of a ``model_args.backbone`` value, or None when it names neither."""
    if isinstance(backbone, str):
        return backbone
    if isinstance(backbone, Mapping) and "class_path" in backbone:
        return str(backbone["class_path"])
    return None


class SummarizeConfig(_Strict):
    """The reference tool's summarize config (``terratorch iterate --summarize --config FILE``).

    Compares the repeated runs of several experiments stored under ``storage_uri``. ``task_names``
    (and the matching ``task_metrics``) restrict the report to those tasks; ``benchmark_name`` names
    the report folder. ``run_repetitions`` is accepted for compatibility (the report uses every
    finished repetition). Other benchmark keys may be present and are ignored here.
    """

    model_config = ConfigDict(extra="ignore")

    storage_uri: str
    list_of_experiment_names: list[str]
    task_names: list[str] = []
    task_metrics: list[str] = []
    benchmark_name: str = "summary"
    run_repetitions: int | None = None
    reference_ranges: dict[str, list[float]] | str | None = None
    normalization: Literal["auto", "geobench"] = "auto"


def is_summarize_config(raw: Mapping[str, Any]) -> bool:
    """True for a summarize config (it lists experiments and has no tasks)."""
    return "list_of_experiment_names" in raw and not raw.get("tasks")


def load_summarize_config(
    path: str | os.PathLike[str], overrides: Sequence[tuple[str, str]] = ()
) -> SummarizeConfig:
    """Read and validate a summarize config (all problems at once).

    Raises:
        ConfigError: Missing or ill-typed keys, or ``task_metrics`` not matching ``task_names``.
    """
    source = os.fspath(path)
    raw = apply_overrides(_read_yaml(Path(path).expanduser(), source), overrides, source=source)
    try:
        config = SummarizeConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError([(_loc(i["loc"]), _pydantic_message(i)) for i in error.errors()], source) from None
    if config.task_metrics and len(config.task_metrics) != len(config.task_names):
        problems = [("task_metrics", f"needs one metric per task name ({len(config.task_names)})")]
        raise ConfigError(problems, source)
    return config


# ----------------------------------------------------------------------------------------------
# Loading and overrides
# ----------------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike[str], overrides: Sequence[tuple[str, str]] = ()) -> BenchmarkConfig:
    """Read a YAML benchmark config, apply dotted overrides, and validate its schema.

    Args:
        path: The YAML file.
        overrides: ``(dotted key, YAML value)`` pairs such as ``("defaults.trainer_args.max_epochs", "1")``.

    Raises:
        FileNotFoundError: The file does not exist.
        ConfigError: YAML errors or schema problems (all of them, with key paths).
    """
    file = Path(path).expanduser()
    raw = apply_overrides(_read_yaml(file, os.fspath(path)), overrides, source=str(file))
    return parse_config(raw, source=str(file))


def _read_yaml(file: Path, shown: str) -> dict[str, Any]:
    if not file.is_file():
        where = "is a directory" if file.is_dir() else "does not exist"
        raise FileNotFoundError(f"benchmark config {shown!r} {where} (looked at {file.resolve()}).")
    try:
        raw = _load_yaml(file.read_text())
    except Exception as error:  # the loader's YAML errors
        raise ConfigError([("", f"not valid YAML: {error}")], source=str(file)) from None
    if not isinstance(raw, dict):
        raise ConfigError([("", f"the top level must be a mapping, got {type(raw).__name__}")], str(file))
    return raw


def _load_yaml(text: str) -> Any:
    """YAML as ``terratorch fit`` reads it (jsonargparse's loader: ``1e-6`` is a float)."""
    from terratorch.cli.config_compat import load_config_text

    return load_config_text(text)


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[tuple[str, str]], source: str = "<config>"
) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.0.c = value`` set (values parsed as YAML).

    Integer path parts index lists (``tasks.0.max_epochs``). Missing mappings are created, so a
    misspelled key is then reported by schema validation with suggestions.
    """
    data = copy.deepcopy(raw)
    problems = []
    for key, text in overrides:
        try:
            value = _load_yaml(text)
        except Exception:  # not YAML: keep the text
            value = text
        try:
            _set_path(data, key.split("."), value)
        except (KeyError, IndexError, TypeError) as error:
            problems.append((key, f"cannot apply override: {error}"))
    if problems:
        raise ConfigError(problems, source)
    return data


def _set_path(node: Any, parts: list[str], value: Any) -> None:
    *parents, last = parts
    for part in parents:
        if isinstance(node, list):
            node = node[_index(node, part)]
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise TypeError(f"{part!r} holds a {type(node).__name__}, not a mapping")
    if isinstance(node, list):
        node[_index(node, last)] = value
    else:
        node[last] = value


def _index(items: list[Any], part: str) -> int:
    if not part.lstrip("-").isdigit():
        raise KeyError(f"{part!r} is not a list index (the list has {len(items)} items)")
    index = int(part)
    if not -len(items) <= index < len(items):
        raise IndexError(f"index {index} is out of range for a list of {len(items)} items")
    return index


def parse_config(raw: Mapping[str, Any], source: str = "<config>") -> BenchmarkConfig:
    """Validate the schema of an already-loaded config mapping (all problems at once)."""
    config, problems = _parse(raw)
    if problems or config is None:
        raise ConfigError(_dedupe(problems), source)
    return config


def _parse(raw: Mapping[str, Any]) -> tuple[BenchmarkConfig | None, list[tuple[str, str]]]:
    """Schema problems of ``raw``, and the config without its unknown keys when that part is valid."""
    problems: list[tuple[str, str]] = []
    cleaned = _unknown_keys(raw, BenchmarkConfig, "", problems)
    try:
        return BenchmarkConfig.model_validate(cleaned), problems
    except ValidationError as error:
        for item in error.errors():
            problems.append((_loc(item["loc"]), _pydantic_message(item)))
        return None, problems


def load_plan(
    path: str | os.PathLike[str],
    overrides: Sequence[tuple[str, str]] = (),
    check_imports: bool = True,
    check_data: bool = False,
) -> BenchmarkPlan:
    """Load, validate and plan a config file, reporting schema and semantic problems together.

    Unknown keys do not hide the other problems: they are reported, dropped, and the remaining
    config is checked as well.

    Args:
        path: The YAML file.
        overrides: ``(dotted key, YAML value)`` pairs (see :func:`apply_overrides`).
        check_imports: Import user modules and validate the sections with the ``terratorch fit`` parser.
        check_data: Once the config itself is valid, also check every task's data folders, globs and
            files (:func:`data_problems`), so that a task's missing data is reported before another
            task trains. Off by default: a config can be validated (``--dry-run``) away from its data.

    Raises:
        FileNotFoundError: The file does not exist.
        ConfigError: Every problem found.
    """
    source = os.fspath(path)
    raw = apply_overrides(_read_yaml(Path(path).expanduser(), source), overrides, source=source)
    config, problems = _parse(raw)
    if config is not None:
        try:
            plan = build_plan(config, source=source, check_imports=check_imports)
        except ConfigError as error:
            problems += error.problems
        else:
            if not problems and check_data:
                problems = data_problems(plan)
            if not problems:
                return plan
    raise ConfigError(_dedupe(problems), source)


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for problem in problems:
        seen.setdefault(problem, None)
    return list(seen)


def _loc(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part) in ("str", "ClassSpec", "list[str]", "list[any]", "dict[str,any]"):
            continue  # union branch names add noise to the path
        else:
            text += f".{part}" if text else str(part)
    return text


def _pydantic_message(item: Mapping[str, Any]) -> str:
    if item["type"] == "missing":
        return "required key is missing"
    value = item.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return f"{item['msg']} (got {shown})"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes appearing in a field annotation (through Optional, unions and lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _is_list_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is list:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_annotation(a) for a in typing.get_args(annotation))
    return False


def _unknown_keys(node: Any, model: type[BaseModel], path: str, problems: list[tuple[str, str]]) -> Any:
    """Report keys of ``node`` that ``model`` does not define, with close matches; recurse.

    Returns a copy of ``node`` without those keys, so the rest of the config can still be checked.
    """
    if not isinstance(node, Mapping):
        return node
    fields = model.model_fields
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in fields:
            problems.append((here, _unknown_key_message(str(key), list(fields))))
            continue
        annotation = fields[key].annotation
        nested = _models_in(annotation)
        if nested and isinstance(value, list) and _is_list_annotation(annotation):
            value = [
                _unknown_keys(item, nested[0], f"{here}[{index}]", problems)
                for index, item in enumerate(value)
            ]
        elif nested and isinstance(value, Mapping):
            value = _unknown_keys(value, nested[0], here, problems)
        cleaned[key] = value
    return cleaned


def _suggest(key: str, valid: Sequence[str]) -> str:
    """``"Did you mean 'x'? Valid keys: a, b"`` for an unknown ``key``."""
    hint = did_you_mean(key, valid).lstrip()
    return f"{hint + ' ' if hint else ''}Valid keys: {', '.join(sorted(valid))}"


def _unknown_key_message(key: str, valid: Sequence[str]) -> str:
    return f"unknown key {key!r}. {_suggest(key, valid)}"


# ----------------------------------------------------------------------------------------------
# Plan: one resolved, validated unit of work per task
# ----------------------------------------------------------------------------------------------
@dataclass
class Route:
    """Where a sampled hyperparameter goes: ``target`` ∈ datamodule|task|model_args|trainer."""

    target: str
    keys: tuple[str, ...]


@dataclass
class TaskPlan:
    """Everything needed to train one task, with config values merged and checked.

    Attributes:
        index: Position in ``tasks`` (for key paths in messages).
        name: Task name (unique).
        task_type: One of :data:`terratorch.iterate.metrics_table.TASK_TYPES`.
        task_class: Class name in :mod:`terratorch.tasks`.
        metric: Metric optimised (current name, e.g. ``val/mIoU``).
        direction: ``"max"`` or ``"min"``.
        datamodule: ``{"class_path": ..., "init_args": {...}}``.
        task_kwargs: Constructor kwargs of the task, including ``model_factory`` and ``model_args``.
        trainer_args: ``lightning.Trainer`` kwargs.
        early_stop_patience: Epochs without improvement of ``metric`` before stopping (None: off).
        early_prune: Prune unpromising trials with Optuna's median pruner.
        space: The search parameters of this task (after ``optimization_except``).
        routes: Dotted parameter path → :class:`Route`.
        max_run_duration: Stop each training after this long (``DD:HH:MM:SS``; None: no limit).
    """

    index: int
    name: str
    task_type: str
    task_class: str
    metric: str
    direction: str
    datamodule: dict[str, Any]
    task_kwargs: dict[str, Any]
    trainer_args: dict[str, Any]
    early_stop_patience: int | None = None
    early_prune: bool = False
    space: list[space_mod.SearchParam] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    max_run_duration: str | None = None

    @property
    def backbone_label(self) -> str:
        """The backbone this task trains (registry name or class path), for its run tags and report rows."""
        return _backbone_name((self.task_kwargs.get("model_args") or {}).get("backbone")) or "unknown"

    def resolved(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The fully resolved training config for sampled ``values``: datamodule, task and trainer."""
        datamodule = copy.deepcopy(self.datamodule)
        task_kwargs = copy.deepcopy(self.task_kwargs)
        trainer_args = copy.deepcopy(self.trainer_args)
        targets = {
            "datamodule": datamodule.setdefault("init_args", {}),
            "task": task_kwargs,
            "model_args": task_kwargs.setdefault("model_args", {}),
            "trainer": trainer_args,
        }
        for path, value in values.items():
            route = self.routes[path]
            _set_nested(targets[route.target], route.keys, value)
        return {
            "datamodule": datamodule,
            "task": {"class": self.task_class, **task_kwargs},
            "trainer": trainer_args,
        }


def _set_nested(target: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


@dataclass
class BenchmarkPlan:
    """A validated config and its task plans."""

    config: BenchmarkConfig
    tasks: list[TaskPlan]
    source: str = "<config>"

    def describe(self) -> str:
        """The resolved plan as readable text (``--dry-run`` prints it)."""
        cfg = self.config
        lines = [
            f"experiment {cfg.experiment_name!r}  backbone {cfg.backbone_label()}  seed {cfg.seed}",
            f"storage {cfg.storage_uri}  n_trials {cfg.n_trials}  repetitions {cfg.run_repetitions}  "
            f"sampler {'TPE' if cfg.bayesian_search else 'random'}  config hash {cfg.config_hash()}",
        ]
        for task in self.tasks:
            lines.append(
                f"task {task.name!r} ({task.task_type}, {task.task_class}): optimise {task.metric} "
                f"({task.direction}); early_stop_patience={task.early_stop_patience} "
                f"early_prune={task.early_prune}"
            )
            lines.append(f"  datamodule {task.datamodule['class_path']}")
            factory = task.task_kwargs.get("model_factory")
            lines.append(
                f"  model_factory {factory}  model_args {_short(task.task_kwargs.get('model_args'))}"
            )
            lines.append(f"  trainer_args {_short(task.trainer_args)}")
            for param in task.space:
                route = task.routes[param.path]
                where = ".".join((route.target, *route.keys))
                if param.kind == "categorical":
                    what = f"one of {list(param.choices)}"
                else:
                    what = f"{param.kind} in [{param.low}, {param.high}]" + (" (log)" if param.log else "")
                lines.append(f"  search {param.path}: {what} -> {where}")
            if not task.space:
                lines.append("  search space: empty (every trial trains the same configuration)")
        return "\n".join(lines)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else in ``override`` wins."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_plan(
    config: BenchmarkConfig, source: str = "<config>", check_imports: bool = True
) -> BenchmarkPlan:
    """Resolve and validate every task of ``config``.

    Imports ``backbone_registration``/``custom_modules_path`` first (so registered backbones and
    factories are known), then checks each task. With ``check_imports=False`` only the checks that
    need no imports run (used by tests of the pure logic).

    Raises:
        ConfigError: Every problem found, with key paths.
    """
    problems: list[tuple[str, str]] = []
    if check_imports:
        from terratorch.iterate.tracking import check_storage

        problems += [("storage_uri", message) for message in check_storage(config.storage_uri)]
        if config.optuna_storage:
            problems += [("optuna_storage", message) for message in check_storage(config.optuna_storage)]
        _import_user_modules(config, problems, source)
    names = [t.name for t in config.tasks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("tasks", f"task name {name!r} is used more than once; names must be unique"))
    if not config.tasks:
        problems.append(("tasks", "at least one task is required"))
    for key in ("n_trials", "heartbeat_interval"):
        if getattr(config, key) < 1:
            problems.append((key, f"must be >= 1, got {getattr(config, key)}"))
    if config.run_repetitions < 0:
        problems.append(("run_repetitions", f"must be >= 0, got {config.run_repetitions}"))
    try:
        params = space_mod.parse_space(config.optimization_space)
    except space_mod.SpaceError as error:
        problems += [(f"optimization_space.{p}", m) for p, m in error.problems]
        params = []
    plans = []
    for index, task in enumerate(config.tasks):
        plan = _plan_task(config, index, task, params, problems, check_imports)
        if plan is not None:
            plans.append(plan)
    if problems:
        raise ConfigError(_dedupe(problems), source)
    return BenchmarkPlan(config=config, tasks=plans, source=source)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _import_user_modules(config: BenchmarkConfig, problems: list[tuple[str, str]], source: str = "") -> None:
    """Import ``custom_modules_path`` and ``backbone_registration`` (paths: working dir, else config dir)."""
    from terratorch.registry import import_custom_modules

    base = Path(source).parent if source and Path(source).is_file() else None
    for key in ("custom_modules_path", "backbone_registration"):
        for path in _as_list(getattr(config, key)):
            relative = base / path if base is not None and not Path(path).is_absolute() else None
            if relative is not None and not Path(path).exists() and relative.exists():
                path = str(relative)  # relative to the config file when not relative to the working dir
            try:
                import_custom_modules(path)
            except Exception as error:
                problems.append((key, f"{error}"))


def _plan_task(
    config: BenchmarkConfig,
    index: int,
    task: TaskSpec,
    params: list[space_mod.SearchParam],
    problems: list[tuple[str, str]],
    check_imports: bool,
) -> TaskPlan | None:
    where = f"tasks[{index}]"
    if task.type not in TASK_TYPES:
        hint = did_you_mean(task.type, TASK_TYPES, n=1)
        problems.append(
            (f"{where}.type", f"unknown task type {task.type!r}.{hint} Valid: {sorted(TASK_TYPES)}")
        )
        return None
    info = TASK_TYPES[task.type]
    metric = _check_metric(task, where, problems)
    direction = _check_direction(task, info.direction, where, problems)
    task_kwargs = _task_kwargs(config, task)
    trainer_args = deep_merge(config.defaults.trainer_args, task.trainer_args)
    if task.max_epochs is not None:
        trainer_args["max_epochs"] = task.max_epochs
    if task.early_stop_patience is not None and task.early_stop_patience < 1:
        problems.append((f"{where}.early_stop_patience", f"must be >= 1, got {task.early_stop_patience}"))
    if task.max_run_duration is not None and not _DURATION.fullmatch(task.max_run_duration):
        problems.append(
            (
                f"{where}.max_run_duration",
                f"must be DD:HH:MM:SS (e.g. 00:12:00:00), got {task.max_run_duration!r}",
            )
        )
    task_space = _except(params, task.optimization_except)
    if not task_space and config.n_trials > 1:
        problems.append(
            (
                where,
                f"task {task.name!r} has an empty search space but n_trials is {config.n_trials}: "
                "every trial "
                "would train the same configuration. Add optimization_space entries or set n_trials: 1.",
            )
        )
    plan = TaskPlan(
        index=index,
        name=task.name,
        task_type=task.type,
        task_class=info.task_class,
        metric=metric or info.metric,
        direction=direction or info.direction,
        datamodule=task.datamodule.model_dump(exclude_defaults=True),
        task_kwargs=task_kwargs,
        trainer_args=trainer_args,
        early_stop_patience=task.early_stop_patience,
        early_prune=task.early_prune,
        space=task_space,
        max_run_duration=task.max_run_duration,
    )
    plan.datamodule.setdefault("init_args", {})
    if check_imports:
        _check_imports(plan, where, problems)
    else:
        plan.routes = {p.path: _default_route(p.path) for p in task_space}
    return plan


_DURATION = re.compile(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}")


def _except(params: list[space_mod.SearchParam], names: Sequence[str]) -> list[space_mod.SearchParam]:
    """``params`` without those named in ``optimization_except``.

    A name matches a full dotted path (``optimizer_hparams.weight_decay``) or any one of its parts
    (``weight_decay``, or ``model_args`` for everything below it), as in the reference tool; names
    that match nothing are ignored (a shared exception list may name keys some spaces lack).
    """
    skip = set(names)
    kept = []
    for param in params:
        parts = param.path.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if skip & (set(parts) | prefixes):
            continue
        kept.append(param)
    return kept


def _check_metric(task: TaskSpec, where: str, problems: list[tuple[str, str]]) -> str | None:
    if task.metric is None:
        return None
    try:
        return resolve_metric(task.metric, task.type)  # legacy names warn (DeprecationWarning)
    except ValueError as error:
        problems.append((f"{where}.metric", str(error)))
        return None


def _check_direction(task: TaskSpec, default: str, where: str, problems: list[tuple[str, str]]) -> str | None:
    if task.direction is None:
        return default
    if task.direction in DIRECTIONS:
        return task.direction
    guess = next((d for d in DIRECTIONS if str(task.direction).lower().startswith(d)), None)
    hint = f" Did you mean {guess!r}?" if guess else ""
    problems.append((f"{where}.direction", f"{task.direction!r} is not valid; use 'max' or 'min'.{hint}"))
    return None


def _task_kwargs(config: BenchmarkConfig, task: TaskSpec) -> dict[str, Any]:
    kwargs = deep_merge(config.defaults.terratorch_task, task.terratorch_task or {})
    for key in ("loss", "lr", "freeze_backbone", "ignore_index", "class_names"):
        value = getattr(task, key)
        if value is not None:
            kwargs[key] = copy.deepcopy(value)
    if task.model_factory:
        kwargs["model_factory"] = task.model_factory
    kwargs.setdefault("model_factory", "EncoderDecoderFactory")
    kwargs["model_args"] = _model_args(config, task, dict(kwargs.get("model_args") or {}))
    return kwargs


def _model_args(config: BenchmarkConfig, task: TaskSpec, model_args: dict[str, Any]) -> dict[str, Any]:
    backbone_args = deep_merge(config.backbone.backbone_args if config.backbone else {}, task.backbone_args)
    if "backbone" not in model_args and config.backbone and config.backbone.backbone is not None:
        backbone = config.backbone.backbone
        model_args["backbone"] = backbone.model_dump() if isinstance(backbone, ClassSpec) else backbone
    backbone = model_args.get("backbone")
    if isinstance(backbone, Mapping) and "class_path" in backbone:
        # An nn.Module given by class path: backbone_args are its constructor arguments.
        spec = dict(backbone)
        spec["init_args"] = deep_merge(backbone_args, spec.get("init_args") or {})
        model_args["backbone"] = spec
    else:
        for key, value in backbone_args.items():
            model_args.setdefault(f"backbone_{key}", copy.deepcopy(value))
    if task.decoder is not None:
        model_args["decoder"] = task.decoder
    for prefix, extra in (("decoder_", task.decoder_args), ("head_", task.head_args)):
        for key, value in extra.items():
            model_args.setdefault(f"{prefix}{key}", copy.deepcopy(value))
    if task.num_classes is not None:
        model_args["num_classes"] = task.num_classes
    if task.bands is not None:
        model_args.setdefault("bands", list(task.bands))  # moved to the right kwarg in _route_bands
    return model_args


def _route_bands(model_args: dict[str, Any], factory_takes_bands: bool) -> None:
    """Give ``bands`` to the factory if it takes them, else to our backbone, else as timm ``in_chans``."""
    if "bands" not in model_args or factory_takes_bands:
        return
    bands = model_args.pop("bands")
    backbone = model_args.get("backbone")
    if isinstance(backbone, str):
        from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

        name = backbone.removeprefix("terratorch_")
        if name in TERRATORCH_BACKBONE_REGISTRY:
            model_args.setdefault("backbone_bands", bands)
        else:
            model_args.setdefault("backbone_in_chans", len(bands))


def _default_route(path: str) -> Route:
    head, *rest = path.split(".")
    if path == "batch_size":
        return Route("datamodule", ("batch_size",))
    if head in ("trainer_args", "model_args", "datamodule") and rest:
        target = {"trainer_args": "trainer", "model_args": "model_args", "datamodule": "datamodule"}[head]
        return Route(target, tuple(rest))
    return Route("task", tuple(path.split(".")))


def _check_imports(plan: TaskPlan, where: str, problems: list[tuple[str, str]]) -> None:
    """Validate the task's sections and every search-space key with the CLI parser of ``terratorch fit``."""
    from terratorch.iterate import lightning_bridge

    if not _check_factory(plan, where, problems):
        return
    _check_backbone(plan, where, problems)
    for param in plan.space:
        plan.routes[param.path] = _default_route(param.path)
    by_section = lightning_bridge.validate_sections(plan.resolved({}), where)
    problems.extend(problem for found in by_section.values() for problem in found)
    for param in plan.space:
        route = plan.routes[param.path]
        section = {"datamodule": "data", "trainer": "trainer"}.get(route.target, "model")
        if by_section[section]:
            continue  # the section itself is invalid: that is already reported
        resolved = plan.resolved({param.path: _representative(param)})
        config = lightning_bridge.cli_config(resolved)
        message = lightning_bridge.validate_section(section, config[section])
        if message is not None and route.target == "task" and _factory_takes(plan, route.keys[0]):
            # Kept for configs of earlier versions of this tool; the reference spelling is model_args.<key>.
            plan.routes[param.path] = Route("model_args", route.keys)
            warnings.warn(
                f"optimization_space.{param.path} is a model factory argument: write it as "
                f"model_args.{param.path} (the reference spelling); top-level factory keys are deprecated.",
                DeprecationWarning,
                stacklevel=2,
            )
            continue
        if message is not None:
            _, text = lightning_bridge.split_message(message, section, where)
            problems.append((f"optimization_space.{param.path}", f"{text} (task {plan.name!r}){_SPACE_HINT}"))


_SPACE_HINT = (
    ". Search-space keys are task arguments (lr, optimizer_hparams.<name>, ...), model_args.<name>, "
    "batch_size, trainer_args.<name> or datamodule.<name>."
)


def _factory_takes(plan: TaskPlan, key: str) -> bool:
    """Whether the task's model factory names ``key`` among its ``build_model`` arguments (routing only)."""
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    try:
        build = MODEL_FACTORY_REGISTRY[plan.task_kwargs.get("model_factory")].build_model
    except Exception:  # unknown factories are reported by _check_factory
        return False
    return key in inspect.signature(build).parameters


def _representative(param: space_mod.SearchParam) -> Any:
    """A value of ``param`` to validate its key with (its first choice, or its lower bound)."""
    if param.kind == "categorical":
        return param.choices[0]
    return int(param.low) if param.kind == "int" else float(param.low)


def _check_factory(plan: TaskPlan, where: str, problems: list[tuple[str, str]]) -> bool:
    """The model factory is registered (its arguments are not validated, as in ``terratorch fit``)."""
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    name = plan.task_kwargs.get("model_factory")
    if not isinstance(name, str):
        problems.append((f"{where}.model_factory", f"must be a registered factory name, got {name!r}"))
        return False
    try:
        factory = MODEL_FACTORY_REGISTRY[name]
    except Exception as error:
        problems.append((f"{where}.model_factory", str(error)))
        return False
    build = getattr(factory, "build_model", None)
    if build is not None:
        takes_bands = "bands" in inspect.signature(build).parameters
        _route_bands(plan.task_kwargs.setdefault("model_args", {}), takes_bands)
    return True


def _import_object(path: str) -> Any:
    """Import ``pkg.mod.Name`` (a backbone given by class path)."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"{path!r} is not a dotted import path (pkg.module.Class)")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        raise ImportError(f"module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _check_backbone(plan: TaskPlan, where: str, problems: list[tuple[str, str]]) -> None:
    backbone = plan.task_kwargs.get("model_args", {}).get("backbone")
    if backbone is None or not isinstance(backbone, str | Mapping):
        return
    if isinstance(backbone, Mapping):
        if "class_path" not in backbone:
            problems.append((f"{where}.backbone", "a backbone mapping needs 'class_path' (and 'init_args')"))
            return
        try:
            _import_object(str(backbone["class_path"]))
        except Exception as error:
            problems.append(("backbone.backbone.class_path", f"cannot import backbone class: {error}"))
        return
    overlay = plan.task_kwargs["model_args"].get("backbone_pretrained_cfg_overlay") or {}
    weights = overlay.get("file") if isinstance(overlay, Mapping) else None
    if weights and not Path(str(weights)).expanduser().exists():
        looked = Path(str(weights)).expanduser().resolve()
        problems.append(
            (
                f"{where}.model_args.backbone_pretrained_cfg_overlay.file",
                f"weights file {weights!r} does not exist (looked at {looked})",
            )
        )
    if plan.task_kwargs.get("model_factory") not in ("EncoderDecoderFactory", "PrithviModelFactory"):
        return  # other factories interpret 'backbone' themselves (e.g. smp encoder names)
    from terratorch.registry import BACKBONE_REGISTRY

    try:
        BACKBONE_REGISTRY.find_registry(backbone)
    except Exception as error:
        problems.append(("backbone.backbone", str(error)))


# ----------------------------------------------------------------------------------------------
# Data: folders, globs and files of every task, checked before anything trains
# ----------------------------------------------------------------------------------------------
#: How each generic datamodule lays out its files: ``pixel`` (images and label rasters), ``folders``
#: (one folder per class) or ``csv`` (images and a CSV of targets). Other datamodules are not checked.
_DATA_LAYOUTS = {
    "GenericNonGeoSegmentationDataModule": "pixel",
    "GenericNonGeoPixelwiseRegressionDataModule": "pixel",
    "GenericNonGeoClassificationDataModule": "folders",
    "GenericNonGeoMultiLabelClassificationDataModule": "csv",
    "GenericNonGeoScalarRegressionDataModule": "csv",
}


def used_splits(config: BenchmarkConfig) -> list[str]:
    """Splits a benchmark reads: train and val (HPO), plus test when repetitions or ``test_models`` test."""
    return ["train", "val"] + (["test"] if config.run_repetitions > 0 or config.test_models else [])


def data_problems(plan: BenchmarkPlan) -> list[tuple[str, str]]:
    """Every missing data folder, empty glob and missing file of the plan's tasks, with key paths.

    Only the generic datamodules are checked (their layouts are known), only for
    :func:`used_splits`, and only with directory listings and ``stat`` calls (no file is opened).
    Paths below a ``demo_data`` root that is not generated yet are skipped: the run generates them.

    Returns:
        ``(key path, message)`` pairs such as ``("tasks[1].datamodule.init_args.train_data_root",
        "directory 'x' does not exist (looked at /abs/x)")``.
    """
    pending = [
        Path(spec.root).expanduser() for spec in plan.config.demo_data if not _has_entries(Path(spec.root))
    ]
    splits = used_splits(plan.config)
    problems: list[tuple[str, str]] = []
    for task in plan.tasks:
        problems += _task_data_problems(task, splits, pending)
    return problems


def _has_entries(path: Path) -> bool:
    path = path.expanduser()
    return path.is_dir() and any(path.iterdir())


def _task_data_problems(
    task: TaskPlan, splits: Sequence[str], pending: Sequence[Path]
) -> list[tuple[str, str]]:
    layout = _DATA_LAYOUTS.get(str(task.datamodule.get("class_path", "")).rsplit(".", 1)[-1])
    if layout is None:
        return []
    args = task.datamodule.get("init_args") or {}
    where = f"tasks[{task.index}].datamodule.init_args"
    found: list[tuple[str, str]] = []

    def pending_path(value: Any) -> bool:
        path = Path(str(value)).expanduser().absolute()
        return any(path == root.absolute() or root.absolute() in path.parents for root in pending)

    def need(key: str, kind: str) -> Path | None:
        """The existing path of ``args[key]`` (a directory or a file), else None with a problem noted."""
        value = args.get(key)
        if value is None or pending_path(value):
            return None
        path = Path(str(value)).expanduser()
        ok = path.is_dir() if kind == "directory" else path.is_file()
        if not ok:
            what = "does not exist" if not path.exists() else f"is not a {kind}"
            found.append((f"{where}.{key}", f"{kind} {str(value)!r} {what} (looked at {path.absolute()})"))
            return None
        return path

    img_grep = str(args.get("img_grep") or args.get("image_grep") or "*")
    label_grep = str(args.get("label_grep") or "*")
    globbed: set[tuple[str, Path | None]] = set()  # a folder shared by several splits is listed once
    for split in splits:
        root_key = f"{split}_data_root"
        if args.get(root_key) is None:
            if split == "train":
                found.append(
                    (f"{where}.{root_key}", "required key is missing: the folder of the training images")
                )
            elif split == "test":
                found.append(
                    (
                        f"{where}.{root_key}",
                        "required key is missing: run_repetitions/test_models test each "
                        "best configuration on the test split",
                    )
                )
            continue
        root = need(root_key, "directory")
        if root is not None:
            pattern = f"*/{img_grep}" if layout == "folders" else img_grep
            if (pattern, root) not in globbed and not _glob_matches(root, pattern):
                inside = " (inside its class folders)" if layout == "folders" else ""
                found.append(
                    (f"{where}.img_grep", f"{img_grep!r} matches no file in {root_key} {str(root)!r}{inside}")
                )
            globbed.add((pattern, root))
        need(f"{split}_split", "file")
        if layout == "pixel":
            label_key = f"{split}_label_data_root"
            labels = need(label_key, "directory") if args.get(label_key) is not None else root
            if (
                labels is not None
                and (label_grep, labels) not in globbed
                and not _glob_matches(labels, label_grep)
            ):
                source = label_key if args.get(label_key) is not None else root_key
                found.append(
                    (f"{where}.label_grep", f"{label_grep!r} matches no file in {source} {str(labels)!r}")
                )
            globbed.add((label_grep, labels))
        elif layout == "csv":
            label_key = f"{split}_label_file" if args.get(f"{split}_label_file") is not None else "label_file"
            if args.get(label_key) is None:
                found.append(
                    (
                        f"{where}.label_file",
                        f"required key is missing: the CSV of targets ({split}_label_file or label_file)",
                    )
                )
            else:
                need(label_key, "file")
    for key in ("means", "stds"):
        if isinstance(args.get(key), str):
            need(key, "file")
    return list(dict.fromkeys(found))


def _glob_matches(root: Path, pattern: str) -> bool:
    """True when ``pattern`` matches at least one file under ``root`` (stops at the first)."""
    return any(not path.is_dir() for path in root.glob(pattern))
