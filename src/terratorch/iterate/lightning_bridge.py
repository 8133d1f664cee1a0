"""The one instantiation path of the benchmark tool: the LightningCLI machinery of ``terratorch fit``.

A resolved task config (see :meth:`terratorch.iterate.config.TaskPlan.resolved`) is turned into the
LightningCLI layout (``model``, ``data``, ``trainer``, ``seed_everything``) by :func:`cli_config`.
:func:`validate` parses that layout with a LightningCLI argument parser (same class registry, short
class names, YAML number handling and error messages as ``terratorch fit``) without building
anything, and :func:`build` hands it to :func:`terratorch.cli_tools.build_lightning_cli` to build the
task, datamodule and trainer. Numbers (``1e-6``), class paths and constructor defaults therefore
resolve exactly as in a fine-tuning config.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from terratorch.choices import close_matches

__all__ = [
    "SECTION_KEYS",
    "build",
    "build_task",
    "cli_config",
    "parse_section",
    "split_message",
    "task_class_path",
    "validate",
    "validate_section",
    "validate_sections",
]

# LightningCLI key of each section -> the benchmark-config key it comes from (for error key paths).
SECTION_KEYS = {"model": "terratorch_task", "data": "datamodule", "trainer": "trainer_args"}


def task_class_path(name: str) -> str:
    """``SemanticSegmentationTask`` -> ``terratorch.tasks.SemanticSegmentationTask`` (dotted paths kept)."""
    return name if "." in name else f"terratorch.tasks.{name}"


def cli_config(resolved: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """The LightningCLI config of a resolved task: ``{model, data, trainer[, seed_everything]}``."""
    task = copy.deepcopy(dict(resolved["task"]))
    class_name = task.pop("class")
    config: dict[str, Any] = {
        "model": {"class_path": task_class_path(class_name), "init_args": task},
        "data": copy.deepcopy(dict(resolved["datamodule"])),
        "trainer": copy.deepcopy(dict(resolved.get("trainer") or {})),
    }
    config["data"].setdefault("init_args", {})
    if seed is not None:
        config["seed_everything"] = seed
    return config


@functools.lru_cache(maxsize=4)
def _parser(sections: tuple[str, ...]) -> Any:
    """A LightningCLI argument parser for ``sections`` (built once: class introspection is slow)."""
    from lightning import LightningDataModule, LightningModule, Trainer
    from lightning.pytorch.cli import LightningArgumentParser

    from terratorch.cli.config_compat import register_loader
    from terratorch.cli_tools import import_custom_modules_from_args

    import_custom_modules_from_args([])
    _import_cli_classes()
    parser = LightningArgumentParser(exit_on_error=False, parser_mode=register_loader())
    if "model" in sections:
        parser.add_subclass_arguments(LightningModule, "model", required=True)
    if "data" in sections:
        parser.add_subclass_arguments(LightningDataModule, "data", required=True)
    if "trainer" in sections:
        parser.add_lightning_class_args(Trainer, "trainer")
    return parser


def _import_cli_classes() -> None:
    """Import what ``terratorch fit`` imports before parsing, so short class names resolve the same way."""
    import importlib

    from terratorch import cli_tools

    for module in getattr(cli_tools, "_CLASS_MODULES", ()):
        importlib.import_module(module)


def validate_section(section: str, value: Mapping[str, Any]) -> str | None:
    """Parse one LightningCLI section (``model``, ``data``, ``trainer``); its explained error or ``None``."""
    from jsonargparse import ArgumentError

    from terratorch.cli_tools import explain_parse_error

    parser = _parser((section,))
    try:
        parser.parse_object({section: copy.deepcopy(dict(value))})
    except ArgumentError as error:
        return _explain(section, str(error), parser, explain_parse_error(str(error), parser))
    return None


def parse_section(section: str, value: Mapping[str, Any]) -> Any:
    """The parsed (not instantiated) section as ``terratorch fit`` sees it: full class path, typed args.

    Raises:
        jsonargparse.ArgumentError: The section is invalid (see :func:`validate_section`).
    """
    return _parser((section,)).parse_object({section: copy.deepcopy(dict(value))})[section]


_CLASS_PATH_PROBLEM = re.compile(r"Problem with given class_path '([^']+)':\s*(.+)", re.S)


def _explain(section: str, raw: str, parser: Any, explained: str) -> str:
    """Key paths for the two messages :func:`~terratorch.cli_tools.explain_parse_error` leaves generic."""
    head, sep, _ = explained.partition(": ")
    if section == "trainer" and sep and " " not in head and not head.startswith("trainer"):
        # An unknown Trainer key is reported relative to the group: name it and list the valid keys.
        valid = sorted(
            a.dest.split(".", 1)[1]
            for a in parser._actions
            if getattr(a, "dest", "").startswith("trainer.") and not a.dest.endswith(".help")
        )
        close = close_matches(head, valid)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"trainer.{head}: not a lightning.Trainer argument.{hint}\nValid keys here: {', '.join(valid)}"
    problem = _CLASS_PATH_PROBLEM.search(raw)
    importing = ("has no attribute", "No module named", "does not exist", "Import path", "Expected a dot")
    if problem is not None and any(word in problem.group(2).splitlines()[0] for word in importing):
        detail = problem.group(2).strip().splitlines()[0]
        return f"{section}.class_path: cannot import {problem.group(1)!r}: {detail}"
    return explained


def validate(resolved: Mapping[str, Any], where: str = "") -> list[tuple[str, str]]:
    """Every section problem of a resolved task as ``(benchmark key path, message)`` pairs.

    Each section is parsed on its own so one bad section does not hide the problems of the others.
    Key paths of LightningCLI (``model.init_args.lr``) are translated to the benchmark config's
    (``tasks[0].terratorch_task.lr``).
    """
    return [problem for problems in validate_sections(resolved, where).values() for problem in problems]


def validate_sections(resolved: Mapping[str, Any], where: str = "") -> dict[str, list[tuple[str, str]]]:
    """Like :func:`validate`, by LightningCLI section (``model``, ``data``, ``trainer``)."""
    config = cli_config(resolved)
    found: dict[str, list[tuple[str, str]]] = {}
    for section in ("model", "data", "trainer"):
        message = validate_section(section, config[section])
        found[section] = [] if message is None else [split_message(message, section, where)]
    return found


def split_message(message: str, section: str, where: str) -> tuple[str, str]:
    """``"model.init_args.lrr: ..."`` -> ``("tasks[0].terratorch_task.lrr", "...")``."""
    head, sep, rest = message.partition(": ")
    if sep and " " not in head and head.startswith(section):
        return _translate(head, section, where), rest
    return f"{where}.{SECTION_KEYS[section]}" if where else SECTION_KEYS[section], message


def _translate(key: str, section: str, where: str) -> str:
    parts = key.split(".")[1:]
    if section in ("model", "trainer") and parts[:1] == ["init_args"]:
        parts = parts[1:]
    elif section == "model" and parts[:1] == ["class_path"]:
        return f"{where}.type" if where else "type"
    base = SECTION_KEYS[section]
    path = ".".join([base, *parts])
    return f"{where}.{path}" if where else path


def build(
    resolved: Mapping[str, Any],
    seed: int,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, Any, Any]:
    """Build ``(task, datamodule, trainer)`` through :func:`terratorch.cli_tools.build_lightning_cli`.

    ``callbacks`` are Lightning callback objects (they cannot be written in a config) added to the
    trainer after it is built; callbacks given as ``{class_path, init_args}`` in
    ``resolved["trainer"]["callbacks"]`` are built by the CLI like in ``terratorch fit``.
    """
    from terratorch.cli_tools import build_lightning_cli

    cli = build_lightning_cli(cli_config(resolved, seed=seed), run=False)
    trainer = cli.trainer
    trainer.callbacks.extend(callbacks)
    return cli.model, cli.datamodule, trainer


def build_task(resolved_task: Mapping[str, Any]) -> Any:
    """Build only the task (e.g. to measure its model) with the CLI's parser: ``{"class": ..., **kwargs}``."""
    parser = _parser(("model",))
    config = cli_config({"task": resolved_task, "datamodule": {}, "trainer": {}})
    namespace = parser.parse_object({"model": config["model"]})
    return parser.instantiate_classes(namespace).model
