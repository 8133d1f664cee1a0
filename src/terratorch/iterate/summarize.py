"""Summaries of benchmark results: load them from MLflow, compute statistics, write the report.

:func:`load_results` reads the run tree the runner writes (benchmark → task → trial / repeat runs,
linked by MLflow's ``mlflow.parentRunId`` tag and told apart by ``terratorch.level``) into plain
dataclasses. :func:`write_summary` turns them into CSV/markdown tables, PNG plots and one
self-contained ``report.html``. Several experiments (backbones, a supervised baseline) can be
loaded together and are shown side by side.

Statistics, all computed on the per-seed test scores of the repeat runs (or, for a task without
repeats, on its best validation value):

* mean ± sample standard deviation;
* IQM, the interquartile mean (mean of the middle 50 %, boundary values weighted fractionally);
* a percentile-bootstrap 95 % confidence interval of the mean, seeded so reports are reproducible;
* scores normalised to [0, 1] per task against a reference range (1 = the best end, whichever the
  task's direction) and aggregated across tasks (mean of task means, IQM of all normalised scores
  with a bootstrap CI that resamples seeds within each task).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LEVEL_TAG = "terratorch.level"
PARENT_TAG = "mlflow.parentRunId"
EFFICIENCY_PREFIX = "efficiency/"
DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 2000


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
# Statistics
# ---------------------------------------------------------------------------------------------
def _as_array(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % of the sorted values.

    When ``len(values)`` is not a multiple of 4, the two values straddling the quartiles count
    with the fraction of them that lies inside (e.g. for 5 values the weights are
    ``0, 0.75, 1, 0.75, 0``), so the result moves smoothly with the data. Non-finite values are
    ignored; an empty input gives NaN.
    """
    array = np.sort(_as_array(values))
    n = array.size
    if n == 0:
        return math.nan
    cut = n / 4
    positions = np.arange(n)
    # Weight of observation i = length of [i, i+1) that falls inside [cut, n - cut).
    weights = np.clip(np.minimum(positions + 1, n - cut) - np.maximum(positions, cut), 0.0, 1.0)
    return float(np.dot(weights, array) / weights.sum())


def bootstrap_ci(
    values: Iterable[float],
    statistic: Callable[[np.ndarray], float] | str = "mean",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` over ``values``.

    Args:
        values: Scores (non-finite ones are dropped).
        statistic: ``"mean"``, ``"iqm"`` or a function of a 1-D array.
        confidence: Coverage of the interval, in (0, 1).
        n_resamples: Bootstrap resamples.
        seed: Seed of the numpy generator; the same inputs and seed give the same interval.

    Returns:
        ``(low, high)``; ``(v, v)`` for a single value, ``(nan, nan)`` for none.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}.")
    array = _as_array(values)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), float(array[0])
    func = _statistic(statistic)
    rng = np.random.default_rng(seed)
    samples = array[rng.integers(0, array.size, size=(n_resamples, array.size))]
    stats = np.array([func(row) for row in samples]) if func is not np.mean else samples.mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def _statistic(statistic: Callable[[np.ndarray], float] | str) -> Callable[[np.ndarray], float]:
    if callable(statistic):
        return statistic
    named = {"mean": np.mean, "iqm": iqm}
    if statistic not in named:
        raise ValueError(f"Unknown statistic {statistic!r}; use one of {sorted(named)} or a function.")
    return named[statistic]


def stratified_bootstrap_ci(
    groups: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float] | str = "iqm",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Bootstrap CI of ``statistic`` over pooled groups, resampling within each group.

    Used for aggregates across tasks: each task keeps its number of seeds in every resample, so
    tasks with more repeats do not crowd out the others.
    """
    arrays = [a for a in (_as_array(g) for g in groups) if a.size]
    if not arrays:
        return math.nan, math.nan
    func = _statistic(statistic)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for i in range(n_resamples):
        stats[i] = func(np.concatenate([a[rng.integers(0, a.size, size=a.size)] for a in arrays]))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def normalize_score(value: float, low: float, high: float, direction: str) -> float:
    """Map ``value`` onto the reference range ``[low, high]`` so that 1 is the best end.

    ``direction="max"``: ``(value - low) / (high - low)``; ``"min"``: ``(high - value) / (high -
    low)``. Values outside the range are not clipped (a score past the reference shows as > 1).
    """
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min'; got {direction!r}.")
    if not high > low:
        raise ValueError(f"Reference range needs low < high; got low={low}, high={high}.")
    span = high - low
    return (value - low) / span if direction == "max" else (high - value) / span


def parse_reference_ranges(
    reference_ranges: Mapping[str, Any] | None, known_tasks: Sequence[str] = ()
) -> dict[str, tuple[float, float]]:
    """Validate ``{task: [low, high]}`` (or ``{task: {"min": low, "max": high}}``) ranges.

    Raises:
        ValueError: a range is not two numbers with ``low < high``; lists every bad entry.
    """
    parsed: dict[str, tuple[float, float]] = {}
    problems: list[str] = []
    for task, spec in (reference_ranges or {}).items():
        try:
            pair = (spec["min"], spec["max"]) if isinstance(spec, Mapping) else tuple(spec)
            low, high = (float(v) for v in pair)
        except (KeyError, TypeError, ValueError):
            problems.append(f"reference_ranges.{task}: expected [low, high] or {{min, max}}, got {spec!r}")
            continue
        if not high > low:
            problems.append(f"reference_ranges.{task}: low ({low}) must be below high ({high})")
            continue
        parsed[str(task)] = (low, high)
    if problems:
        raise ValueError("Invalid reference ranges:\n  " + "\n  ".join(problems))
    _warn_unknown_tasks(parsed, known_tasks)
    return parsed


def _warn_unknown_tasks(parsed: Mapping[str, Any], known_tasks: Sequence[str]) -> None:
    from terratorch.registry.registry import close_matches

    for task in parsed:
        if known_tasks and task not in known_tasks:
            hint = close_matches(task, known_tasks)
            suffix = f" Did you mean {hint}?" if hint else f" Tasks: {list(known_tasks)}."
            warnings.warn(f"Reference range for unknown task {task!r} is ignored.{suffix}", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _trial_counts(task: TaskResult) -> dict[str, int]:
    counts = {"finished": 0, "failed": 0, "pruned": 0}
    for trial in task.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return counts


def task_table(results: BenchmarkResults, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """One row per (experiment, task): best val, test mean ± std, IQM, 95 % CI of the mean, best params."""
    rows = []
    for experiment in results.experiments:
        for task in experiment.tasks.values():
            scores = task.scores
            counts = _trial_counts(task)
            low, high = bootstrap_ci(scores, seed=seed)
            rows.append(
                {
                    "experiment": experiment.label,
                    "backbone": experiment.backbone,
                    "task": task.task,
                    "task_type": task.task_type,
                    "metric": task.metric,
                    "direction": task.direction,
                    "status": task.status,
                    "best_val": task.best_value,
                    "score_source": task.score_source,
                    "n_scores": len(scores),
                    "mean": float(np.mean(scores)) if scores else math.nan,
                    "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan,
                    "iqm": iqm(scores),
                    "ci_low": low,
                    "ci_high": high,
                    "trials_finished": counts["finished"],
                    "trials_failed": counts["failed"],
                    "trials_pruned": counts["pruned"],
                    "best_params": ", ".join(f"{k}={v}" for k, v in sorted(task.best_params.items())),
                }
            )
    return rows


# Metrics bounded to [0, 1] with 1 best: their bounds are a natural reference range.
UNIT_METRICS = ("mIoU", "mIoU_Micro", "F1_Score", "Accuracy", "Accuracy_Micro", "Pixel_Accuracy", "Precision",
                "Recall")  # fmt: skip


def _metric_bounds(metric: str) -> tuple[float, float] | None:
    suffix = metric.split("/", 1)[-1]
    return (0.0, 1.0) if suffix in UNIT_METRICS or suffix.startswith("IoU_") else None


def resolve_ranges(
    results: BenchmarkResults, reference: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float, str]]:
    """Per task ``(low, high, source)``: the range its scores are normalised against.

    In order: the given ``reference`` range; ``[0, 1]`` (``"metric bounds"``) for metrics bounded
    that way (mIoU, accuracy, F1, precision, recall); else the min-max of every score of every
    loaded experiment on that task (``"observed"``), which needs scores from at least two
    experiments, since the spread of one experiment's own seeds says nothing about how good it
    is. Otherwise ``(nan, nan, "none")`` and the task is left out of the aggregate.
    """
    ranges: dict[str, tuple[float, float, str]] = {}
    for task in results.task_names():
        bounds = _metric_bounds(results.task_info(task).metric)
        scored = [
            e.tasks[task].scores for e in results.experiments if task in e.tasks and e.tasks[task].scores
        ]
        finite = _as_array(s for scores in scored for s in scores)
        if task in reference:
            ranges[task] = (*reference[task], "reference")
        elif bounds is not None:
            ranges[task] = (*bounds, "metric bounds")
        elif len(scored) >= 2 and finite.max() > finite.min():
            ranges[task] = (float(finite.min()), float(finite.max()), "observed")
        else:
            ranges[task] = (math.nan, math.nan, "none")
    return ranges


def normalized_scores(
    results: BenchmarkResults, ranges: Mapping[str, tuple[float, float, str]]
) -> dict[str, dict[str, list[float]]]:
    """``{experiment label: {task: [normalised score per seed]}}``; tasks without a range are left out."""
    table: dict[str, dict[str, list[float]]] = {}
    for experiment in results.experiments:
        per_task: dict[str, list[float]] = {}
        for name, task in experiment.tasks.items():
            low, high, _ = ranges[name]
            if math.isnan(low) or not task.scores:
                continue
            per_task[name] = [normalize_score(s, low, high, task.direction) for s in task.scores]
        table[experiment.label] = per_task
    return table


def aggregate_table(
    results: BenchmarkResults,
    reference_ranges: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    warn_unknown: bool = True,
) -> list[dict[str, Any]]:
    """One row per experiment: normalised aggregate scores across tasks plus efficiency figures.

    ``mean_normalized`` is the mean over tasks of each task's mean normalised score;
    ``iqm_normalized`` the IQM of all normalised per-seed scores, with a stratified bootstrap 95 %
    CI. ``tasks_scored`` says how many tasks entered; compare experiments only on equal counts.
    ``warn_unknown`` warns about reference ranges naming tasks that are not in ``results``.
    """
    reference = parse_reference_ranges(reference_ranges, results.task_names() if warn_unknown else ())
    normalized = normalized_scores(results, resolve_ranges(results, reference))
    rows = []
    for experiment in results.experiments:
        per_task = normalized[experiment.label]
        groups = list(per_task.values())
        low, high = stratified_bootstrap_ci(groups, seed=seed)
        pooled = [s for g in groups for s in g]
        eff = experiment.efficiency
        rows.append(
            {
                "experiment": experiment.label,
                "backbone": experiment.backbone,
                "tasks_scored": len(per_task),
                "tasks_total": len(results.task_names()),
                "mean_normalized": float(np.mean([np.mean(g) for g in groups])) if groups else math.nan,
                "iqm_normalized": iqm(pooled),
                "ci_low": low,
                "ci_high": high,
                "params_m": eff.get("params", math.nan) / 1e6,
                "gflops": eff.get("gflops", math.nan),
                "samples_per_s": eff.get("samples_per_s", math.nan),
                "peak_mem_mb": eff.get("peak_mem_mb", math.nan),
            }
        )
    return rows


def normalized_table(
    results: BenchmarkResults, reference_ranges: Mapping[str, Any] | None = None, warn_unknown: bool = True
) -> list[dict[str, Any]]:
    """Experiment x task matrix of mean normalised scores, plus the range each task used."""
    reference = parse_reference_ranges(reference_ranges, results.task_names() if warn_unknown else ())
    ranges = resolve_ranges(results, reference)
    normalized = normalized_scores(results, ranges)
    rows = []
    for experiment in results.experiments:
        row: dict[str, Any] = {"experiment": experiment.label}
        for task in results.task_names():
            scores = normalized[experiment.label].get(task, [])
            row[task] = float(np.mean(scores)) if scores else math.nan
        rows.append(row)
    range_row: dict[str, Any] = {"experiment": "(range used)"}
    for task, (low, high, source) in ranges.items():
        range_row[task] = f"{source} [{format_value(low)}, {format_value(high)}]"
    rows.append(range_row)
    return rows


def repeat_table(results: BenchmarkResults) -> list[dict[str, Any]]:
    """Long format: one row per (experiment, task, seed) test score."""
    return [
        {
            "experiment": e.label,
            "backbone": e.backbone,
            "task": t.task,
            "metric": t.test_metric,
            "seed": seed,
            "score": score,
        }
        for e in results.experiments
        for t in e.tasks.values()
        for seed, score in zip(t.test_seeds or [None] * len(t.test_scores), t.test_scores)
    ]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """Compact text for a table cell: 4 decimals, scientific for tiny/huge, "-" for NaN/None."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.1f}"
    return "-" if value is None else str(value)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write dict rows to ``path`` (columns from the first row; empty file with no rows)."""
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Render dict rows as a GitHub-flavoured markdown table (numbers formatted compactly)."""
    if not rows:
        return "_(no rows)_\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    results: BenchmarkResults,
    output_dir: str | os.PathLike[str],
    reference_ranges: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write tables, plots and ``report.html`` for ``results`` into ``output_dir``.

    Files: ``task_results.csv`` (per experiment and task), ``aggregate.csv`` (normalised scores and
    efficiency per experiment), ``normalized_scores.csv``, ``repeat_scores.csv``, ``summary.md``
    (all tables), ``task_scores.png``, ``hpo_convergence.png``, ``score_vs_throughput.png`` and
    ``report.html`` (self-contained: the plots are embedded).

    Args:
        results: From :func:`load_results` (or built by hand).
        output_dir: Created if missing; existing files of the same names are replaced.
        reference_ranges: ``{task: [low, high]}`` used to normalise each task's scores; tasks
            without one use their metric's bounds or the observed range (see
            :func:`resolve_ranges`).
        seed: Seed of the bootstrap resampling.

    Returns:
        The path of ``report.html``.
    """
    from terratorch.iterate import plots, report

    if not results.experiments:
        raise ResultsNotFoundError("Nothing to summarise: the results contain no experiments.")
    ranges = parse_reference_ranges(reference_ranges, results.task_names())  # warns once, raises early
    tables = {
        "aggregate": aggregate_table(results, ranges, seed=seed, warn_unknown=False),
        "tasks": task_table(results, seed=seed),
        "normalized": normalized_table(results, ranges, warn_unknown=False),
        "repeats": repeat_table(results),
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(tables["aggregate"], out / "aggregate.csv")
    write_csv(tables["tasks"], out / "task_results.csv")
    write_csv(tables["normalized"], out / "normalized_scores.csv")
    write_csv(tables["repeats"], out / "repeat_scores.csv")
    figures = {
        "Scores per task": plots.plot_task_scores(results, out / "task_scores.png", seed=seed),
        "HPO convergence": plots.plot_hpo_convergence(results, out / "hpo_convergence.png"),
        "Score vs throughput": plots.plot_score_vs_throughput(
            tables["aggregate"], out / "score_vs_throughput.png"
        ),
    }
    (out / "summary.md").write_text(_summary_markdown(results, tables))
    return report.write_report(results, tables, figures, out / "report.html")


def _summary_markdown(results: BenchmarkResults, tables: Mapping[str, list[dict[str, Any]]]) -> str:
    names = ", ".join(f"{e.label} ({e.backbone})" for e in results.experiments)
    parts = [
        "# Benchmark summary\n",
        f"Experiments: {names}\n",
        "## Aggregate (normalised scores, efficiency)\n",
        markdown_table(tables["aggregate"]),
        "## Per task\n",
        markdown_table(tables["tasks"]),
        "## Normalised score per task\n",
        markdown_table(tables["normalized"]),
    ]
    return "\n".join(parts)


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
    from terratorch.registry.registry import close_matches

    if not names:
        raise ValueError("Give at least one experiment name to summarise.")
    ids: dict[str, str] = {}
    problems = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = [e.name for e in client.search_experiments()]
            hint = close_matches(name, known)
            problems.append(
                f"experiment {name!r} not found"
                + (f" (did you mean {hint}?)" if hint else f"; known: {known}")
            )
        else:
            ids[name] = experiment.experiment_id
    if problems:
        raise ResultsNotFoundError("; ".join(problems) + ".")
    return ids
