"""Repetitions: re-train each task's best configuration with several seeds and test it.

Each repetition ``i`` of task ``t`` trains with seed ``repeat_seed(master_seed, t, i)``, then runs
the test split on the best-validation checkpoint (``report_on_best_val: true``) or the final weights.
It is an MLflow run under the task run (``terratorch.level=repeat``) with the test metrics and the
score ``test/<metric>``. Finished repetitions are found again by their parent run id and index, so
a resumed benchmark only runs the missing ones; interrupted ones are closed as KILLED and redone.

The scores of every finished repetition are written to ``repeated_results.csv`` (storage directory
and benchmark-run artifact) with columns :data:`CSV_COLUMNS`.
"""

from __future__ import annotations

import csv
import io
import shutil
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from terratorch.iterate import seeds
from terratorch.iterate.metrics_table import test_split_metric
from terratorch.iterate.tracking import RunLevel

if TYPE_CHECKING:
    from terratorch.iterate.runner import BenchmarkRunner, TaskOutcome

__all__ = ["CSV_COLUMNS", "run_repetitions"]

CSV_COLUMNS = [
    "experiment",
    "backbone",
    "task",
    "task_type",
    "metric",
    "direction",
    "seed",
    "score",
    "run_id",
]


def run_repetitions(runner: BenchmarkRunner, bench_id: str, outcomes: list[TaskOutcome]) -> Path | None:
    """Run the missing repetitions of every task that has a best configuration; write the CSV."""
    tracker = runner.tracker
    assert tracker is not None
    rows: list[dict[str, Any]] = []
    plans = {p.name: p for p in runner.plan.tasks}
    for outcome in outcomes:
        plan = plans[outcome.name]
        if outcome.status != "finished" or outcome.task_run_id is None:
            runner.out(f"task={outcome.name}: no successful trial, repetitions skipped")
            continue
        done = _finished_repeats(runner, outcome.task_run_id)
        for index in range(runner.config.run_repetitions):
            if index not in done:
                _one_repeat(runner, plan, outcome, index)
        for run in _finished_repeats(runner, outcome.task_run_id).values():
            rows.append(_row(runner, plan, run))
    if not rows:
        return None
    return _write_csv(runner, bench_id, rows)


def _finished_repeats(runner: BenchmarkRunner, task_run_id: str) -> dict[int, Any]:
    """Finished repeat runs by index; RUNNING ones (from a killed process) are closed as KILLED."""
    tracker = runner.tracker
    assert tracker is not None
    finished: dict[int, Any] = {}
    for run in tracker.children(runner.experiment_id, task_run_id, RunLevel.REPEAT):
        index = int(run.data.tags.get("terratorch.repeat_index", -1))
        if run.info.status == "FINISHED" and run.data.tags.get("terratorch.status") == "finished":
            finished.setdefault(index, run)
        elif run.info.status == "RUNNING":
            tracker.set_tags(
                run.info.run_id, {"terratorch.status": "failed", "terratorch.failure": "interrupted"}
            )
            tracker.set_status(run.info.run_id, "KILLED")
    return finished


def _one_repeat(runner: BenchmarkRunner, plan: Any, outcome: TaskOutcome, index: int) -> None:
    from terratorch.iterate.trial import run_training

    tracker = runner.tracker
    assert tracker is not None
    cfg = runner.config
    seed = seeds.repeat_seed(cfg.seed, plan.name, index)
    resolved = plan.resolved(outcome.best_params)
    score_name = test_split_metric(plan.metric)
    run_id = tracker.create_run(
        runner.experiment_id,
        f"{plan.name}-repeat-{index}",
        {
            "terratorch.level": RunLevel.REPEAT,
            "terratorch.task": plan.name,
            "terratorch.seed": seed,
            "terratorch.repeat_index": index,
            "terratorch.status": "running",
            "terratorch.score_metric": score_name,
        },
        parent_run_id=outcome.task_run_id,
    )
    tracker.log_params(run_id, outcome.best_params)
    trial_config = {"seed": seed, "metric": plan.metric, "direction": plan.direction, **resolved}
    tracker.log_text(run_id, yaml.safe_dump(trial_config, sort_keys=False), "trial_config.yaml")
    scratch = tracker.scratch_dir()
    try:
        result = run_training(
            resolved,
            metric=plan.metric,
            direction=plan.direction,
            seed=seed,
            on_epoch=lambda epoch, metrics: tracker.log_metrics(run_id, metrics, step=epoch),
            early_stop_patience=plan.early_stop_patience,
            max_run_duration=plan.max_run_duration,
            checkpoint_dir=scratch,
            test=True,
            test_on_best=cfg.report_on_best_val,
        )
        if score_name not in result.test_metrics:
            raise KeyError(
                f"the test run did not log {score_name!r}; it logged {sorted(result.test_metrics)}"
            )
        tracker.log_metrics(run_id, result.test_metrics)
        if cfg.save_models and result.best_checkpoint:
            tracker.log_file(run_id, result.best_checkpoint, artifact_path="checkpoints")
        tracker.set_tags(run_id, {"terratorch.status": "finished"})
        tracker.set_status(run_id, "FINISHED")
        runner.out(
            f"task={plan.name} repeat={index + 1}/{cfg.run_repetitions} seed={seed} "
            f"{score_name}={result.test_metrics[score_name]:.4g}"
        )
    except Exception as error:  # a failed repetition is recorded; the others still run
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        tracker.log_text(run_id, text, "traceback.txt")
        tracker.set_tags(
            run_id,
            {"terratorch.status": "failed", "terratorch.error": f"{type(error).__name__}: {error}"[:5000]},
        )
        tracker.set_status(run_id, "FAILED")
        runner.out(
            f"task={plan.name} repeat={index + 1}/{cfg.run_repetitions} failed: "
            f"{type(error).__name__}: {error}"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _row(runner: BenchmarkRunner, plan: Any, run: Any) -> dict[str, Any]:
    score_name = test_split_metric(plan.metric)
    return {
        "experiment": runner.config.experiment_name,
        "backbone": runner.config.backbone_label(),
        "task": plan.name,
        "task_type": plan.task_type,
        "metric": score_name,
        "direction": plan.direction,
        "seed": run.data.tags.get("terratorch.seed"),
        "score": run.data.metrics.get(score_name),
        "run_id": run.info.run_id,
    }


def _write_csv(runner: BenchmarkRunner, bench_id: str, rows: list[dict[str, Any]]) -> Path:
    tracker = runner.tracker
    assert tracker is not None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    folder = runner.location.local_dir or Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "repeated_results.csv"
    path.write_text(buffer.getvalue())
    tracker.log_text(bench_id, buffer.getvalue(), "repeated_results.csv")
    runner.out(f"repetition scores written to {path}")
    return path
