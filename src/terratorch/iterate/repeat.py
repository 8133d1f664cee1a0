"""Repetitions: re-train each task's best configuration with several seeds and test it.

Each repetition ``i`` of task ``t`` trains with seed ``repeat_seed(master_seed, t, i)``, then runs
the test split on the best-validation checkpoint (``report_on_best_val: true``) or the final weights.
It is an MLflow run under the task run (``terratorch.level=repeat``) with the test metrics and the
score ``test/<metric>``.

Every repetition is a unit of :class:`~terratorch.iterate.workers.UnitLedger`: exactly one worker
runs it, even with several workers on one store; the unit of a killed worker is taken over (its
MLflow run closed as KILLED and redone), a finished or failed one is never redone. A failed
repetition is recorded (traceback, tags) and the others still run.

The scores of every finished repetition are written to ``repeated_results.csv`` (storage directory
and benchmark-run artifact) with columns :data:`CSV_COLUMNS`, once per set of repetitions.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terratorch.iterate import seeds, workers
from terratorch.iterate.metrics_table import test_split_metric
from terratorch.iterate.tracking import (
    FAILURE_TAG,
    LEVEL_TAG,
    REPEAT_INDEX_TAG,
    SCORE_METRIC_TAG,
    SEED_TAG,
    STATUS_TAG,
    TASK_TAG,
    RunLevel,
    RunStatus,
    Tracker,
)

if TYPE_CHECKING:
    from terratorch.iterate.config import TaskPlan
    from terratorch.iterate.runner import BenchmarkRunner, TaskOutcome

__all__ = ["CSV_COLUMNS", "RepeatContext", "run_repetitions"]

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


@dataclass
class RepeatContext:
    """What the repetitions need from the benchmark (instead of the whole runner).

    Attributes:
        tracker: MLflow operations.
        units: The exactly-once ledger shared by all workers.
        experiment_id: MLflow experiment of the benchmark.
        bench_id: The benchmark run.
        config: The benchmark config (seed, repetitions, saving/testing options, names).
        plans: Task plans by name.
        folder: Where ``repeated_results.csv`` is written.
        out: Progress printer.
    """

    tracker: Tracker
    units: workers.UnitLedger
    experiment_id: str
    bench_id: str
    config: Any
    plans: Mapping[str, TaskPlan]
    folder: Path
    out: Callable[[str], None]

    @classmethod
    def of(cls, runner: BenchmarkRunner, bench_id: str) -> RepeatContext:
        """The context of ``runner``'s benchmark run ``bench_id``."""
        assert runner.tracker is not None and runner.units is not None
        return cls(
            tracker=runner.tracker,
            units=runner.units,
            experiment_id=runner.experiment_id,
            bench_id=bench_id,
            config=runner.config,
            plans={p.name: p for p in runner.plan.tasks},
            folder=runner.location.local_dir or Path.cwd(),
            out=runner.out,
        )


def run_repetitions(context: RepeatContext, outcomes: list[TaskOutcome]) -> tuple[Path | None, str]:
    """Run the repetitions no worker has done yet, wait for the others', write the CSV once.

    Returns:
        The CSV path (``None`` when no repetition finished) and its text.
    """
    units = []
    finished_tasks = []
    for outcome in outcomes:
        if outcome.status != "finished" or outcome.task_run_id is None:
            context.out(f"task={outcome.name}: no successful trial, repetitions skipped")
            continue
        finished_tasks.append(outcome)
        plan = context.plans[outcome.name]
        for index in range(context.config.run_repetitions):
            key = f"{context.bench_id}/repeat/{outcome.name}/{index}"
            units.append((key, partial(_one_repeat, context, plan, outcome, index)))
    context.units.run_all(units)
    rows = [
        _row(context, context.plans[outcome.name], run)
        for outcome in finished_tasks
        for run in _finished_repeats(context, outcome.task_run_id or "")
    ]
    if not rows:
        return None, ""
    text = _csv_text(rows)
    path = context.folder / "repeated_results.csv"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    context.units.run_once(f"{context.bench_id}/repeated_results/{digest}", lambda: _write_csv(context, text))
    return path, text


def _repeat_runs(context: RepeatContext, task_run_id: str, index: int) -> list[Any]:
    return [
        run
        for run in context.tracker.children(context.experiment_id, task_run_id, RunLevel.REPEAT)
        if run.data.tags.get(REPEAT_INDEX_TAG) == str(index)
    ]


def _finished_repeats(context: RepeatContext, task_run_id: str) -> list[Any]:
    """Finished repeat runs of a task, one per index, by index."""
    finished: dict[int, Any] = {}
    for run in context.tracker.children(context.experiment_id, task_run_id, RunLevel.REPEAT):
        index = int(run.data.tags.get(REPEAT_INDEX_TAG, -1))
        if run.info.status == "FINISHED" and run.data.tags.get(STATUS_TAG) == RunStatus.FINISHED:
            finished.setdefault(index, run)
    return [finished[i] for i in sorted(finished)]


def _one_repeat(context: RepeatContext, plan: Any, outcome: TaskOutcome, index: int) -> None:
    """Run repetition ``index`` of ``plan`` (this worker holds its unit) unless a run already did."""
    from terratorch.iterate import trial

    tracker, cfg = context.tracker, context.config
    assert outcome.task_run_id is not None
    for run in _repeat_runs(context, outcome.task_run_id, index):
        if run.info.status in ("FINISHED", "FAILED"):
            return  # done before the ledger knew (killed between the two records): not redone
        if run.info.status == "RUNNING":  # its worker died (we hold the unit now)
            tracker.set_tags(
                run.info.run_id, {STATUS_TAG: RunStatus.FAILED, FAILURE_TAG: RunStatus.INTERRUPTED}
            )
            tracker.set_status(run.info.run_id, "KILLED")
            context.out(
                f"task={plan.name} repeat={index + 1}: run {run.info.run_id} was interrupted; redoing it"
            )
    seed = seeds.repeat_seed(cfg.seed, plan.name, index)
    score_name = test_split_metric(plan.metric)
    run_id = tracker.create_run(
        context.experiment_id,
        f"{plan.name}-repeat-{index}",
        {
            LEVEL_TAG: RunLevel.REPEAT,
            TASK_TAG: plan.name,
            SEED_TAG: seed,
            REPEAT_INDEX_TAG: index,
            STATUS_TAG: RunStatus.RUNNING,
            SCORE_METRIC_TAG: score_name,
        },
        parent_run_id=outcome.task_run_id,
    )
    tracker.log_params(run_id, outcome.best_params)
    label = f"task={plan.name} repeat={index + 1}/{cfg.run_repetitions}"
    try:
        result = trial.run_tracked(
            tracker,
            run_id,
            plan,
            plan.resolved(outcome.best_params),
            seed=seed,
            checkpoints=True,
            save_models=cfg.save_models,
            test=True,
            test_on_best=cfg.report_on_best_val,
            required_metric=score_name,
            kill_label=f"repeat-epoch:{plan.name}:{index}",
        )
    except Exception as error:  # recorded by run_tracked; the other repetitions still run
        tracker.set_status(run_id, "FAILED")
        context.out(f"{label} failed: {type(error).__name__}: {error}")
        return
    tracker.set_tags(run_id, {STATUS_TAG: RunStatus.FINISHED})
    tracker.set_status(run_id, "FINISHED")
    context.out(f"{label} seed={seed} {score_name}={result.test_metrics[score_name]:.4g}")


def _row(context: RepeatContext, plan: Any, run: Any) -> dict[str, Any]:
    score_name = test_split_metric(plan.metric)
    return {
        "experiment": context.config.experiment_name,
        "backbone": plan.backbone_label,
        "task": plan.name,
        "task_type": plan.task_type,
        "metric": score_name,
        "direction": plan.direction,
        "seed": run.data.tags.get(SEED_TAG),
        "score": run.data.metrics.get(score_name),
        "run_id": run.info.run_id,
    }


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_csv(context: RepeatContext, text: str) -> None:
    context.folder.mkdir(parents=True, exist_ok=True)
    path = context.folder / "repeated_results.csv"
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_text(text)
    partial_path.replace(path)  # atomic: a kill never leaves half a file
    context.tracker.log_text(context.bench_id, text, "repeated_results.csv")
    context.out(f"repetition scores written to {path}")
