"""The benchmark tool (``terratorch iterate``): HPO across tasks, MLflow tracking, repeats, report.

Importing this package is cheap; the public helpers below load their modules on first use::

    from terratorch.iterate import load_config, build_plan, BenchmarkRunner
    plan = build_plan(load_config("examples/iterate/quickstart.yaml"))
    outcome = BenchmarkRunner(plan).run()
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "load_config": "terratorch.iterate.config",
    "parse_config": "terratorch.iterate.config",
    "build_plan": "terratorch.iterate.config",
    "BenchmarkConfig": "terratorch.iterate.config",
    "ConfigError": "terratorch.iterate.config",
    "BenchmarkRunner": "terratorch.iterate.runner",
    "BenchmarkOutcome": "terratorch.iterate.runner",
    "derive_seed": "terratorch.iterate.seeds",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terratorch.iterate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
