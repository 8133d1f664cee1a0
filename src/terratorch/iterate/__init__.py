"""The benchmark tool (``terratorch iterate``): HPO across tasks, MLflow tracking, repeats, report.

Importing this package is cheap; the public helpers below load their modules on first use::

    from terratorch.iterate import load_config, build_plan, BenchmarkRunner
    plan = build_plan(load_config("examples/iterate/quickstart.yaml"))
    outcome = BenchmarkRunner(plan).run()
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
