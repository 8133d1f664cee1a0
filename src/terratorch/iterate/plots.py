"""PNG figures of a benchmark summary (matplotlib, no display needed).

Three figures, one consistent style (same colour per experiment everywhere):

* :func:`plot_task_scores`: one panel per task, a point per experiment at the mean score with its
  bootstrap 95 % CI, the individual seed scores as small dots;
* :func:`plot_hpo_convergence`: one panel per task, best-so-far objective vs trial number;
* :func:`plot_score_vs_throughput`: aggregate normalised score vs inference throughput.

Figures are built on :class:`matplotlib.figure.Figure` directly (not ``pyplot``), so nothing
global changes and no GUI backend is ever touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from terratorch.iterate.results import BenchmarkResults, TaskResult

STYLE: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "savefig.bbox": "tight",
}
DPI = 110
PANEL_SIZE = (4.2, 3.4)  # inches per task panel
MAX_COLUMNS = 3


def experiment_colors(labels: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """A stable colour per experiment label (matplotlib's ``tab10``, cycling after ten)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _direction_label(metric: str, direction: str) -> str:
    arrow = "higher is better" if direction == "max" else "lower is better"
    return f"{metric} ({arrow})"


def _panels(n: int, title: str) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` task panels in a grid (unused grid cells are hidden)."""
    from matplotlib.figure import Figure

    n = max(n, 1)
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + 0.6), dpi=DPI, layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig, axes[:n]


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", bbox_inches="tight")
    return out


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _task_panel(ax: Axes, name: str, results: BenchmarkResults, colors: Mapping[str, Any], seed: int) -> None:
    from terratorch.iterate.statistics import bootstrap_ci

    info = results.task_info(name)
    labels = [e.label for e in results.experiments]
    rng = np.random.default_rng(seed)
    sources = set()
    for x, experiment in enumerate(results.experiments):
        task: TaskResult | None = experiment.tasks.get(name)
        if task is None or not task.scores:
            ax.text(
                x, 0.5, "no score", ha="center", va="center", color="0.5", transform=ax.get_xaxis_transform()
            )
            continue
        scores = np.asarray(task.scores)
        sources.add(task.score_source)
        color = colors[experiment.label]
        jitter = rng.uniform(-0.12, 0.12, size=scores.size)
        ax.scatter(x + jitter, scores, s=14, color=color, alpha=0.45, linewidths=0, zorder=2)
        low, high = bootstrap_ci(scores, seed=seed)
        mean = float(scores.mean())
        ax.errorbar(
            x,
            mean,
            yerr=[[mean - low], [high - mean]],
            fmt="o" if task.score_source == "test" else "D",
            mfc=color if task.score_source == "test" else "white",
            color=color,
            ms=7,
            capsize=5,
            lw=1.8,
            zorder=3,
        )
    rotate = len(labels) > 2 or max(len(label) for label in labels) > 14
    ax.set_xticks(
        range(len(labels)), labels, rotation=25 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_title(f"{name}\n{info.task_type}" if info.task_type else name)
    stage = "test" if sources == {"test"} else ("val" if sources == {"val"} else "test or val")
    metric = (info.metric or "score").split("/", 1)[-1]
    ax.set_ylabel(_direction_label(f"{stage} {metric}", info.direction))


def _per_task_figure(
    results: BenchmarkResults, title: str, draw: Callable[[Axes, str, Mapping[str, Any]], None]
) -> Figure:
    """A figure with one panel per task, ``draw(ax, task, colors)`` filling each (a note if none)."""
    names = results.task_names()
    colors = experiment_colors([e.label for e in results.experiments])
    fig, axes = _panels(len(names), title)
    if not names:
        _empty(axes[0], "No task results were found.")
    for ax, name in zip(axes, names):
        draw(ax, name, colors)
    return fig


def task_scores_figure(results: BenchmarkResults, seed: int = 0) -> Figure:
    """One panel per task: each experiment's mean score with its 95 % CI and its seed scores.

    Tasks without repeat runs show their best validation value as an open diamond.
    """
    from matplotlib import rc_context

    with rc_context(STYLE):
        fig = _per_task_figure(
            results, "Scores per task", lambda ax, name, colors: _task_panel(ax, name, results, colors, seed)
        )
        fig.text(
            0.5,
            -0.02,
            "filled circle: mean test score over seeds with bootstrap 95% CI; small dots: individual seeds; "
            "open diamond: best validation value (task not repeated)",
            ha="center",
            va="top",
            fontsize=8.5,
            color="0.35",
        )
    return fig


def plot_task_scores(results: BenchmarkResults, path: str | Path, seed: int = 0) -> Path:
    """Save :func:`task_scores_figure` as a PNG at ``path``."""
    return _save(task_scores_figure(results, seed=seed), path)


def _best_so_far(values: Sequence[float], direction: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    filled = np.where(np.isfinite(array), array, -np.inf if direction == "max" else np.inf)
    best = np.maximum.accumulate(filled) if direction == "max" else np.minimum.accumulate(filled)
    return np.where(np.isfinite(best), best, np.nan)


def _convergence_panel(ax: Axes, name: str, results: BenchmarkResults, colors: Mapping[str, Any]) -> None:
    info = results.task_info(name)
    plotted = False
    for experiment in results.experiments:
        task = experiment.tasks.get(name)
        if task is None or not task.trials:
            continue
        numbers = [t.number for t in task.trials]
        values = [t.value if t.status == "finished" else math.nan for t in task.trials]
        color = colors[experiment.label]
        ax.scatter(numbers, values, s=16, color=color, alpha=0.4, linewidths=0)
        ax.step(
            numbers,
            _best_so_far(values, info.direction),
            where="post",
            color=color,
            lw=2,
            label=experiment.label,
        )
        failed = [t.number for t in task.trials if t.status != "finished"]
        if failed:
            ax.scatter(
                failed,
                [0.02] * len(failed),
                marker="x",
                color=color,
                s=24,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
        plotted = True
    if not plotted:
        _empty(ax, f"{name}: no trials recorded")
        return
    ax.set_title(name)
    ax.set_xlabel("trial number (x: failed/pruned)")
    ax.set_ylabel("best so far: " + _direction_label(info.metric or "objective", info.direction))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")


def hpo_convergence_figure(results: BenchmarkResults) -> Figure:
    """One panel per task: best objective so far vs trial number, one line per experiment.

    Dots are individual finished trials; crosses on the x axis mark failed or pruned trials.
    """
    from matplotlib import rc_context

    with rc_context(STYLE):
        return _per_task_figure(
            results, "HPO convergence", lambda ax, name, colors: _convergence_panel(ax, name, results, colors)
        )


def plot_hpo_convergence(results: BenchmarkResults, path: str | Path) -> Path:
    """Save :func:`hpo_convergence_figure` as a PNG at ``path``."""
    return _save(hpo_convergence_figure(results), path)


def score_vs_throughput_figure(aggregate_rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Aggregate normalised score (IQM, 95 % CI) vs inference samples/s, one point per experiment.

    Args:
        aggregate_rows: Rows of :func:`terratorch.iterate.summarize.aggregate_table`
            (``experiment``, ``iqm_normalized``, ``ci_low``, ``ci_high``, ``samples_per_s``).
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    colors = experiment_colors([r["experiment"] for r in aggregate_rows])
    usable = [
        r for r in aggregate_rows if _finite(r.get("samples_per_s")) and _finite(r.get("iqm_normalized"))
    ]
    with rc_context(STYLE):
        fig = Figure(figsize=(6.4, 4.6), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        ax.set_title("Score vs inference throughput")
        if not usable:
            _empty(ax, "No experiment has both an aggregate score\nand efficiency metrics.")
            return fig
        for row in usable:
            x, y = row["samples_per_s"], row["iqm_normalized"]
            low, high = row.get("ci_low", y), row.get("ci_high", y)
            yerr = [[max(0.0, y - low)], [max(0.0, high - y)]] if _finite(low) and _finite(high) else None
            color = colors[row["experiment"]]
            ax.errorbar(x, y, yerr=yerr, fmt="o", color=color, ms=8, capsize=4, lw=1.5)
            ax.annotate(row["experiment"], (x, y), xytext=(6, 6), textcoords="offset points", color=color)
        _log_x_axis(ax, [r["samples_per_s"] for r in usable])
        ax.set_xlabel("inference throughput (samples/s, log scale)")
        ax.set_ylabel("normalised score, IQM across tasks\n(1 = best end of reference range)")
    return fig


def plot_score_vs_throughput(aggregate_rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Save :func:`score_vs_throughput_figure` as a PNG at ``path``."""
    return _save(score_vs_throughput_figure(aggregate_rows), path)


def _log_x_axis(ax: Axes, values: Sequence[float]) -> None:
    """Log-scaled x axis padded around ``values`` with plain-number tick labels (1, 2, 5 steps)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_xlim(min(values) / 1.6, max(values) * 1.6)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
