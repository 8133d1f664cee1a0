"""Tests for terratorch.iterate.results: the result data model and the MLflow helpers that need no store.

Loading a real MLflow run tree is tested in ``test_summarize.py`` (its ``store`` fixture).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from terratorch.iterate import results as R


def _task(name: str = "seg", **kwargs) -> R.TaskResult:
    return R.TaskResult(task=name, task_type="segmentation", metric="val/mIoU", direction="max", **kwargs)


def test_task_scores_prefer_repeats_then_best_validation_value():
    assert _task(test_scores=[0.5, 0.6], best_value=0.9).scores == [0.5, 0.6]
    assert _task(test_scores=[0.5]).score_source == "test"
    assert _task(best_value=0.9).scores == [0.9] and _task(best_value=0.9).score_source == "val"
    assert _task().scores == [] and _task().score_source == "none"
    assert _task().test_metric == "test/mIoU"


def test_benchmark_results_task_order_and_lookup():
    first = R.ExperimentResult("a", "a", "vit", tasks={"seg": _task("seg"), "cls": _task("cls")})
    second = R.ExperimentResult("b", "b", "unet", tasks={"reg": _task("reg"), "seg": _task("seg")})
    results = R.BenchmarkResults([first, second])
    assert results.task_names() == ["seg", "cls", "reg"]
    assert results.task_info("reg") is second.tasks["reg"]
    with pytest.raises(KeyError, match=r"No experiment has task 'nope'; tasks: \['seg', 'cls', 'reg'\]"):
        results.task_info("nope")


def test_resolve_tracking_uri(tmp_path):
    (tmp_path / "mlflow.db").touch()
    assert R.resolve_tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert R.resolve_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"
    assert R.resolve_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db?timeout=5").endswith("?timeout=5")
    with pytest.raises(FileNotFoundError, match=r"No MLflow store at .*empty.*storage directory"):
        R.resolve_tracking_uri(tmp_path / "empty")


def _run(number: int | None, status: str, value: float | None, start: int) -> SimpleNamespace:
    tags = {"terratorch.status": status}
    if number is not None:
        tags["terratorch.trial_number"] = str(number)
    metrics = {} if value is None else {"trial_value": value}
    return SimpleNamespace(
        data=SimpleNamespace(tags=tags, metrics=metrics),
        info=SimpleNamespace(start_time=start, run_id=f"run{start}", status="FINISHED"),
    )


def test_trials_keep_the_finished_record_of_a_resumed_trial():
    runs = [
        _run(0, "finished", 0.4, start=1),
        _run(1, "failed", None, start=2),  # interrupted, then re-run on resume
        _run(1, "finished", 0.6, start=3),
        _run(None, "pruned", 0.1, start=4),  # no number tag: its position is used
    ]
    trials = R._trials(runs)
    assert [(t.number, t.status, t.run_id) for t in trials] == [
        (0, "finished", "run1"),
        (1, "finished", "run3"),
        (3, "pruned", "run4"),
    ]
    task = _task(trials=trials)
    assert R._best_trial_value(task) == 0.6
    task.direction = "min"
    assert R._best_trial_value(task) == 0.4
    assert math.isnan(R._best_trial_value(_task()))


def test_labels_get_the_backbone_then_the_run_id_where_names_repeat():
    experiments = [
        R.ExperimentResult("", "bench", "vit", run_id="aaaaaaaa1"),
        R.ExperimentResult("", "bench", "unet", run_id="bbbbbbbb2"),
        R.ExperimentResult("", "base", "unet", run_id="cccccccc3"),
    ]
    R._unique_labels(experiments)
    assert [e.label for e in experiments] == ["bench (vit)", "bench (unet)", "base (unet)"]
    twins = [R.ExperimentResult("", "bench", "vit", run_id=i * 8) for i in "ab"]
    R._unique_labels(twins)
    assert [e.label for e in twins] == ["bench (vit, aaaaaaaa)", "bench (vit, bbbbbbbb)"]


class _Client:
    """The two MlflowClient calls experiment lookup makes."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def get_experiment_by_name(self, name: str):
        return SimpleNamespace(experiment_id=str(self.names.index(name))) if name in self.names else None

    def search_experiments(self):
        return [SimpleNamespace(name=n) for n in self.names]


def test_unknown_experiments_are_reported_together_with_close_matches():
    client = _Client(["vit_bench", "unet_baseline"])
    ids = R._experiment_ids(client, ["unet_baseline", "vit_bench"])
    assert ids == {"unet_baseline": "1", "vit_bench": "0"}
    with pytest.raises(R.ResultsNotFoundError) as caught:
        R._experiment_ids(client, ["vit_bnch", "vit_bench", "zzz"])
    assert str(caught.value) == (
        "experiment 'vit_bnch' not found. Did you mean 'vit_bench'? "
        "experiment 'zzz' not found. Known: ['vit_bench', 'unet_baseline']."
    )
    with pytest.raises(ValueError, match="Give at least one experiment name"):
        R._experiment_ids(client, [])
