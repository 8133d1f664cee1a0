"""Convert LightningCLI fine-tuning configs into one backbone-centric benchmark config.

``terratorch iterate --build_iterate_config --input DIR|FILE --output bench.yaml`` reads fine-tuning
YAMLs (``model: {class_path: SemanticSegmentationTask, init_args: {model_args: ...}}``, ``data``,
``trainer``, ``optimizer``, ``lr_scheduler``, ``seed_everything``, ``custom_modules_path``), one
task per file, and writes a benchmark config (API.md §8) that the benchmark tool validates and runs:

* the backbone and the backbone arguments every file shares go to the top-level ``backbone`` key;
  per-file differences stay in the task's ``backbone_args``;
* ``decoder_*``/``head_*`` model arguments become ``decoder_args``/``head_args``; other model
  arguments (``necks``, ``rescale``, ...) and task arguments without a shorthand go to the task's
  ``terratorch_task``; the optimizer and scheduler sections become ``optimizer``/``scheduler`` names
  plus their hyperparameters, their ``lr`` the task's ``lr``;
* each task gets the metric and direction of its task type (see
  :mod:`terratorch.iterate.metrics_table`), unless the file's checkpoint/early-stopping callback
  monitors a metric that task type logs, which is then kept with its ``mode``;
* ``trainer.max_epochs`` and an ``EarlyStopping`` patience become ``max_epochs`` and
  ``early_stop_patience``; loggers, callbacks and checkpoint settings are dropped, because the
  benchmark tool manages them (each dropped item is listed in the output file's header).

A search space over the learning rate is added so the config runs HPO as written. Every problem in
every file is reported at once and nothing is written unless the whole conversion succeeds.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from terratorch.iterate.metrics_table import TASK_TYPES, default_metric, resolve_metric

YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_SPACE: dict[str, Any] = {"lr": {"min": 1.0e-5, "max": 1.0e-3, "type": "real", "log": True}}
# Task init args with a shorthand key in the benchmark config's task entry.
_TASK_SHORTHANDS = ("loss", "lr", "ignore_index", "freeze_backbone", "class_names")
# Top-level LightningCLI keys that the conversion reads.
_TOP_LEVEL_KEYS = {
    "model",
    "data",
    "trainer",
    "optimizer",
    "lr_scheduler",
    "seed_everything",
    "custom_modules_path",
}
# Trainer keys the benchmark tool sets itself.
_MANAGED_TRAINER_KEYS = ("logger", "callbacks", "enable_checkpointing", "default_root_dir", "max_epochs")


class ConversionError(ValueError):
    """One or more fine-tuning configs could not be converted.

    Attributes:
        problems: ``(file, message)`` pairs.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [f"cannot build a benchmark config ({len(self.problems)} problem(s)):"]
        lines += [f"  - {where}: {message}" for where, message in self.problems]
        super().__init__("\n".join(lines))


def _task_types_by_class() -> dict[str, str]:
    return {info.task_class: name for name, info in TASK_TYPES.items()}


def find_config_files(input_path: Path, exclude: Path | None = None) -> list[Path]:
    """The YAML files to convert: ``input_path`` itself, or the ``*.yaml``/``*.yml`` files directly in it.

    Raises:
        FileNotFoundError: the path does not exist, or the directory holds no YAML files.
    """
    path = Path(input_path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"--input {os.fspath(input_path)!r} does not exist (looked at {path.resolve()})."
        )
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file() and p.resolve() != skip
    )
    if not files:
        raise FileNotFoundError(f"No fine-tuning YAML files (*.yaml, *.yml) in directory {path.resolve()}.")
    return files


def _load_yaml(path: Path, problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problems.append((str(path), f"not valid YAML{where}: {getattr(error, 'problem', None) or error}"))
        return None
    except OSError as error:
        problems.append((str(path), f"cannot be read: {error}"))
        return None
    if not isinstance(data, dict):
        problems.append((str(path), f"expected a LightningCLI config mapping, got {type(data).__name__}"))
        return None
    return data


def _class_spec(node: Any, key: str, path: Path, problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    if not isinstance(node, Mapping) or not node.get("class_path"):
        problems.append((str(path), f"'{key}' needs a 'class_path' (and 'init_args'), got {node!r}"))
        return None
    init_args = node.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        problems.append((str(path), f"'{key}.init_args' must be a mapping, got {type(init_args).__name__}"))
        return None
    return {"class_path": str(node["class_path"]), "init_args": dict(init_args)}


def _task_type(class_path: str, path: Path, problems: list[tuple[str, str]]) -> str | None:
    from terratorch.choices import did_you_mean

    by_class = _task_types_by_class()
    name = class_path.rsplit(".", 1)[-1]
    if name in by_class:
        return by_class[name]
    suggestion = did_you_mean(name, by_class)
    problems.append(
        (
            str(path),
            f"model.class_path {class_path!r} is not a task the benchmark tool can run.{suggestion} "
            f"Supported: {sorted(by_class)}.",
        )
    )
    return None


def _callbacks(trainer: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = trainer.get("callbacks") or []
    items = found if isinstance(found, list) else [found]
    return [
        {"name": str(c.get("class_path", "")).rsplit(".", 1)[-1], "init_args": dict(c.get("init_args") or {})}
        for c in items
        if isinstance(c, Mapping)
    ]


def _metric_for(task_type: str, trainer: Mapping[str, Any], notes: list[str], name: str) -> tuple[str, str]:
    """The task type's default metric, or the metric a checkpoint/early-stopping callback monitors."""
    metric, direction = default_metric(task_type)
    for callback in _callbacks(trainer):
        monitor = callback["init_args"].get("monitor")
        if not monitor or str(monitor).endswith("/loss"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                resolved = resolve_metric(str(monitor), task_type)
        except ValueError:
            notes.append(
                f"{name}: monitored metric {monitor!r} is not logged by {task_type} tasks; using {metric}"
            )
            continue
        mode = callback["init_args"].get("mode", direction)
        return resolved, mode if mode in ("max", "min") else direction
    return metric, direction


def _split_model_args(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """Sort model_args into backbone/backbone_args/decoder/decoder_args/head_args/num_classes/bands/rest."""
    parts: dict[str, Any] = {"backbone_args": {}, "decoder_args": {}, "head_args": {}, "rest": {}}
    for key, value in model_args.items():
        if key in ("backbone", "decoder", "num_classes", "bands"):
            parts[key] = value
        elif key.startswith("backbone_"):
            parts["backbone_args"][key.removeprefix("backbone_")] = value
        elif key.startswith("decoder_"):
            parts["decoder_args"][key.removeprefix("decoder_")] = value
        elif key.startswith("head_"):
            parts["head_args"][key.removeprefix("head_")] = value
        else:
            parts["rest"][key] = value
    return parts


def _optimizer_section(
    raw: Mapping[str, Any], key: str, name_key: str, task_kwargs: dict[str, Any], entry: dict[str, Any]
) -> None:
    """Map a top-level ``optimizer``/``lr_scheduler`` section onto the task's name + hparams."""
    section = raw.get(key)
    if not isinstance(section, Mapping) or not section.get("class_path"):
        return
    task_kwargs[name_key] = str(section["class_path"]).rsplit(".", 1)[-1]
    hparams = dict(section.get("init_args") or {})
    if name_key == "optimizer" and "lr" in hparams:
        entry.setdefault("lr", hparams.pop("lr"))
    if hparams:
        task_kwargs[f"{name_key}_hparams"] = {**hparams, **task_kwargs.get(f"{name_key}_hparams", {})}


def _trainer_entry(trainer: Mapping[str, Any], entry: dict[str, Any], notes: list[str], name: str) -> None:
    if trainer.get("max_epochs") is not None:
        entry["max_epochs"] = int(trainer["max_epochs"])
    for callback in _callbacks(trainer):
        if callback["name"] == "EarlyStopping" and callback["init_args"].get("patience") is not None:
            entry["early_stop_patience"] = int(callback["init_args"]["patience"])
        else:
            notes.append(
                f"{name}: dropped trainer callback {callback['name'] or '?'} (the tool adds its own)"
            )
    for key in ("logger", "enable_checkpointing", "default_root_dir"):
        if key in trainer:
            notes.append(f"{name}: dropped trainer.{key} (the tool logs to MLflow and manages checkpoints)")
    kept = {k: v for k, v in trainer.items() if k not in _MANAGED_TRAINER_KEYS}
    if kept:
        entry["trainer_args"] = kept


def convert_file(path: Path, raw: Mapping[str, Any], name: str, notes: list[str]) -> dict[str, Any]:
    """Convert one LightningCLI config into a benchmark task entry.

    The entry also carries ``_backbone``/``_backbone_args``/``_seed``, which
    :func:`build_iterate_config` moves to the top level. Conversion notes (dropped keys) are
    appended to ``notes``.

    Raises:
        ConversionError: the file lacks ``model``/``data`` class specs or names an unsupported task.
    """
    problems: list[tuple[str, str]] = []
    model = _class_spec(raw.get("model"), "model", path, problems)
    data = _class_spec(raw.get("data"), "data", path, problems)
    task_type = _task_type(model["class_path"], path, problems) if model else None
    trainer = raw.get("trainer") or {}
    if not isinstance(trainer, Mapping):
        problems.append((str(path), f"'trainer' must be a mapping, got {type(trainer).__name__}"))
    if problems:
        raise ConversionError(problems)
    assert model is not None and data is not None and task_type is not None
    init_args = dict(model["init_args"])
    model_args = init_args.pop("model_args", None) or {}
    if not isinstance(model_args, Mapping):
        raise ConversionError([(str(path), "model.init_args.model_args must be a mapping")])
    parts = _split_model_args(model_args)
    metric, direction = _metric_for(task_type, trainer, notes, name)
    entry: dict[str, Any] = {"name": name, "type": task_type, "metric": metric, "direction": direction}
    entry["datamodule"] = data
    if "model_factory" in init_args:
        entry["model_factory"] = init_args.pop("model_factory")
    for key in ("decoder", "num_classes", "bands"):
        if key in parts:
            entry[key] = parts[key]
    for key in ("decoder_args", "head_args"):
        if parts[key]:
            entry[key] = parts[key]
    for key in _TASK_SHORTHANDS:
        if key in init_args:
            entry[key] = init_args.pop(key)
    task_kwargs: dict[str, Any] = dict(init_args)
    _optimizer_section(raw, "optimizer", "optimizer", task_kwargs, entry)
    _optimizer_section(raw, "lr_scheduler", "scheduler", task_kwargs, entry)
    if parts["rest"]:
        task_kwargs["model_args"] = parts["rest"]
    if task_kwargs:
        entry["terratorch_task"] = task_kwargs
    _trainer_entry(trainer, entry, notes, name)
    entry["_backbone"] = parts.get("backbone")
    entry["_backbone_args"] = parts["backbone_args"]
    seed = raw.get("seed_everything")
    entry["_seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    entry["_custom_modules"] = _as_list(raw.get("custom_modules_path"))
    for key in sorted(set(raw) - _TOP_LEVEL_KEYS):
        notes.append(f"{name}: ignored top-level key {key!r} (not used by benchmarks)")
    return entry


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def _shared_backbone_args(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Backbone arguments with the same value in every task."""
    first = entries[0]["_backbone_args"]
    return {
        k: v
        for k, v in first.items()
        if all(k in e["_backbone_args"] and e["_backbone_args"][k] == v for e in entries[1:])
    }


def _choose_backbone(entries: Sequence[dict[str, Any]], override: Any, files: Sequence[Path]) -> Any:
    if override is not None:
        return override
    names = [e["_backbone"] for e in entries]
    missing = [str(f) for f, n in zip(files, names) if n is None]
    if missing:
        raise ConversionError(
            [
                (f, "model.init_args.model_args has no 'backbone'; pass backbone=... to choose one")
                for f in missing
            ]
        )
    distinct = Counter(yaml.safe_dump(n) for n in names)
    if len(distinct) > 1:
        problems = [(str(f), f"uses backbone {n!r}") for f, n in zip(files, names)]
        problems.append(
            ("input", "the files use different backbones; a benchmark config tests one backbone. "
                      "Convert them separately or pass backbone=... to use one for all tasks")
        )  # fmt: skip
        raise ConversionError(problems)
    return names[0]


def _unique_name(stem: str, taken: set[str]) -> str:
    name, index = stem, 2
    while name in taken:
        name, index = f"{stem}_{index}", index + 1
    taken.add(name)
    return name


def build_iterate_config(
    input: Path,
    output: Path,
    *,
    experiment_name: str | None = None,
    backbone: Any = None,
    storage_uri: str = "iterate_storage",
    n_trials: int = 10,
    run_repetitions: int = 5,
    optimization_space: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert fine-tuning YAMLs (one file, or every YAML directly in a directory) into a benchmark config.

    Args:
        input: A LightningCLI fine-tuning YAML, or a directory of them (one task per file; the
            file stem becomes the task name).
        output: Where to write the benchmark YAML (parent folders are created).
        experiment_name: Defaults to the input directory's (or file's) name.
        backbone: Use this backbone (registry name or ``{class_path, init_args}``) for every task
            instead of the files' own; required when the files name different backbones.
        storage_uri: Benchmark storage directory or tracking URI.
        n_trials: HPO trials per task.
        run_repetitions: Seeded repetitions of each task's best configuration.
        optimization_space: Search space; defaults to a log-uniform ``lr`` range.
        overwrite: Replace ``output`` if it exists (otherwise that is an error: nothing is deleted
            unless asked).

    Returns:
        ``output``.

    Raises:
        FileNotFoundError: ``input`` does not exist or holds no YAML files.
        FileExistsError: ``output`` exists and ``overwrite`` is False.
        ConversionError: any file is unparseable or not a supported fine-tuning config (all
            problems of all files at once).
    """
    out = Path(output).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"--output {out} already exists; remove it or choose another file.")
    files = find_config_files(Path(input), exclude=out)
    notes: list[str] = []
    entries = _convert_all(files, notes)
    chosen = _choose_backbone(entries, backbone, files)
    shared = _shared_backbone_args(entries) if backbone is None else {}
    seed = _seed(entries)
    custom_modules = list(dict.fromkeys(m for e in entries for m in e.pop("_custom_modules")))
    tasks = []
    for entry in entries:
        entry.pop("_seed")
        own = {k: v for k, v in entry.pop("_backbone_args").items() if k not in shared}
        entry.pop("_backbone")
        if own:
            entry["backbone_args"] = own
        tasks.append(entry)
    source = Path(input).expanduser()
    config = {
        "experiment_name": experiment_name or (source.stem if source.is_file() else source.resolve().name),
        "storage_uri": storage_uri,
        "seed": seed,
        "n_trials": int(n_trials),
        "run_repetitions": int(run_repetitions),
        **({"custom_modules_path": custom_modules} if custom_modules else {}),
        "backbone": {"backbone": chosen, **({"backbone_args": shared} if shared else {})},
        "optimization_space": dict(optimization_space or DEFAULT_SPACE),
        "tasks": tasks,
    }
    _validate(config, files)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_header(files, notes) + yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
    return out


def _convert_all(files: Sequence[Path], notes: list[str]) -> list[dict[str, Any]]:
    problems: list[tuple[str, str]] = []
    entries: list[dict[str, Any]] = []
    taken: set[str] = set()
    for path in files:
        raw = _load_yaml(path, problems)
        if raw is None:
            continue
        try:
            entry = convert_file(path, raw, _unique_name(path.stem, taken), notes)
        except ConversionError as error:
            problems.extend(error.problems)
            continue
        entries.append(entry)
    if problems:
        raise ConversionError(problems)
    return entries


def _seed(entries: Sequence[dict[str, Any]]) -> int:
    """The first file's ``seed_everything`` becomes the master seed (42 if none sets one)."""
    return next((e["_seed"] for e in entries if e["_seed"] is not None), 42)


def _validate(config: Mapping[str, Any], files: Sequence[Path]) -> None:
    """Check the result against the benchmark schema (keys and types; no imports)."""
    from terratorch.iterate.config import ConfigError, parse_config

    try:
        parse_config(config, source="<converted config>")
    except ConfigError as error:
        where = ", ".join(str(f) for f in files)
        raise ConversionError([(where, f"{path}: {message}") for path, message in error.problems]) from None


def _header(files: Sequence[Path], notes: Sequence[str]) -> str:
    lines = [
        "# Benchmark config built by `terratorch iterate --build_iterate_config` from:",
        *(f"#   {f}" for f in files),
        "# Review the optimization_space, n_trials and run_repetitions, then validate and run:",
        "#   terratorch iterate --config <this file> --dry-run",
        "#   terratorch iterate --config <this file>",
    ]
    if notes:
        lines.append("# Conversion notes:")
        lines += [f"#   - {note}" for note in notes]
    return "\n".join(lines) + "\n"
