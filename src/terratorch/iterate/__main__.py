"""``terratorch iterate`` / ``iterate``: command line of the benchmark tool.

Phases: with none of ``--hpo``, ``--repeat``, ``--summarize`` the tool runs all of them (HPO, then
``run_repetitions`` repetitions of each task's best configuration, then the report). Naming some of
them runs only those; the report is written after every run that trains something.

Any other ``--dotted.key VALUE`` overrides the config (``--n_trials 2``,
``--defaults.trainer_args.max_epochs 1``, ``--tasks.0.max_epochs 3``). Only argparse is imported
until the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main", "split_overrides"]

EPILOG = """\
examples:
  terratorch iterate --config examples/iterate/quickstart.yaml
  terratorch iterate --config bench.yaml --dry-run --n_trials 2 --defaults.trainer_args.max_epochs 1
  terratorch iterate --config bench.yaml --repeat --continue_existing_experiments
  terratorch iterate --config bench.yaml --summarize --experiments my_backbone unet_baseline
  terratorch iterate --build_iterate_config --input configs/ --output bench.yaml
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
    return int(run_friendly(_main, args, argv=args) or 0)


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
    plan = load_plan(args.config, overrides)
    if args.dry_run:
        print(plan.describe())
        print("dry run: config is valid; nothing was trained or written")
        return 0
    from terratorch.iterate.runner import BenchmarkRunner

    backend = _backend(args, plan)  # connects and checks the cluster before anything is written
    try:
        return _run(args, BenchmarkRunner(plan, backend=backend))
    finally:
        if backend is not None:
            backend.close()


def _backend(args: argparse.Namespace, plan: Any) -> Any:
    """The Ray backend when asked for (``--backend ray`` or a ``ray:`` block), else ``None`` (local)."""
    name = args.backend or ("ray" if getattr(plan.config, "ray", None) is not None else "local")
    if name != "ray":
        if args.ray_address:
            raise ValueError("--ray-address is only used with --backend ray")
        return None
    from terratorch.iterate.backends.ray import RayBackend

    backend = RayBackend.from_plan(plan, address=args.ray_address)
    backend.connect()
    return backend


def _run(args: argparse.Namespace, runner: Any) -> int:
    """Run the phases asked for on the command line; returns the exit code."""
    phases = (args.hpo, args.repeat, args.summarize)
    if args.summarize and not (args.hpo or args.repeat):
        parents = [args.parent_run_id] if args.parent_run_id else None
        return 0 if runner.summarize(parents, args.output, experiments=args.experiments) else 1
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
        return 3
    return 0


def _convert(args: argparse.Namespace) -> int:
    if not args.input or not args.output:
        raise ValueError("--build_iterate_config needs --input DIR|FILE and --output FILE")
    from pathlib import Path

    from terratorch.iterate.convert import build_iterate_config

    path = build_iterate_config(Path(args.input), Path(args.output))
    print(f"benchmark config written to {path or args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
