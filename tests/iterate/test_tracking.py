"""Storage resolution, reachability checks and the MLflow wrapper (terratorch.iterate.tracking)."""

from __future__ import annotations

import pytest

from terratorch.iterate.tracking import Tracker, check_storage, flatten, resolve_storage


def test_directory_storage(tmp_path):
    location = resolve_storage(str(tmp_path / "store"))
    assert location.tracking_uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert location.optuna_url == f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    assert location.artifact_location == (tmp_path / "store" / "artifacts").as_uri()
    assert location.local_dir == tmp_path / "store"
    assert not (tmp_path / "store").exists()  # resolving creates nothing


def test_sqlite_uri_keeps_optuna_in_its_own_file(tmp_path):
    location = resolve_storage(f"sqlite:///{tmp_path}/runs.db")
    assert location.tracking_uri == f"sqlite:///{tmp_path}/runs.db"
    assert location.optuna_url == f"sqlite:///{tmp_path}/runs_optuna.db"


@pytest.mark.parametrize("uri", ["postgresql://user@db:5432/mlflow", "http://mlflow.example:5000"])
def test_server_uris_are_used_as_given(uri):
    location = resolve_storage(uri, optuna_storage="sqlite:///optuna.db")
    assert location.tracking_uri == uri and location.optuna_url == "sqlite:///optuna.db"
    assert location.artifact_location is None


def test_check_storage(tmp_path):
    assert check_storage(str(tmp_path / "new" / "folder")) == []
    (tmp_path / "file").write_text("x")
    assert "which is a file" in check_storage(str(tmp_path / "file" / "store"))[0]
    assert "does not exist" in check_storage(f"sqlite:///{tmp_path}/missing/x.db")[0]
    assert "unreachable" in check_storage("http://127.0.0.1:9", timeout=1)[0]
    assert "unsupported storage_uri scheme 'ftp'" in check_storage("ftp://host/x")[0]
    problems = check_storage("postgresql://user@127.0.0.1:9/db", timeout=1)
    assert problems and ("unreachable" in problems[0] or "not installed" in problems[0])


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {}}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "x",
        "e": "{}",
    }


def test_tracker_runs_params_and_nesting(storage):
    tracker = Tracker(resolve_storage(str(storage)))
    experiment = tracker.experiment_id("exp")
    assert tracker.experiment_id("exp") == experiment
    parent = tracker.create_run(experiment, "parent", {"terratorch.level": "benchmark"})
    child = tracker.create_run(experiment, "child", {"terratorch.level": "task"}, parent_run_id=parent)
    assert [r.info.run_id for r in tracker.children(experiment, parent, "task")] == [child]
    tracker.log_params(child, {"lr": 0.1, "nested": {"k": 2}})
    tracker.log_params(child, {"lr": 0.1})  # same value again: fine
    tracker.log_params(child, {"lr": 0.2})  # MLflow params are immutable: the new value becomes a tag
    run = tracker.get_run(child)
    assert run.data.params == {"lr": "0.1", "nested.k": "2"}
    assert run.data.tags["terratorch.param.lr"] == "0.2"
    tracker.log_metrics(child, {"val/mIoU": 0.5, "bad": float("nan")}, step=3)
    assert tracker.get_run(child).data.metrics == {"val/mIoU": 0.5}
    tracker.set_status(child, "KILLED")
    assert tracker.get_run(child).info.status == "KILLED"
    tracker.set_status(child, "RUNNING")
    assert tracker.get_run(child).info.status == "RUNNING"
