"""Benchmark results as plain dataclasses, and loading them from the MLflow run tree.

The runner writes one MLflow run per benchmark, with nested runs per task and, below those, per
trial and per repeat; they are linked by MLflow's ``mlflow.parentRunId`` tag and told apart by the
``terratorch.level`` tag. :func:`load_results` reads that tree back for one or more experiments
into :class:`BenchmarkResults`, which :mod:`terratorch.iterate.summarize` turns into tables, plots
and a report. MLflow is imported only when results are loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EFFICIENCY_PREFIX",
    "LEVEL_TAG",
    "PARENT_TAG",
    "BenchmarkResults",
    "ExperimentResult",
    "ResultsNotFoundError",
    "TaskResult",
    "TrialRecord",
    "load_results",
    "resolve_tracking_uri",
]

LEVEL_TAG = "terratorch.level"
PARENT_TAG = "mlflow.parentRunId"
EFFICIENCY_PREFIX = "efficiency/"


class ResultsNotFoundError(LookupError):
    """The tracking store has no benchmark results matching the request."""


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------
@dataclass
class TrialRecord:
    """One HPO trial of a task: its Optuna number, status and objective value (NaN if none)."""

    number: int
    status: str
    value: float
    run_id: str = ""


@dataclass
class TaskResult:
    """The outcome of one task inside one benchmark run.

    ``test_scores`` are the repeat runs' values of :attr:`test_metric`, one per seed.
    """

    task: str
    task_type: str
    metric: str
    direction: str
    status: str = "finished"
    best_value: float = math.nan
    best_params: dict[str, str] = field(default_factory=dict)
    trials: list[TrialRecord] = field(default_factory=list)
    test_scores: list[float] = field(default_factory=list)
    test_seeds: list[int | None] = field(default_factory=list)
    run_id: str = ""
    backbone: str = ""
    """The task's own backbone (empty for runs logged before tasks were tagged with one)."""

    @property
    def test_metric(self) -> str:
        """``val/mIoU`` → ``test/mIoU``: the name repeat runs log their score under."""
        from terratorch.iterate.metrics_table import test_split_metric

        return test_split_metric(self.metric)

    @property
    def scores(self) -> list[float]:
        """Test scores if the task was repeated, else its best validation value (if any)."""
        if self.test_scores:
            return list(self.test_scores)
        return [] if math.isnan(self.best_value) else [self.best_value]

    @property
    def score_source(self) -> str:
        """``"test"``, ``"val"`` (best validation value, no repeats) or ``"none"``."""
        if self.test_scores:
            return "test"
        return "none" if math.isnan(self.best_value) else "val"


@dataclass
class ExperimentResult:
    """One benchmark run (one backbone or baseline) with its tasks and efficiency figures."""

    label: str
    experiment: str
    backbone: str
    run_id: str = ""
    master_seed: str | None = None
    efficiency: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, TaskResult] = field(default_factory=dict)


@dataclass
class BenchmarkResults:
    """Everything a summary needs: the experiments in display order."""

    experiments: list[ExperimentResult]
    tracking_uri: str = ""

    def task_names(self) -> list[str]:
        """All task names, in order of first appearance across experiments."""
        names: dict[str, None] = {}
        for experiment in self.experiments:
            names.update(dict.fromkeys(experiment.tasks))
        return list(names)

    def task_info(self, task: str) -> TaskResult:
        """The first :class:`TaskResult` for ``task`` (its metric and direction are shared)."""
        for experiment in self.experiments:
            if task in experiment.tasks:
                return experiment.tasks[task]
        raise KeyError(f"No experiment has task {task!r}; tasks: {self.task_names()}.")


# ---------------------------------------------------------------------------------------------
# Loading from MLflow
# ---------------------------------------------------------------------------------------------
def resolve_tracking_uri(tracking_uri: str | os.PathLike[str]) -> str:
    """Turn a storage directory or ``.db`` path into a ``sqlite:///`` URI; check SQLite files exist.

    Raises:
        FileNotFoundError: a local directory or SQLite file that does not exist (an MLflow
            client would silently create an empty store there).
    """
    text = os.fspath(tracking_uri)
    if "://" not in text:
        path = Path(text).expanduser()
        if path.is_dir():
            path = path / "mlflow.db"
        if not path.is_file():
            raise FileNotFoundError(
                f"No MLflow store at {path}: pass the benchmark's storage directory (containing "
                "mlflow.db) or a tracking URI (sqlite:///..., postgresql://..., http(s)://...)."
            )
        return f"sqlite:///{path.resolve()}"
    if text.startswith("sqlite:///"):
        db = Path(text.removeprefix("sqlite:///").split("?", 1)[0])
        if not db.is_file():
            raise FileNotFoundError(f"MLflow SQLite database {db} does not exist (tracking URI {text!r}).")
    return text


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _metric(run: Any, key: str) -> float:
    value = run.data.metrics.get(key)
    return math.nan if value is None else float(value)


def _int_tag(run: Any, key: str) -> int | None:
    try:
        return int(run.data.tags[key])
    except (KeyError, ValueError):
        return None


def _status(run: Any) -> str:
    return run.data.tags.get("terratorch.status") or run.info.status.lower()


def _trials(runs: Sequence[Any]) -> list[TrialRecord]:
    by_number: dict[int, TrialRecord] = {}
    for position, run in enumerate(sorted(runs, key=lambda r: r.info.start_time or 0)):
        number = _int_tag(run, "terratorch.trial_number")
        number = position if number is None else number
        record = TrialRecord(number, _status(run), _metric(run, "trial_value"), run.info.run_id)
        # A resumed benchmark re-runs an interrupted trial; keep the finished record.
        if number not in by_number or record.status == "finished":
            by_number[number] = record
    return [by_number[n] for n in sorted(by_number)]


def _task_result(run: Any, children: Mapping[str, list[Any]]) -> TaskResult:
    tags = run.data.tags
    kids = children.get(run.info.run_id, [])
    task = TaskResult(
        task=tags.get("terratorch.task") or run.info.run_name,
        task_type=tags.get("terratorch.task_type", ""),
        metric=tags.get("terratorch.metric", ""),
        direction=tags.get("terratorch.direction", "max"),
        status=_status(run),
        best_value=_metric(run, "best_value"),
        best_params={k.removeprefix("best/"): v for k, v in run.data.params.items() if k.startswith("best/")},
        trials=_trials([r for r in kids if r.data.tags.get(LEVEL_TAG) == "trial"]),
        run_id=run.info.run_id,
        backbone=tags.get("terratorch.backbone", ""),
    )
    repeats = sorted(
        (r for r in kids if r.data.tags.get(LEVEL_TAG) == "repeat"),
        key=lambda r: (_int_tag(r, "terratorch.repeat_index") or 0, r.info.start_time or 0),
    )
    for rep in repeats:
        score = _metric(rep, task.test_metric)
        if math.isfinite(score):
            task.test_scores.append(score)
            task.test_seeds.append(_int_tag(rep, "terratorch.seed"))
    if math.isnan(task.best_value):
        task.best_value = _best_trial_value(task)
    return task


def _best_trial_value(task: TaskResult) -> float:
    values = [t.value for t in task.trials if t.status == "finished" and math.isfinite(t.value)]
    if not values:
        return math.nan
    return max(values) if task.direction == "max" else min(values)


def _experiment_result(experiment: str, run: Any, children: Mapping[str, list[Any]]) -> ExperimentResult:
    tags = run.data.tags
    tasks = sorted(
        (r for r in children.get(run.info.run_id, []) if r.data.tags.get(LEVEL_TAG) == "task"),
        key=lambda r: r.info.start_time or 0,
    )
    result = ExperimentResult(
        label=experiment,
        experiment=experiment,
        backbone=tags.get("terratorch.backbone", "?"),
        run_id=run.info.run_id,
        master_seed=tags.get("terratorch.master_seed"),
        efficiency={
            k.removeprefix(EFFICIENCY_PREFIX): float(v)
            for k, v in run.data.metrics.items()
            if k.startswith(EFFICIENCY_PREFIX)
        },
    )
    for task_run in tasks:
        task = _task_result(task_run, children)
        result.tasks[task.task] = task
    return result


def _pick_benchmarks(experiment: str, runs: Sequence[Any], parent_run_ids: Sequence[str] | None) -> list[Any]:
    benchmarks = [r for r in runs if r.data.tags.get(LEVEL_TAG) == "benchmark"]
    chosen = [r for r in benchmarks if r.info.run_id in (parent_run_ids or ())]
    if chosen:
        return chosen
    if not benchmarks:
        raise ResultsNotFoundError(
            f"Experiment {experiment!r} has no benchmark run (tag {LEVEL_TAG}=benchmark); "
            "was it written by `terratorch iterate`?"
        )
    latest: dict[str, Any] = {}
    for run in sorted(benchmarks, key=lambda r: r.info.start_time or 0):
        latest[run.data.tags.get("terratorch.backbone", "")] = run
    return list(latest.values())


def _unique_labels(experiments: list[ExperimentResult]) -> None:
    """Label = experiment name; add the backbone, then the run id, where names repeat."""
    makers: list[Callable[[ExperimentResult], str]] = [
        lambda e: e.experiment,
        lambda e: f"{e.experiment} ({e.backbone})",
        lambda e: f"{e.experiment} ({e.backbone}, {e.run_id[:8]})",
    ]
    for make in makers:
        labels = [make(e) for e in experiments]
        if len(set(labels)) == len(labels) or make is makers[-1]:
            for experiment, label in zip(experiments, labels):
                experiment.label = label
            return


def load_results(
    tracking_uri: str,
    experiment_names: Sequence[str],
    parent_run_ids: Sequence[str] | None = None,
) -> BenchmarkResults:
    """Read benchmark results of one or more experiments from an MLflow tracking store.

    Args:
        tracking_uri: MLflow URI (``sqlite:///.../mlflow.db``, ``postgresql://``, ``http(s)://``) or
            a benchmark storage directory.
        experiment_names: Experiments to load, shown in this order.
        parent_run_ids: Benchmark run ids to load (each must belong to one of the experiments).
            For an experiment that holds none of them (e.g. a baseline put side by side with a
            given run), and when none are given, the most recent benchmark run per (experiment,
            backbone) is used, so resumed benchmarks (which reuse their run) and several
            backbones logged into one experiment are both handled.

    Raises:
        FileNotFoundError: a local store that does not exist.
        ResultsNotFoundError: unknown experiment names (with close matches), an experiment
            without benchmark runs, or parent run ids that were not found.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    ids = _experiment_ids(client, experiment_names)
    wanted = list(parent_run_ids or [])
    experiments: list[ExperimentResult] = []
    for name, experiment_id in ids.items():
        runs = _all_runs(client, experiment_id)
        children: dict[str, list[Any]] = {}
        for run in runs:
            children.setdefault(run.data.tags.get(PARENT_TAG, ""), []).append(run)
        for bench in _pick_benchmarks(name, runs, wanted):
            experiments.append(_experiment_result(name, bench, children))
    missing = [i for i in wanted if i not in {e.run_id for e in experiments}]
    if missing:
        raise ResultsNotFoundError(
            f"Benchmark run id(s) {missing} not found in experiments {list(experiment_names)} at {uri}."
        )
    _unique_labels(experiments)
    return BenchmarkResults(experiments=experiments, tracking_uri=uri)


def _experiment_ids(client: Any, names: Sequence[str]) -> dict[str, str]:
    """``{name: experiment id}`` for every name; all unknown names are reported together."""
    from terratorch.choices import did_you_mean

    if not names:
        raise ValueError("Give at least one experiment name to summarise.")
    ids: dict[str, str] = {}
    problems = []
    known: list[str] | None = None
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            ids[name] = experiment.experiment_id
            continue
        if known is None:
            known = [e.name for e in client.search_experiments()]
        hint = did_you_mean(name, known)
        problems.append(f"experiment {name!r} not found." + (hint or f" Known: {known}."))
    if problems:
        raise ResultsNotFoundError(" ".join(problems))
    return ids
