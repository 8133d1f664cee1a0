"""``terratorch iterate`` / ``iterate``: command line of the benchmark tool.

Phases: with none of ``--hpo``, ``--repeat``, ``--summarize`` the tool runs all of them (HPO, then
``run_repetitions`` repetitions of each task's best configuration, then the report). Naming some of
them runs only those; the report is written after every run that trains something.

Exit codes (:mod:`terratorch.exit_codes`): 0 done, 1 invalid input, 2 usage, 3 a benchmark whose
tasks partly failed, 130 interrupted (Ctrl-C or SIGTERM; rerun the command to continue).

Any other ``--dotted.key VALUE`` overrides the config (``--n_trials 2``,
``--defaults.trainer_args.max_epochs 1``, ``--tasks.0.max_epochs 3``). Only argparse is imported
until the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from terratorch import exit_codes

__all__ = ["build_parser", "main", "split_overrides"]

EPILOG = """\
examples:
  terratorch iterate --config examples/iterate/quickstart.yaml
  terratorch iterate --config bench.yaml --dry-run --n_trials 2 --defaults.trainer_args.max_epochs 1
  terratorch iterate --config bench.yaml --repeat --continue_existing_experiments
  terratorch iterate --config bench.yaml --summarize --experiments my_backbone unet_baseline
  terratorch iterate --build_iterate_config --input configs/ --output out/ --template t.yaml --prefix my
  terratorch iterate --summarize --config summarize.yaml   # list_of_experiment_names, task_names, ...
  terratorch iterate --config bench.yaml --backend ray --ray-address 10.0.0.1:6379
  terratorch iterate --config bench.yaml --storage postgresql+psycopg2://user@db-host/optuna  # per worker
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (overrides are handled separately by :func:`split_overrides`)."""
    parser = argparse.ArgumentParser(
        prog="terratorch iterate",
        description="Benchmark a backbone across tasks: HPO with Optuna, tracking with MLflow, repeated "
        "runs with derived seeds, and a report. Unknown --dotted.keys override the config.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", "-c", help="benchmark YAML config")
    parser.add_argument("--hpo", action="store_true", help="run the hyperparameter optimisation")
    parser.add_argument(
        "--repeat", action="store_true", help="re-run each task's best config with several seeds"
    )
    parser.add_argument(
        "--summarize", action="store_true", help="write the report (tables, plots, report.html)"
    )
    parser.add_argument("--parent_run_id", help="continue (or summarise) this benchmark run id")
    parser.add_argument(
        "--continue_existing_experiments",
        action="store_true",
        help="continue the newest benchmark run with this config even if it is complete",
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="validate the config and print the resolved plan; train nothing",
    )
    parser.add_argument(
        "--output", help="report folder (--summarize) or output file (--build_iterate_config)"
    )
    parser.add_argument("--experiments", nargs="+", help="experiment names to put side by side in the report")
    parser.add_argument(
        "--build_iterate_config",
        action="store_true",
        help="convert fine-tuning YAMLs (--input DIR|FILE) into a benchmark config (--output)",
    )
    parser.add_argument("--input", help="fine-tuning YAML file or folder for --build_iterate_config")
    parser.add_argument(
        "--template",
        help="--build_iterate_config: benchmark YAML whose keys (defaults, optimization_space, storage_uri, "
        "n_trials, ...) the new config starts from; its first task gives type and direction",
    )
    parser.add_argument(
        "--prefix", help="--build_iterate_config: experiment_name becomes <prefix>_<backbone>"
    )
    for key in ("list_of_experiment_names", "task_names", "task_metrics"):
        parser.add_argument(f"--{key}", nargs="+", help=f"summarize config key {key} (overrides the config)")
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        help="where trials run: 'local' (this process) or 'ray' (a Ray cluster; default when the "
        "config has a 'ray:' block)",
    )
    parser.add_argument(
        "--ray-address", "--ray_address", dest="ray_address", help="Ray cluster address (host:port, auto)"
    )
    parser.add_argument(
        "--storage",
        help="Optuna study storage URL shared by several workers (postgresql://... across machines, "
        "sqlite:///file.db on one machine); same as --optuna_storage",
    )
    return parser


def split_overrides(extra: Sequence[str]) -> list[tuple[str, str]]:
    """Pair ``--a.b VALUE`` / ``--a.b=VALUE`` tokens into ``(key, value)`` overrides.

    Raises:
        ValueError: A token that is not ``--key`` or a key without a value.
    """
    pairs: list[tuple[str, str]] = []
    tokens = list(extra)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"unexpected argument {token!r}; overrides look like --dotted.key VALUE")
        key, sep, value = token[2:].partition("=")
        if not sep:
            if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                raise ValueError(f"override --{key} needs a value (e.g. --{key} 2)")
            value = tokens[index + 1]
            index += 1
        pairs.append((key, value))
        index += 1
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``iterate`` and ``terratorch iterate``; returns the exit code."""
    from terratorch.__main__ import run_friendly

    args = list(sys.argv[1:] if argv is None else argv)
    return int(run_friendly(_main, args, argv=args) or exit_codes.OK)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = split_overrides(extra)
    if args.build_iterate_config:
        return _convert(args)
    if not args.config:
        parser.error("--config FILE is required (or --build_iterate_config)")
    import warnings

    from terratorch.iterate.config import load_plan

    # Show our deprecation notes (e.g. legacy metric names) on the console; Python hides them by default.
    warnings.filterwarnings("default", category=DeprecationWarning, module="terratorch")
    if args.storage:
        overrides.append(("optuna_storage", args.storage))
    for key in ("list_of_experiment_names", "task_names", "task_metrics"):
        if getattr(args, key):
            overrides.append((key, "[" + ", ".join(repr(v) for v in getattr(args, key)) + "]"))
    if _summarize_config(args.config, overrides):
        return _summarize_only(args, overrides)
    # Every task's data is checked before anything trains; a dry run may be away from the data, so
    # there the same problems are warnings.
    plan = load_plan(args.config, overrides, check_data=not args.dry_run)
    if args.dry_run:
        from terratorch.iterate.config import data_problems

        for key, message in data_problems(plan):
            print(f"warning: {key}: {message}", file=sys.stderr)
        print(plan.describe())
        print("dry run: config is valid; nothing was trained or written")
        return exit_codes.OK
    from terratorch.__main__ import debug_enabled
    from terratorch.iterate.runner import BenchmarkRunner

    backend = _backend(args, plan)  # connects and checks the cluster before anything is written
    previous = _interrupt_on_sigterm()
    try:
        return _run(args, BenchmarkRunner(plan, backend=backend, verbose=debug_enabled(argv)))
    finally:
        backend.close()
        _restore_sigterm(previous)


def _interrupt_on_sigterm() -> Any:
    """Turn SIGTERM into ``KeyboardInterrupt`` (exit 130, the running trial queued again)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _summarize_config(path: str, overrides: list[tuple[str, str]]) -> bool:
    """True when ``path`` is the reference tool's summarize config (experiments listed, no tasks)."""
    from pathlib import Path

    from terratorch.iterate.config import _read_yaml, apply_overrides, is_summarize_config

    return is_summarize_config(apply_overrides(_read_yaml(Path(path).expanduser(), path), overrides))


def _summarize_only(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
    """``--summarize`` with a summarize config: one report comparing the listed experiments."""
    from pathlib import Path

    from terratorch.iterate.config import load_summarize_config
    from terratorch.iterate.summarize import load_results, write_summary
    from terratorch.iterate.tracking import resolve_storage

    config = load_summarize_config(args.config, overrides)
    if args.hpo or args.repeat:
        raise ValueError("a summarize config only summarizes: drop --hpo/--repeat")
    location = resolve_storage(config.storage_uri)
    if args.dry_run:
        print(f"summarize {config.list_of_experiment_names} from {location.tracking_uri}")
        print(f"tasks {config.task_names or 'all'} metrics {config.task_metrics or 'each task metric'}")
        print("dry run: config is valid; nothing was read or written")
        return exit_codes.OK
    parents = [args.parent_run_id] if args.parent_run_id else None
    results = load_results(location.tracking_uri, config.list_of_experiment_names, parents)
    if config.task_names:
        for experiment in results.experiments:
            experiment.tasks = {k: v for k, v in experiment.tasks.items() if k in config.task_names}
    base = location.local_dir or Path.cwd()
    output = Path(args.output) if args.output else base / "reports" / config.benchmark_name
    path = write_summary(
        results, output, reference_ranges=config.reference_ranges, normalization=config.normalization
    )
    print(f"report written to {path}")
    return exit_codes.OK


def _backend(args: argparse.Namespace, plan: Any) -> Any:
    """The connected backend: Ray when asked for (``--backend ray`` or a ``ray:`` block), else local."""
    name = args.backend or ("ray" if getattr(plan.config, "ray", None) is not None else "local")
    if name != "ray":
        if args.ray_address:
            raise ValueError("--ray-address is only used with --backend ray")
        from terratorch.iterate.backends import get_backend

        backend = get_backend("local")
    else:
        from terratorch.iterate.backends.ray import RayBackend

        backend = RayBackend.from_plan(plan, address=args.ray_address)
    backend.connect()
    return backend


def _run(args: argparse.Namespace, runner: Any) -> int:
    """Run the phases asked for on the command line; returns the exit code."""
    phases = (args.hpo, args.repeat, args.summarize)
    if args.summarize and not (args.hpo or args.repeat):
        parents = [args.parent_run_id] if args.parent_run_id else None
        written = runner.summarize(parents, args.output, experiments=args.experiments)
        return exit_codes.OK if written else exit_codes.INVALID_INPUT
    everything = not any(phases)
    outcome = runner.run(
        hpo=everything or args.hpo,
        repeat=everything or args.repeat,
        summarize=True,
        parent_run_id=args.parent_run_id,
        continue_existing=args.continue_existing_experiments,
        report_dir=args.output,
    )
    if outcome.failed_tasks:
        print(f"failed tasks: {', '.join(outcome.failed_tasks)}", file=sys.stderr)
        return exit_codes.FAILED_TASKS
    return exit_codes.OK


def _convert(args: argparse.Namespace) -> int:
    if not args.input or not args.output:
        raise ValueError("--build_iterate_config needs --input DIR|FILE and --output FILE")
    from pathlib import Path

    from terratorch.iterate.convert import build_iterate_config

    output = Path(args.output)
    if output.is_dir():
        output = output / f"{args.prefix or 'tt-iterate-'}_{Path(args.input).stem}.yaml"
    path = Path(build_iterate_config(Path(args.input), output, overwrite=True) or output)
    if args.template or args.prefix:
        _apply_template(path, args.template, args.prefix)
    print(f"benchmark config written to {path}")
    return exit_codes.OK


def _apply_template(path: Any, template: str | None, prefix: str | None) -> None:
    """Start the converted config from ``template`` (tasks kept) and name it ``<prefix>_<backbone>``."""
    from pathlib import Path

    import yaml

    from terratorch.iterate.config import _read_yaml

    converted = _read_yaml(Path(path), str(path))
    merged = dict(converted)
    if template:
        base = _read_yaml(Path(template).expanduser(), template)
        first = (base.get("tasks") or [{}])[0]
        merged = {**{k: v for k, v in base.items() if k != "tasks"}, "tasks": converted.get("tasks", [])}
        for task in merged["tasks"]:
            for key in ("type", "direction"):
                if key in first:
                    task[key] = first[key]
        for key in ("backbone",):
            if key in converted and key not in base:
                merged[key] = converted[key]
    if prefix:
        backbone = (
            (merged.get("backbone") or {}).get("backbone")
            if isinstance(merged.get("backbone"), dict)
            else None
        )
        name = backbone if isinstance(backbone, str) else Path(path).stem
        merged["experiment_name"] = f"{prefix}_{name}"
    Path(path).write_text(yaml.safe_dump(merged, sort_keys=False))


if __name__ == "__main__":
    raise SystemExit(main())
