"""Tests for terratorch.iterate.summarize: loading the MLflow layout, the tables and the written summary.

The statistics themselves are tested in ``test_statistics.py``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from terratorch.iterate import summarize as S

# ---------------------------------------------------------------------------------------------
# A fake MLflow store with the exact layout the runner writes (benchmark -> task -> trial/repeat).
# ---------------------------------------------------------------------------------------------
SEG_TRIALS = [0.40, 0.55, float("nan"), 0.52, 0.61]  # trial 2 failed
SEG_TEST = {"vit_small": [0.60, 0.62, 0.58, 0.64], "unet_scratch": [0.50, 0.48, 0.52, 0.47]}
REG_TEST = {"vit_small": [1.2, 1.0, 1.1], "unet_scratch": [1.6, 1.4, 1.5]}


def _log_trials(mlflow, values: list[float], metric: str) -> None:
    for number, value in enumerate(values):
        with mlflow.start_run(run_name=f"trial_{number}", nested=True):
            status = "failed" if math.isnan(value) else "finished"
            mlflow.set_tags(
                {
                    "terratorch.level": "trial",
                    "terratorch.trial_number": str(number),
                    "terratorch.optuna_trial_id": str(100 + number),
                    "terratorch.status": status,
                    "terratorch.seed": str(1000 + number),
                }
            )
            mlflow.log_params({"lr": 10 ** -(number + 2), "batch_size": 4})
            if status == "finished":
                for epoch in range(2):
                    mlflow.log_metric(metric, value - 0.1 * (1 - epoch), step=epoch)
                mlflow.log_metric("trial_value", value)


def _log_task(mlflow, name, task_type, metric, direction, trials, tests, status="finished") -> None:
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.set_tags(
            {
                "terratorch.level": "task",
                "terratorch.task": name,
                "terratorch.task_type": task_type,
                "terratorch.metric": metric,
                "terratorch.direction": direction,
                "terratorch.status": status,
            }
        )
        finite = [v for v in trials if not math.isnan(v)]
        if finite:
            mlflow.log_metric("best_value", max(finite) if direction == "max" else min(finite))
            mlflow.log_params({"best/lr": 0.001})
        _log_trials(mlflow, trials, metric)
        for index, score in enumerate(tests):
            with mlflow.start_run(run_name=f"{name}_repeat_{index}", nested=True):
                mlflow.set_tags(
                    {
                        "terratorch.level": "repeat",
                        "terratorch.seed": str(7000 + index),
                        "terratorch.repeat_index": str(index),
                    }
                )
                mlflow.log_metric("test/" + metric.split("/", 1)[1], score)
                mlflow.log_metric("test/loss", 0.3)


def _log_benchmark(mlflow, experiment: str, backbone: str, artifacts: Path, gflops: float) -> str:
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(artifacts / experiment).as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{experiment}_{backbone}") as run:
        mlflow.set_tags(
            {"terratorch.level": "benchmark", "terratorch.backbone": backbone, "terratorch.master_seed": "42"}
        )
        mlflow.log_metrics(
            {
                "efficiency/params": 2.2e7 if backbone == "vit_small" else 3.1e7,
                "efficiency/gflops": gflops,
                "efficiency/samples_per_s": 120.0 if backbone == "vit_small" else 300.0,
                "efficiency/peak_mem_mb": 512.0,
            }
        )
        _log_task(mlflow, "burn_scars", "segmentation", "val/mIoU", "max", SEG_TRIALS, SEG_TEST[backbone])
        reg_trials = [1.5, 1.3, 1.35] if backbone == "vit_small" else [1.9, 1.6]
        _log_task(mlflow, "biomass", "regression", "val/RMSE", "min", reg_trials, REG_TEST[backbone])
        return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_template) -> dict:
    """Two experiments (a backbone and a UNet-from-scratch baseline) plus a re-run of the first."""
    import shutil

    import mlflow

    root = tmp_path_factory.mktemp("store")
    shutil.copy(mlflow_template, root / "mlflow.db")  # an initialised database (conftest.py)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        old = _log_benchmark(mlflow, "vit_bench", "vit_small", root / "artifacts", 4.0)
        new = _log_benchmark(mlflow, "vit_bench", "vit_small", root / "artifacts", 4.6)
        base = _log_benchmark(mlflow, "unet_baseline", "unet_scratch", root / "artifacts", 9.0)
    finally:
        mlflow.set_tracking_uri(previous)
    return {"uri": uri, "dir": root, "old": old, "new": new, "base": base}


def test_summarize_reexports_the_names_it_always_offered():
    from terratorch.iterate import results, statistics

    for name in ("BenchmarkResults", "ExperimentResult", "TaskResult", "TrialRecord", "load_results"):
        assert getattr(S, name) is getattr(results, name)
    for name in ("iqm", "bootstrap_ci", "stratified_bootstrap_ci", "normalize_score", "resolve_ranges"):
        assert getattr(S, name) is getattr(statistics, name)
    assert set(S.__all__) <= set(dir(S))


# ---------------------------------------------------------------------------------------------
# Loading the MLflow layout
# ---------------------------------------------------------------------------------------------
def test_load_results_reads_latest_benchmark_per_backbone(store):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    assert [e.label for e in results.experiments] == ["vit_bench", "unet_baseline"]
    vit, base = results.experiments
    assert vit.run_id == store["new"] and base.run_id == store["base"]
    assert vit.backbone == "vit_small" and vit.master_seed == "42"
    assert vit.efficiency["gflops"] == pytest.approx(4.6)
    assert list(vit.tasks) == ["burn_scars", "biomass"] == results.task_names()
    seg = vit.tasks["burn_scars"]
    assert (seg.task_type, seg.metric, seg.direction, seg.status) == (
        "segmentation",
        "val/mIoU",
        "max",
        "finished",
    )
    assert seg.best_value == pytest.approx(0.61)
    assert seg.best_params == {"lr": "0.001"}
    assert [t.number for t in seg.trials] == [0, 1, 2, 3, 4]
    assert [t.status for t in seg.trials].count("failed") == 1
    assert seg.trials[4].value == pytest.approx(0.61)
    assert seg.test_scores == pytest.approx(SEG_TEST["vit_small"])
    assert seg.test_seeds == [7000, 7001, 7002, 7003]
    assert base.tasks["biomass"].test_scores == pytest.approx(REG_TEST["unet_scratch"])


def test_load_results_by_parent_run_id_and_storage_directory(store):
    results = S.load_results(str(store["dir"]), ["vit_bench"], parent_run_ids=[store["old"]])
    assert [e.run_id for e in results.experiments] == [store["old"]]
    assert results.experiments[0].efficiency["gflops"] == pytest.approx(4.0)
    both = S.load_results(store["uri"], ["vit_bench"], parent_run_ids=[store["old"], store["new"]])
    assert len({e.label for e in both.experiments}) == 2  # same name and backbone: run id disambiguates
    # a baseline experiment without any of the given ids contributes its latest run
    mixed = S.load_results(store["uri"], ["vit_bench", "unet_baseline"], parent_run_ids=[store["old"]])
    assert [e.run_id for e in mixed.experiments] == [store["old"], store["base"]]


def test_load_results_bad_input(store, tmp_path):
    with pytest.raises(S.ResultsNotFoundError, match=r"experiment 'vit_bnch' not found.*vit_bench"):
        S.load_results(store["uri"], ["vit_bnch"])
    with pytest.raises(S.ResultsNotFoundError, match=r"run id\(s\) \['nope'\] not found"):
        S.load_results(store["uri"], ["vit_bench"], parent_run_ids=["nope"])
    with pytest.raises(FileNotFoundError, match="No MLflow store at"):
        S.load_results(str(tmp_path / "missing"), ["vit_bench"])
    missing_db = tmp_path / "none.db"
    with pytest.raises(FileNotFoundError, match=r"none\.db does not exist"):
        S.load_results(f"sqlite:///{missing_db}", ["vit_bench"])
    assert not missing_db.exists()  # nothing half-written
    with pytest.raises(ValueError, match="at least one experiment"):
        S.load_results(store["uri"], [])


# ---------------------------------------------------------------------------------------------
# Tables and the written summary
# ---------------------------------------------------------------------------------------------
def test_task_table_statistics(store):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    rows = {(r["experiment"], r["task"]): r for r in S.task_table(results)}
    seg = rows[("vit_bench", "burn_scars")]
    scores = SEG_TEST["vit_small"]
    assert seg["mean"] == pytest.approx(np.mean(scores))
    assert seg["std"] == pytest.approx(np.std(scores, ddof=1))
    assert seg["iqm"] == pytest.approx((0.60 + 0.62) / 2)  # middle two of four
    assert seg["ci_low"] < seg["mean"] < seg["ci_high"]
    assert (seg["trials_finished"], seg["trials_failed"], seg["score_source"]) == (4, 1, "test")


def test_aggregate_uses_reference_ranges_with_direction(store):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    ranges = {"burn_scars": [0.0, 1.0], "biomass": [1.0, 2.0]}
    rows = {r["experiment"]: r for r in S.aggregate_table(results, ranges)}
    vit = rows["vit_bench"]
    seg_norm = np.mean(SEG_TEST["vit_small"])  # range [0, 1], max
    reg_norm = np.mean([(2.0 - v) / 1.0 for v in REG_TEST["vit_small"]])  # range [1, 2], min
    assert vit["mean_normalized"] == pytest.approx((seg_norm + reg_norm) / 2)
    assert vit["tasks_scored"] == vit["tasks_total"] == 2
    assert vit["ci_low"] <= vit["iqm_normalized"] <= vit["ci_high"]
    assert vit["params_m"] == pytest.approx(22.0)
    assert rows["vit_bench"]["mean_normalized"] > rows["unet_baseline"]["mean_normalized"]


def test_aggregate_falls_back_to_metric_bounds_then_observed_range(store):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    ranges = S.resolve_ranges(results, {})
    assert ranges["biomass"] == (1.0, 1.6, "observed")
    assert ranges["burn_scars"] == (0.0, 1.0, "metric bounds")  # mIoU lives in [0, 1]
    norm = S.normalized_scores(results, ranges)
    assert max(norm["unet_baseline"]["biomass"]) == pytest.approx((1.6 - 1.4) / 0.6)
    assert min(norm["unet_baseline"]["biomass"]) == pytest.approx(0.0)


def test_task_without_repeats_uses_best_val():
    task = S.TaskResult("t", "classification", "val/Accuracy", "max", best_value=0.8)
    assert (task.scores, task.score_source, task.test_metric) == ([0.8], "val", "test/Accuracy")
    failed = S.TaskResult("t", "classification", "val/Accuracy", "max", status="failed")
    assert (failed.scores, failed.score_source) == ([], "none")


def test_write_summary_writes_tables_plots_and_report(store, tmp_path):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    report = S.write_summary(results, tmp_path / "summary", reference_ranges={"burn_scars": [0, 1]})
    out = tmp_path / "summary"
    assert report == out / "report.html"
    for name in ("aggregate.csv", "task_results.csv", "normalized_scores.csv", "repeat_scores.csv"):
        assert (out / name).stat().st_size > 0
    for name in ("task_scores.png", "hpo_convergence.png", "score_vs_throughput.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "task_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["experiment"], r["task"]) for r in rows} == {
        (e, t) for e in ("vit_bench", "unet_baseline") for t in ("burn_scars", "biomass")
    }
    repeats = (out / "repeat_scores.csv").read_text().splitlines()
    assert len(repeats) == 1 + 2 * (4 + 3)
    markdown = (out / "summary.md").read_text()
    assert "| experiment | backbone | tasks_scored" in markdown
    assert "reference [0, 1]" in markdown and "observed [1, 1.6]" in markdown


def test_write_summary_rejects_empty_results(tmp_path):
    with pytest.raises(S.ResultsNotFoundError, match="no experiments"):
        S.write_summary(S.BenchmarkResults(experiments=[]), tmp_path)


def test_write_summary_checks_reference_ranges_before_writing(store, tmp_path):
    results = S.load_results(store["uri"], ["vit_bench"])
    with pytest.raises(ValueError, match=r"reference_ranges\.biomass: low \(2\.0\) must be below high"):
        S.write_summary(results, tmp_path / "bad", reference_ranges={"biomass": [2, 1]})
    assert not (tmp_path / "bad").exists()
    with pytest.warns(UserWarning, match="unknown task 'biomas'") as caught:
        S.write_summary(results, tmp_path / "ok", reference_ranges={"biomas": [1, 2]})
    assert len([w for w in caught if "unknown task" in str(w.message)]) == 1


def test_one_experiment_has_no_observed_range(store):
    results = S.load_results(store["uri"], ["vit_bench"])
    ranges = S.resolve_ranges(results, {})
    assert ranges["biomass"][2] == "none" and math.isnan(ranges["biomass"][0])
    row = S.aggregate_table(results)[0]
    assert (row["tasks_scored"], row["tasks_total"]) == (1, 2)  # RMSE has no natural range: left out
    assert row["mean_normalized"] == pytest.approx(np.mean(SEG_TEST["vit_small"]))


def test_geobench_normalization_uses_observed_range_not_metric_bounds(store):
    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    ranges = S.resolve_ranges(results, {}, normalization="geobench")
    every_seg = SEG_TEST["vit_small"] + SEG_TEST["unet_scratch"]
    assert ranges["burn_scars"] == (min(every_seg), max(every_seg), "observed")  # not [0, 1]
    assert ranges["biomass"] == (1.0, 1.6, "observed")
    norm = S.normalized_scores(results, ranges)
    assert max(norm["vit_bench"]["burn_scars"]) == pytest.approx(1.0)
    assert min(norm["unet_baseline"]["burn_scars"]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"normalization must be one of \['auto', 'geobench'\]"):
        S.resolve_ranges(results, {}, normalization="geo")


def test_write_summary_reads_a_geobench_normalizer_file(store, tmp_path):
    """GEO-Bench's ``normalizer.json`` ({dataset: [min, max]}) keys ranges by dataset name."""
    import json

    results = S.load_results(store["uri"], ["vit_bench", "unet_baseline"])
    normalizer = tmp_path / "normalizer.json"
    normalizer.write_text(json.dumps({"m-burn_scars": [0.4, 0.7], "biomass": [1.0, 2.0]}))
    S.write_summary(results, tmp_path / "summary", reference_ranges=str(normalizer), normalization="geobench")
    with (tmp_path / "summary" / "normalized_scores.csv").open() as handle:
        rows = {r["experiment"]: r for r in csv.DictReader(handle)}
    assert rows["(range used)"]["burn_scars"] == "reference [0.4, 0.7]"
    expected = np.mean([(v - 0.4) / 0.3 for v in SEG_TEST["vit_small"]])
    assert float(rows["vit_bench"]["burn_scars"]) == pytest.approx(expected)
    with pytest.raises(FileNotFoundError, match=r"reference_ranges file .*missing\.json does not exist"):
        S.write_summary(results, tmp_path / "x", reference_ranges=str(tmp_path / "missing.json"))
    assert not (tmp_path / "x").exists()
