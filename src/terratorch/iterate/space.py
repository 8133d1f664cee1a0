"""The hyperparameter search space: parsing ``optimization_space`` and sampling it with Optuna.

``optimization_space`` is a nested mapping whose leaves are either

* a range ``{min, max, type: int|real, log: false}`` (``log: true`` samples on a log scale), or
* a list of choices (numbers, strings, booleans, or even lists/dicts, e.g. decoder channel lists).

Nested mappings that are not ranges group keys: ``optimizer_hparams: {weight_decay: {...}}`` samples
``optimizer_hparams.weight_decay``. Each leaf is one :class:`SearchParam` named by its dotted path;
that dotted name is also the Optuna parameter name and the MLflow param name.

Where a sampled value goes (datamodule, task constructor, model factory, trainer) is decided by
:mod:`terratorch.iterate.config` (routes, validated with the CLI parser); this module knows nothing
about tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SearchParam", "SpaceError", "parse_space", "sample", "without"]

RANGE_KEYS = frozenset({"min", "max", "type", "log"})
_PRIMITIVES = (str, int, float, bool, type(None))


class SpaceError(ValueError):
    """An ``optimization_space`` entry that cannot be sampled; ``problems`` holds (path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


@dataclass(frozen=True)
class SearchParam:
    """One sampled hyperparameter.

    Attributes:
        path: Dotted key path, e.g. ``"lr"`` or ``"optimizer_hparams.weight_decay"``.
        kind: ``"int"``, ``"real"`` or ``"categorical"``.
        low: Lower bound of a range (inclusive).
        high: Upper bound of a range (inclusive).
        log: Sample a range on a log scale.
        choices: The options of a categorical parameter.
    """

    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def encoded(self) -> bool:
        """True when choices are not Optuna primitives and are sampled through their JSON text."""
        return self.kind == "categorical" and not all(isinstance(c, _PRIMITIVES) for c in self.choices)


def _is_range(node: Any) -> bool:
    return isinstance(node, Mapping) and bool(node) and set(node) <= RANGE_KEYS and "min" in node


def _parse_range(path: str, node: Mapping[str, Any], problems: list[tuple[str, str]]) -> SearchParam | None:
    kind = node.get("type", "real")
    if kind not in ("int", "real"):
        problems.append(
            (path, f"range type {kind!r} is not valid; use 'int' or 'real' (or a list of choices)")
        )
        return None
    if "max" not in node:
        problems.append((path, "a range needs both 'min' and 'max'"))
        return None
    low, high, log = node["min"], node["max"], bool(node.get("log", False))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        problems.append((path, f"'min' and 'max' must be numbers, got {low!r} and {high!r}"))
        return None
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        problems.append((path, f"an 'int' range needs integer bounds, got {low!r}..{high!r}"))
        return None
    if low > high:
        problems.append((path, f"'min' ({low}) is larger than 'max' ({high})"))
        return None
    if log and low <= 0:
        problems.append((path, f"a log range needs 'min' > 0, got {low}"))
        return None
    if kind == "int":
        low, high = int(low), int(high)
    return SearchParam(path=path, kind=kind, low=low, high=high, log=log)


def parse_space(space: Mapping[str, Any] | None, prefix: str = "") -> list[SearchParam]:
    """Flatten ``optimization_space`` into search parameters, checking every leaf.

    Raises:
        SpaceError: With every problem found (path and message), not only the first.
    """
    problems: list[tuple[str, str]] = []
    params = _walk(space or {}, prefix, problems)
    if problems:
        raise SpaceError(problems)
    return params


def _walk(node: Mapping[str, Any], prefix: str, problems: list[tuple[str, str]]) -> list[SearchParam]:
    params: list[SearchParam] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if _is_range(value):
            param = _parse_range(path, value, problems)
            if param is not None:
                params.append(param)
        elif isinstance(value, Mapping):
            if not value:
                problems.append((path, "empty mapping: give a range {min, max, type} or a list of choices"))
            elif set(value) & RANGE_KEYS and not set(value) <= RANGE_KEYS:
                extra = sorted(set(value) - RANGE_KEYS)
                problems.append((path, f"unknown range keys {extra}; a range has only {sorted(RANGE_KEYS)}"))
            else:
                params.extend(_walk(value, f"{path}.", problems))
        elif isinstance(value, list | tuple):
            if not value:
                problems.append((path, "empty list of choices"))
            else:
                params.append(SearchParam(path=path, kind="categorical", choices=tuple(value)))
        else:
            problems.append((path, f"{value!r} is neither a range {{min, max, type}} nor a list of choices"))
    return params


def without(params: Iterable[SearchParam], excluded: Iterable[str]) -> list[SearchParam]:
    """Drop parameters named in ``optimization_except`` (a name also drops everything below it)."""
    names = list(excluded)
    return [p for p in params if not any(p.path == n or p.path.startswith(f"{n}.") for n in names)]


def sample(trial: Any, params: Iterable[SearchParam]) -> dict[str, Any]:
    """Ask an Optuna ``trial`` for a value of every parameter; returns ``{dotted path: value}``."""
    values: dict[str, Any] = {}
    for param in params:
        if param.kind == "int":
            values[param.path] = trial.suggest_int(param.path, int(param.low), int(param.high), log=param.log)
        elif param.kind == "real":
            values[param.path] = trial.suggest_float(param.path, param.low, param.high, log=param.log)
        elif param.encoded:
            texts = [json.dumps(c, sort_keys=True) for c in param.choices]
            values[param.path] = json.loads(trial.suggest_categorical(param.path, texts))
        else:
            values[param.path] = trial.suggest_categorical(param.path, list(param.choices))
    return values


def decode(params: Iterable[SearchParam], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn Optuna's stored ``trial.params`` back into values (JSON-encoded choices decoded)."""
    by_path = {p.path: p for p in params}
    decoded: dict[str, Any] = {}
    for path, value in raw.items():
        param = by_path.get(path)
        decoded[path] = json.loads(value) if param is not None and param.encoded else value
    return decoded
