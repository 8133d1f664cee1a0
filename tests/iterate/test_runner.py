"""The benchmark loop with a fake training function: MLflow layout, failures, continuation.

The real Lightning training is covered by test_trial.py and the end-to-end tests; here
``run_training`` is replaced (fixture ``fake_training``) so the bookkeeping is tested quickly.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re

import pytest
from mlflow import MlflowClient

from terratorch.iterate import seeds
from terratorch.iterate.config import build_plan, parse_config
from terratorch.iterate.runner import BenchmarkRunner


def _run(raw, **kwargs):
    lines: list[str] = []
    runner = BenchmarkRunner(build_plan(parse_config(copy.deepcopy(raw))), out=lines.append)
    kwargs.setdefault("summarize", False)
    outcome = runner.run(**kwargs)
    return outcome, lines, runner


def _runs(runner, level=None):
    client = MlflowClient(runner.location.tracking_uri)
    runs = client.search_runs(
        [runner.experiment_id], max_results=1000, order_by=["attributes.start_time ASC"]
    )
    return [r for r in runs if level is None or r.data.tags.get("terratorch.level") == level]


def _artifact(runner, run_id, name) -> str:
    client = MlflowClient(runner.location.tracking_uri)
    path = client.download_artifacts(run_id, name)
    with open(path) as handle:
        return handle.read()


@pytest.fixture
def raw(helpers, storage):
    config = helpers.base_config(storage)
    config["run_repetitions"] = 2
    return config


def test_mlflow_layout_of_a_benchmark(raw, fake_training):
    outcome, lines, runner = _run(raw)
    (bench,) = _runs(runner, "benchmark")
    assert bench.info.run_id == outcome.benchmark_run_id and bench.info.status == "FINISHED"
    assert bench.data.tags["terratorch.backbone"] == "timm_resnet18"
    assert bench.data.tags["terratorch.master_seed"] == "7"
    assert bench.data.params["n_trials"] == "3" and bench.data.params["tasks"].startswith("[")
    assert json.loads(_artifact(runner, bench.info.run_id, "versions.json"))["optuna"]
    assert "experiment_name: unit" in _artifact(runner, bench.info.run_id, "config.yaml")
    results = list(csv.DictReader(io.StringIO(_artifact(runner, bench.info.run_id, "results.csv"))))
    assert results[0]["task"] == "seg" and results[0]["status"] == "finished"
    assert bench.data.metrics["efficiency/gflops"] == 0.5  # from the (faked) efficiency module

    (task,) = _runs(runner, "task")
    tags = task.data.tags
    assert tags["mlflow.parentRunId"] == bench.info.run_id and task.info.run_name == "seg"
    assert (tags["terratorch.task_type"], tags["terratorch.metric"], tags["terratorch.direction"]) == (
        "segmentation",
        "val/mIoU",
        "max",
    )
    assert tags["terratorch.status"] == "finished"
    trials = _runs(runner, "trial")
    assert len(trials) == 3
    best = max(t.data.metrics["trial_value"] for t in trials)
    assert task.data.metrics["best_value"] == pytest.approx(best)
    assert float(task.data.params["best/lr"]) == pytest.approx(outcome.tasks[0].best_params["lr"])

    for number, trial in enumerate(trials):
        tags = trial.data.tags
        assert tags["mlflow.parentRunId"] == task.info.run_id and tags["terratorch.status"] == "finished"
        assert tags["terratorch.trial_number"] == str(number)
        assert tags["terratorch.seed"] == str(seeds.trial_seed(7, "seg", number))
        assert "lr" in trial.data.params and tags["terratorch.trial_index"] == str(number)
        history = MlflowClient(runner.location.tracking_uri).get_metric_history(trial.info.run_id, "val/mIoU")
        assert [m.step for m in history] == [0, 1]
        config_text = _artifact(runner, trial.info.run_id, "trial_config.yaml")
        assert f"seed: {tags['terratorch.seed']}" in config_text and "lr:" in config_text
    assert [c["seed"] for c in fake_training.calls[:3]] == [seeds.trial_seed(7, "seg", n) for n in range(3)]

    repeats = _runs(runner, "repeat")
    assert [r.data.tags["terratorch.repeat_index"] for r in repeats] == ["0", "1"]
    assert all(r.data.tags["mlflow.parentRunId"] == task.info.run_id for r in repeats)
    assert all("test/mIoU" in r.data.metrics for r in repeats)
    assert all(c["test"] for c in fake_training.calls[3:])
    rows = list(csv.DictReader(outcome.repeats_csv.open()))
    assert list(rows[0]) == [
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
    assert [r["seed"] for r in rows] == [str(seeds.repeat_seed(7, "seg", i)) for i in range(2)]
    assert {r["run_id"] for r in rows} == {r.info.run_id for r in repeats}
    assert "repeated_results.csv" in [
        a.path for a in MlflowClient(runner.location.tracking_uri).list_artifacts(bench.info.run_id)
    ]

    progress = [line for line in lines if line.startswith("task=seg trial=")]
    assert len(progress) == 3
    assert re.fullmatch(r"task=seg trial=3/3 value=[-\d.e]+ best=[-\d.e]+ \(\d+\.\d+s\)", progress[-1])


def test_failing_trials_are_recorded_and_the_benchmark_continues(raw, fake_training):
    raw["run_repetitions"] = 0
    raw["n_trials"] = 5
    fake_training.fail_if = lambda resolved: resolved["task"]["lr"] > 0.01
    outcome, lines, runner = _run(raw)
    trials = _runs(runner, "trial")
    failed = [t for t in trials if t.data.tags["terratorch.status"] == "failed"]
    finished = [t for t in trials if t.data.tags["terratorch.status"] == "finished"]
    assert len(trials) == 5 and failed and finished  # failures count towards n_trials, no retry
    for run in failed:
        assert run.info.status == "FAILED"
        assert "FloatingPointError: loss is NaN" in _artifact(runner, run.info.run_id, "traceback.txt")
    assert outcome.tasks[0].status == "finished" and outcome.tasks[0].n_failed == len(failed)
    assert any("value=failed (FloatingPointError: loss is NaN" in line for line in lines)


def test_task_whose_trials_all_fail_is_failed_and_others_finish(helpers, storage, demo_roots, fake_training):
    raw = helpers.base_config(storage, cls_root=demo_roots["classification"])
    fake_training.fail_if = lambda resolved: "Segmentation" in resolved["datamodule"]["class_path"]
    outcome, lines, runner = _run(raw)
    status = {t.name: t.status for t in outcome.tasks}
    assert status == {"seg": "failed", "cls": "finished"}
    assert outcome.failed_tasks == ["seg"]
    tasks = {r.info.run_name: r for r in _runs(runner, "task")}
    assert tasks["seg"].data.tags["terratorch.status"] == "failed" and tasks["seg"].info.status == "FAILED"
    assert tasks["cls"].data.tags["terratorch.status"] == "finished"
    assert any("task=seg: all trials failed; last error: FloatingPointError" in line for line in lines)


def test_same_config_continues_only_when_asked(raw, fake_training):
    raw["run_repetitions"] = 0
    raw["n_trials"] = 2
    first, _, runner = _run(raw)
    assert len(fake_training.calls) == 2
    raw["n_trials"] = 3  # not part of the config hash
    again, lines, _ = _run(raw, continue_existing=True)
    assert again.benchmark_run_id == first.benchmark_run_id
    assert len(fake_training.calls) == 3  # only the missing trial ran
    assert any(line.startswith(f"continuing benchmark run {first.benchmark_run_id}") for line in lines)
    fresh, _, _ = _run(raw)  # complete + no flag: a new measurement
    assert fresh.benchmark_run_id != first.benchmark_run_id
    assert len(_runs(runner, "benchmark")) == 2
    assert len(_runs(runner, "trial")) == 6  # nothing deleted


def test_repeat_phase_reuses_the_finished_benchmark(raw, fake_training):
    raw["run_repetitions"] = 1
    first, _, runner = _run(raw, repeat=False)
    assert not _runs(runner, "repeat")
    second, _, _ = _run(raw, hpo=False, repeat=True)
    assert second.benchmark_run_id == first.benchmark_run_id
    assert len(_runs(runner, "repeat")) == 1 and len(_runs(runner, "trial")) == 3
    third, _, _ = _run(raw, hpo=False, repeat=True)  # finished repetitions are not redone
    assert len(_runs(runner, "repeat")) == 1 and third.repeats_csv is not None


def test_sampler_is_seeded_from_the_master_seed(helpers, storage, mlflow_template, fake_training):
    import shutil

    sampled = []
    for name in ("a", "b"):
        (storage / name).mkdir()
        shutil.copy(mlflow_template, storage / name / "mlflow.db")
        raw = helpers.base_config(storage / name)
        _run(raw, repeat=False)
        sampled.append([c["resolved"]["task"]["lr"] for c in fake_training.calls])
        fake_training.calls.clear()
    assert sampled[0] == sampled[1]


def test_parent_run_id_must_be_a_benchmark_run(raw, fake_training):
    raw["run_repetitions"] = 0
    raw["n_trials"] = 1
    raw["optimization_space"] = {}
    first, _, runner = _run(raw)
    task_run = _runs(runner, "task")[0].info.run_id
    with pytest.raises(ValueError, match="is not a benchmark run of experiment 'unit'"):
        _run(raw, parent_run_id=task_run)
    again, _, _ = _run(raw, parent_run_id=first.benchmark_run_id)
    assert again.benchmark_run_id == first.benchmark_run_id


def test_pruning_watches_the_task_metric(raw, fake_training):
    raw["run_repetitions"] = 0
    raw["n_trials"] = 8
    raw["tasks"][0]["early_prune"] = True
    outcome, lines, runner = _run(raw)
    trials = _runs(runner, "trial")
    pruned = [t for t in trials if t.data.tags["terratorch.status"] == "pruned"]
    assert len(trials) == 8 and pruned  # pruned trials count towards n_trials
    assert all(t.info.status == "FINISHED" for t in pruned)
    assert outcome.tasks[0].n_pruned == len(pruned) and outcome.tasks[0].status == "finished"
    assert any(re.search(r"value=pruned@epoch1 ", line) for line in lines)
    finished = [
        t.data.metrics["trial_value"] for t in trials if t.data.tags["terratorch.status"] == "finished"
    ]
    assert outcome.tasks[0].best_value == pytest.approx(max(finished))
    # pruned trials were worse than the median at epoch 1: pruning compares val/mIoU in the max direction
    study = runner._study(runner.plan.tasks[0], outcome.benchmark_run_id)
    for trial in study.trials:
        if trial.state.name == "PRUNED":
            assert trial.intermediate_values[1] < max(finished)


def test_optuna_failure_tracebacks_only_with_verbose(raw, fake_training, capsys, caplog):
    import logging

    raw["run_repetitions"] = 0
    raw["n_trials"] = 2
    fake_training.fail_if = lambda resolved: True
    with caplog.at_level(logging.DEBUG, logger="terratorch.iterate"):
        _run(raw)
    assert "Traceback" not in capsys.readouterr().err
    failed = [
        r for r in caplog.records if r.name == "terratorch.iterate" and "failed with par" in r.getMessage()
    ]
    assert failed and all(r.levelno == logging.DEBUG and r.exc_info is None for r in failed)

    caplog.clear()
    runner = BenchmarkRunner(
        build_plan(parse_config(copy.deepcopy(raw))), out=lambda line: None, verbose=True
    )
    with caplog.at_level(logging.WARNING, logger="terratorch.iterate"):
        runner.run(summarize=False, continue_existing=True)
        runner.run(summarize=False)  # a new benchmark run: its trials fail again, now verbosely
    failed = [
        r for r in caplog.records if r.name == "terratorch.iterate" and "failed with par" in r.getMessage()
    ]
    assert failed and all(r.levelno == logging.WARNING and r.exc_info for r in failed)


def test_repetitions_take_a_context_not_the_runner(raw, fake_training):
    from terratorch.iterate.repeat import RepeatContext, run_repetitions

    raw["run_repetitions"] = 2
    outcome, _, runner = _run(raw, repeat=False)
    context = RepeatContext.of(runner, outcome.benchmark_run_id)
    path, text = run_repetitions(context, outcome.tasks)
    assert path is not None and path.read_bytes().decode() == text and len(text.splitlines()) == 3
    _, again_text = run_repetitions(context, outcome.tasks)  # every unit done: nothing reruns
    assert again_text == text and len(_runs(runner, "repeat")) == 2


def test_demo_data_writes_detection_and_geobench_layouts(tmp_path):
    """``demo_data`` tasks ``object_detection`` and GEO-Bench names (``m-brick-kiln``) write their layouts."""
    from types import SimpleNamespace

    from terratorch.iterate.config import DemoDataSpec
    from terratorch.iterate.runner import prepare_demo_data

    specs = [
        DemoDataSpec(
            task="object_detection", root=str(tmp_path / "det"), n_train=2, n_val=1, n_test=1, size=96
        ),
        DemoDataSpec(task="m-brick-kiln", root=str(tmp_path / "kiln"), n_train=2, size=16),
    ]
    printed: list[str] = []
    prepare_demo_data(SimpleNamespace(demo_data=specs), printed.append)
    assert (tmp_path / "det" / "annotations" / "train.json").is_file()
    assert len(list((tmp_path / "det" / "images").glob("*.tif"))) == 4
    kiln = tmp_path / "kiln" / "classification_v1.0" / "m-brick-kiln"
    assert (kiln / "task_specs.pkl").is_file() and len(list(kiln.glob("*.hdf5"))) == 6
    assert printed == [f"generating demo data: {s.task} -> {s.root}" for s in specs]
    bad = DemoDataSpec(task="object_detection", root=str(tmp_path / "bad"), num_classes=3)
    with pytest.raises(ValueError, match="always has 2 classes"):
        prepare_demo_data(SimpleNamespace(demo_data=[bad]), printed.append)
