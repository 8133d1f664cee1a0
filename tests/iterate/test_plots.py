"""Tests for terratorch.iterate.plots: figure content (titles, labels, data) and written PNGs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from terratorch.iterate import plots
from terratorch.iterate.summarize import BenchmarkResults, ExperimentResult, TaskResult, TrialRecord


def _task(name, task_type, metric, direction, values, tests, best=math.nan):
    trials = [
        TrialRecord(i, "failed" if math.isnan(v) else "finished", v, f"run{i}") for i, v in enumerate(values)
    ]
    return TaskResult(name, task_type, metric, direction, best_value=best, trials=trials, test_scores=tests)


def _results() -> BenchmarkResults:
    vit = ExperimentResult("vit", "vit", "vit_small", run_id="a" * 32, efficiency={"samples_per_s": 50.0})
    vit.tasks["seg"] = _task("seg", "segmentation", "val/mIoU", "max", [0.3, 0.5, math.nan, 0.4], [0.5, 0.6])
    vit.tasks["reg"] = _task("reg", "regression", "val/RMSE", "min", [2.0, 1.5, 1.7], [], best=1.5)
    unet = ExperimentResult("unet", "unet", "unet_scratch", run_id="b" * 32)
    unet.tasks["seg"] = _task("seg", "segmentation", "val/mIoU", "max", [0.2, 0.25], [0.3, 0.35, 0.32])
    return BenchmarkResults([vit, unet], tracking_uri="sqlite:///x.db")


def test_best_so_far_is_direction_aware_and_skips_failures():
    values = [0.3, math.nan, 0.5, 0.4]
    assert plots._best_so_far(values, "max").tolist() == [0.3, 0.3, 0.5, 0.5]
    assert plots._best_so_far([2.0, 1.0, math.nan, 1.5], "min").tolist() == [2.0, 1.0, 1.0, 1.0]
    assert np.isnan(plots._best_so_far([math.nan, 1.0], "max")[0])


def test_experiment_colors_are_stable_and_distinct():
    colors = plots.experiment_colors(["a", "b", "c"])
    assert colors == plots.experiment_colors(["a", "b", "c"])
    assert len(set(colors.values())) == 3


def test_task_scores_figure_has_a_labelled_panel_per_task():
    fig = plots.task_scores_figure(_results())
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["seg\nsegmentation", "reg\nregression"]
    seg, reg = visible
    assert seg.get_ylabel() == "test mIoU (higher is better)"
    assert reg.get_ylabel() == "val RMSE (lower is better)"  # not repeated: best validation value
    assert [t.get_text() for t in seg.get_xticklabels()] == ["vit", "unet"]
    # the unet baseline has no regression result: its slot says so instead of plotting a point
    assert any(t.get_text() == "no score" for t in reg.texts)
    means = [
        line.get_ydata()[0] for line in seg.lines if len(line.get_ydata()) == 1 and line.get_marker() == "o"
    ]
    assert means == pytest.approx([0.55, np.mean([0.3, 0.35, 0.32])])


def test_hpo_convergence_figure_plots_best_so_far_per_experiment():
    fig = plots.hpo_convergence_figure(_results())
    seg = fig.axes[0]
    assert seg.get_xlabel().startswith("trial number")
    assert "val/mIoU (higher is better)" in seg.get_ylabel()
    steps = {line.get_label(): line.get_ydata().tolist() for line in seg.lines}
    assert steps["vit"] == [0.3, 0.5, 0.5, 0.5]
    assert steps["unet"] == [0.2, 0.25]
    assert [t.get_text() for t in seg.get_legend().get_texts()] == ["vit", "unet"]


def test_score_vs_throughput_figure_points_and_placeholder():
    rows = [
        {"experiment": "vit", "iqm_normalized": 0.7, "ci_low": 0.6, "ci_high": 0.8, "samples_per_s": 50.0},
        {
            "experiment": "unet",
            "iqm_normalized": 0.4,
            "ci_low": 0.3,
            "ci_high": 0.5,
            "samples_per_s": math.nan,
        },
    ]
    ax = plots.score_vs_throughput_figure(rows).axes[0]
    assert ax.get_xscale() == "log" and "samples/s" in ax.get_xlabel()
    assert [t.get_text() for t in ax.texts] == ["vit"]  # unet has no efficiency figures: left out
    empty = plots.score_vs_throughput_figure(rows[1:]).axes[0]
    assert "efficiency metrics" in empty.texts[0].get_text()


def test_plot_functions_write_pngs(tmp_path):
    results = _results()
    paths = [
        plots.plot_task_scores(results, tmp_path / "a" / "scores.png"),
        plots.plot_hpo_convergence(results, tmp_path / "conv.png"),
        plots.plot_score_vs_throughput([], tmp_path / "eff.png"),
    ]
    from matplotlib.image import imread

    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"
        height, width = imread(path).shape[:2]
        assert width > 300 and height > 200


def test_empty_results_give_a_placeholder_not_an_error():
    fig = plots.task_scores_figure(BenchmarkResults([]))
    assert "No task results" in fig.axes[0].texts[0].get_text()
