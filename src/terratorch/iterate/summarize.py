"""Summaries of benchmark results: tables, plots and one self-contained report.

:func:`write_summary` turns :class:`~terratorch.iterate.results.BenchmarkResults` (loaded with
:func:`~terratorch.iterate.results.load_results`) into CSV/markdown tables, PNG plots and
``report.html``. Several experiments (backbones, a supervised baseline) can be loaded together and
are shown side by side. The statistics behind the tables (mean ± sample standard deviation, IQM,
bootstrap confidence intervals, normalised scores aggregated across tasks) live in
:mod:`terratorch.iterate.statistics`; this module only lays them out.

The names other modules and user code import from here (result classes, loaders, statistics)
are re-exported, so ``from terratorch.iterate.summarize import load_results`` keeps working.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terratorch.iterate import plots, report
from terratorch.iterate.report import format_value
from terratorch.iterate.results import (
    EFFICIENCY_PREFIX,
    LEVEL_TAG,
    PARENT_TAG,
    BenchmarkResults,
    ExperimentResult,
    ResultsNotFoundError,
    TaskResult,
    TrialRecord,
    load_results,
    resolve_tracking_uri,
)
from terratorch.iterate.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    UNIT_METRICS,
    bootstrap_ci,
    iqm,
    normalize_score,
    normalized_scores,
    parse_reference_ranges,
    resolve_ranges,
    stratified_bootstrap_ci,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "EFFICIENCY_PREFIX",
    "LEVEL_TAG",
    "PARENT_TAG",
    "UNIT_METRICS",
    "BenchmarkResults",
    "ExperimentResult",
    "ResultsNotFoundError",
    "TaskResult",
    "TrialRecord",
    "aggregate_table",
    "bootstrap_ci",
    "format_value",
    "iqm",
    "load_results",
    "markdown_table",
    "normalize_score",
    "normalized_scores",
    "normalized_table",
    "parse_reference_ranges",
    "repeat_table",
    "resolve_ranges",
    "resolve_tracking_uri",
    "stratified_bootstrap_ci",
    "task_table",
    "write_csv",
    "write_summary",
]


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
                    "backbone": task.backbone or experiment.backbone,
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


def aggregate_table(
    results: BenchmarkResults,
    reference_ranges: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    warn_unknown: bool = True,
    normalization: str = "auto",
) -> list[dict[str, Any]]:
    """One row per experiment: normalised aggregate scores across tasks plus efficiency figures.

    ``mean_normalized`` is the mean over tasks of each task's mean normalised score;
    ``iqm_normalized`` the IQM of all normalised per-seed scores, with a stratified bootstrap 95 %
    CI. ``tasks_scored`` says how many tasks entered; compare experiments only on equal counts.
    ``warn_unknown`` warns about reference ranges naming tasks that are not in ``results``;
    ``normalization`` is passed to :func:`resolve_ranges`.
    """
    reference = parse_reference_ranges(reference_ranges, results.task_names() if warn_unknown else ())
    normalized = normalized_scores(results, resolve_ranges(results, reference, normalization))
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
    results: BenchmarkResults,
    reference_ranges: Mapping[str, Any] | None = None,
    warn_unknown: bool = True,
    normalization: str = "auto",
) -> list[dict[str, Any]]:
    """Experiment x task matrix of mean normalised scores, plus the range each task used."""
    reference = parse_reference_ranges(reference_ranges, results.task_names() if warn_unknown else ())
    ranges = resolve_ranges(results, reference, normalization)
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
            "backbone": t.backbone or e.backbone,
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
    reference_ranges: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    seed: int = DEFAULT_SEED,
    normalization: str = "auto",
) -> Path:
    """Write tables, plots and ``report.html`` for ``results`` into ``output_dir``.

    Files: ``task_results.csv`` (per experiment and task), ``aggregate.csv`` (normalised scores and
    efficiency per experiment), ``normalized_scores.csv``, ``repeat_scores.csv``, ``summary.md``
    (all tables), ``task_scores.png``, ``hpo_convergence.png``, ``score_vs_throughput.png`` and
    ``report.html`` (self-contained: the plots are embedded).

    Args:
        results: From :func:`load_results` (or built by hand).
        output_dir: Created if missing; existing files of the same names are replaced.
        reference_ranges: ``{task: [low, high]}`` used to normalise each task's scores, or the
            path of a JSON file of that shape (GEO-Bench's ``normalizer.json``); tasks without one
            use their metric's bounds or the observed range (see :func:`resolve_ranges`).
        seed: Seed of the bootstrap resampling.
        normalization: ``"auto"`` or ``"geobench"`` (observed min-max, never metric bounds, for
            tasks without a reference range).

    Returns:
        The path of ``report.html``.
    """
    if not results.experiments:
        raise ResultsNotFoundError("Nothing to summarise: the results contain no experiments.")
    ranges = parse_reference_ranges(reference_ranges, results.task_names())  # warns once, raises early
    resolve_ranges(results, ranges, normalization)  # a bad mode fails before anything is written
    tables = {
        "aggregate": aggregate_table(
            results, ranges, seed=seed, warn_unknown=False, normalization=normalization
        ),
        "tasks": task_table(results, seed=seed),
        "normalized": normalized_table(results, ranges, warn_unknown=False, normalization=normalization),
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
