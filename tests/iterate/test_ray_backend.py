"""The Ray backend on a local 2-CPU Ray instance: same run tree and report as the local backend,
a worker killed mid-trial, and the bad inputs (unreachable cluster, oversized trials, workers that
cannot import the custom modules, Ray missing).

Training is replaced by a fast fake that is imported as a *custom module* (``custom_modules_path``),
so it is active in the driver and in every Ray worker, the way users' registration modules are.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from terratorch.iterate.backends.ray import RayBackend, RayBackendError
from terratorch.iterate.config import build_plan, parse_config
from terratorch.iterate.runner import BenchmarkRunner

ray = pytest.importorskip("ray", reason="the Ray backend tests need the 'ray' extra")

FAKE_TRAINING = '''
"""Stand-in for Lightning training (imported as a custom module in the driver and in Ray workers)."""
import json, math, os, signal, time
from pathlib import Path

from terratorch.iterate import trial

SETTINGS = json.loads(Path(__file__).with_name("fake_settings.json").read_text())
if os.environ.get("TT_BREAK_IN_WORKER"):
    raise ImportError("this worker has no access to the team's backbone code")


def fake_run_training(resolved, *, metric, direction, seed, on_epoch=None, test=False, **kwargs):
    kill_flag = SETTINGS.get("kill_flag")
    if kill_flag and os.getpid() != SETTINGS["driver_pid"]:
        try:
            os.close(os.open(kill_flag, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)  # the first trial on a worker dies like an OOM kill
    time.sleep(SETTINGS.get("sleep", 0.0))
    lr = resolved["task"]["lr"]
    value = 1.0 - abs(math.log10(lr) + 2.0) / 4.0
    with open(SETTINGS["log"], "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "lr": lr, "seed": seed}) + "\\n")
    for epoch in range(2):
        on_epoch(epoch, {metric: value - 0.1 * (1 - epoch), "val/loss": 1.0 - value})
    return trial.TrainingResult(
        value=value, best_epoch=1, epochs=2, history=[value - 0.1, value], input_shape=(6, 32, 32)
    )


trial.run_training = fake_run_training
'''


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with 2 worker CPUs for the whole module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def fake_module(tmp_path, monkeypatch):
    """Write the fake-training custom module; returns ``(module path, settings dict, log path)``."""
    from terratorch.iterate import efficiency, trial

    monkeypatch.setattr(trial, "run_training", trial.run_training)  # restored after the test
    monkeypatch.setattr(efficiency, "measure_efficiency", lambda model, shape, **kw: {"params": 1.0})
    monkeypatch.setattr(trial, "build_task", lambda config: None)
    folder = tmp_path / "custom"
    folder.mkdir()
    module = folder / "fake_training.py"
    module.write_text(FAKE_TRAINING)
    log = tmp_path / "calls.jsonl"
    settings = {"driver_pid": os.getpid(), "log": str(log), "sleep": 0.2}
    (folder / "fake_settings.json").write_text(json.dumps(settings))
    return module, settings, log


def _config(helpers, storage, demo_roots, module, tasks=("seg", "cls"), n_trials=3):
    raw = helpers.base_config(
        storage, seg_root=demo_roots["segmentation"], cls_root=demo_roots["classification"]
    )
    raw["tasks"] = [t for t in raw["tasks"] if t["name"] in tasks]
    raw.update(n_trials=n_trials, custom_modules_path=str(module), run_repetitions=0, bayesian_search=False)
    raw["optimization_space"]["batch_size"] = {"min": 2, "max": 4, "type": "int"}
    return raw


def _run(raw, backend=None):
    lines: list[str] = []
    runner = BenchmarkRunner(build_plan(parse_config(copy.deepcopy(raw))), backend=backend, out=lines.append)
    return runner.run(summarize=True), runner, lines


def _tree(runner) -> dict:
    """The structure of a benchmark in MLflow: levels, names, tags, trial counts and states."""
    client = MlflowClient(runner.location.tracking_uri)
    runs = client.search_runs([runner.experiment_id], max_results=1000)
    by_level: dict[str, list] = {}
    for run in runs:
        by_level.setdefault(run.data.tags["terratorch.level"], []).append(run)
    (bench,) = by_level["benchmark"]
    tree = {"benchmark": (bench.info.status, bench.data.tags["terratorch.backbone"]), "tasks": {}}
    for task in by_level["task"]:
        assert task.data.tags["mlflow.parentRunId"] == bench.info.run_id
        trials = [t for t in by_level["trial"] if t.data.tags["mlflow.parentRunId"] == task.info.run_id]
        tags = task.data.tags
        tree["tasks"][task.info.run_name] = {
            "tags": {k: tags[k] for k in ("terratorch.status", "terratorch.metric", "terratorch.task_type")},
            "status": task.info.status,
            "trial_numbers": sorted(int(t.data.tags["terratorch.trial_number"]) for t in trials),
            "trial_states": sorted((t.info.status, t.data.tags["terratorch.status"]) for t in trials),
            "param_keys": sorted({k for t in trials for k in t.data.params}),
            "artifacts": sorted({a.path for t in trials for a in client.list_artifacts(t.info.run_id)}),
            "history_steps": sorted(
                {
                    tuple(m.step for m in client.get_metric_history(t.info.run_id, tags["terratorch.metric"]))
                    for t in trials
                }
            ),
        }
    return tree


def _report_files(outcome) -> list[str]:
    folder = Path(outcome.report).parent
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _results(runner, outcome) -> list[tuple]:
    client = MlflowClient(runner.location.tracking_uri)
    text = Path(client.download_artifacts(outcome.benchmark_run_id, "results.csv")).read_text()
    return [
        (r["task"], r["status"], r["n_complete"], r["n_failed"]) for r in csv.DictReader(io.StringIO(text))
    ]


def test_two_task_benchmark_on_ray_matches_the_local_backend(
    ray_instance, helpers, storage, mlflow_template, demo_roots, fake_module, tmp_path
):
    import shutil

    module, _, log = fake_module
    local_store = tmp_path / "local_store"
    local_store.mkdir()
    shutil.copy(mlflow_template, local_store / "mlflow.db")
    local, local_runner, _ = _run(_config(helpers, local_store, demo_roots, module))
    local_calls = log.read_text().splitlines()
    log.unlink()

    backend = RayBackend.from_plan(build_plan(parse_config(_config(helpers, storage, demo_roots, module))))
    backend.connect()
    remote, remote_runner, lines = _run(_config(helpers, storage, demo_roots, module), backend=backend)

    assert [t.status for t in remote.tasks] == ["finished", "finished"]
    assert _tree(remote_runner) == _tree(local_runner)
    assert _results(remote_runner, remote) == _results(local_runner, local)
    assert _report_files(remote) == _report_files(local)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == len(local_calls) == 6
    assert all(c["pid"] != os.getpid() for c in calls)  # trainings ran in Ray workers
    assert len({c["lr"] for c in calls}) == 6  # each worker's sampler copy is reseeded per trial
    client = MlflowClient(remote_runner.location.tracking_uri)
    trials = [r for r in client.search_runs([remote_runner.experiment_id]) if "batch_size" in r.data.params]
    assert len(trials) == 6 and all(t.data.params["batch_size"].isdigit() for t in trials)  # ints stay ints
    assert sum(line.startswith("task=seg trial=") for line in lines) == 3  # callbacks ran in the driver


def test_worker_killed_mid_trial_leaves_a_failed_trial_and_the_benchmark_finishes(
    ray_instance, helpers, storage, demo_roots, fake_module, tmp_path
):
    import optuna

    module, settings, _ = fake_module
    settings["kill_flag"] = str(tmp_path / "killed.flag")
    module.with_name("fake_settings.json").write_text(json.dumps(settings))
    raw = _config(helpers, storage, demo_roots, module, tasks=("seg",), n_trials=3)
    backend = RayBackend.from_plan(build_plan(parse_config(copy.deepcopy(raw))))
    outcome, runner, lines = _run(raw, backend=backend)

    assert (tmp_path / "killed.flag").exists()
    (task,) = outcome.tasks
    assert task.status == "finished" and task.n_complete == 3
    client = MlflowClient(runner.location.tracking_uri)
    trials = [
        r for r in client.search_runs([runner.experiment_id]) if r.data.tags["terratorch.level"] == "trial"
    ]
    failed = [t for t in trials if t.info.status == "FAILED"]
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert len(failed) == 1 and len(finished) == 3
    assert failed[0].data.tags["terratorch.status"] == "failed"
    assert failed[0].data.tags["terratorch.failure"] == "interrupted"
    retried = [t for t in finished if "terratorch.retry_of" in t.data.tags]
    assert len(retried) == 1 and retried[0].data.params["lr"] == failed[0].data.params["lr"]
    assert any("value=failed (interrupted)" in line for line in lines)
    name = client.get_run(task.task_run_id).data.tags["terratorch.study_name"]
    study = optuna.load_study(study_name=name, storage=runner.location.optuna_url)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    lost = [t for t in study.trials if t.state.name == "FAIL"]
    assert lost[0].user_attrs["lost_worker"] in ("WorkerCrashedError", "ActorDiedError", "NodeDiedError")
    bench = client.get_run(outcome.benchmark_run_id)
    assert bench.info.status == "FINISHED" and bench.data.tags["terratorch.state"] == "complete"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _main(args: list[str], capsys) -> tuple[int, str]:
    from terratorch.iterate.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code), capsys.readouterr().err


def _nothing_written(storage: Path) -> None:
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    assert client.get_experiment_by_name("unit") is None  # no experiment, no runs
    assert not (storage / "optuna.db").exists()  # no study


def test_unreachable_ray_address_fails_before_anything_is_written(
    ray_instance, helpers, storage, demo_roots, fake_module, tmp_path, capsys
):
    raw = _config(helpers, storage, demo_roots, fake_module[0])
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    address = f"127.0.0.1:{_closed_port()}"
    code, err = _main(["--config", str(config), "--backend", "ray", "--ray-address", address], capsys)
    assert code == 1
    assert f"Ray cluster at '{address}' is unreachable" in err and "ray start --head" in err
    _nothing_written(storage)


def test_trial_resources_larger_than_the_cluster(
    ray_instance, helpers, storage, demo_roots, fake_module, tmp_path, capsys
):
    raw = _config(helpers, storage, demo_roots, fake_module[0])
    raw["ray"] = {"cpus_per_trial": 64, "gpus_per_trial": 0}
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    code, err = _main(["--config", str(config)], capsys)  # a ray: block selects the Ray backend
    assert code == 1
    assert "one trial asks for 64 CPU and 0 GPU, but the largest node of the Ray cluster has 2 CPU" in err
    _nothing_written(storage)
    with pytest.raises(RayBackendError, match=r"asks for 1 CPU and 1 GPU.*0 GPU"):
        RayBackend(gpus_per_trial=1).connect()
    with pytest.raises(ValueError, match="max_concurrent_trials must be >= 1, got 0"):
        RayBackend(max_concurrent_trials=0)


def test_worker_that_cannot_import_the_custom_modules(
    ray_instance, helpers, storage, demo_roots, fake_module, tmp_path, capsys
):
    raw = _config(helpers, storage, demo_roots, fake_module[0])
    raw["ray"] = {"runtime_env": {"env_vars": {"TT_BREAK_IN_WORKER": "1"}}}  # the driver imports fine
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    code, err = _main(["--config", str(config), "--backend", "ray"], capsys)
    assert code == 1
    assert "cannot import custom module" in err and "fake_training.py" in err
    assert "no access to the team's backbone code" in err and "shared filesystem" in err
    _nothing_written(storage)


def test_missing_ray_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayBackendError, match=r"pip install 'terratorch\[ray\]'"):
        RayBackend().connect()


def test_invalid_address_and_local_flag_misuse(helpers, storage, demo_roots, fake_module, tmp_path, capsys):
    from terratorch.iterate.backends import get_backend

    assert isinstance(get_backend("ray"), RayBackend)  # registered; Ray itself loads on connect()
    with pytest.raises(RayBackendError, match="Ray address 'nonsense' is not valid; use host:port"):
        RayBackend(address="nonsense").connect()
    raw = _config(helpers, storage, demo_roots, fake_module[0])
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    code, err = _main(["--config", str(config), "--backend", "local", "--ray-address", "h:1"], capsys)
    assert code == 1 and "--ray-address is only used with --backend ray" in err


MULTI_DEVICE = Path(__file__).resolve().parents[2] / "examples/iterate/multi_device.yaml"


def test_multi_device_example_reaches_lightning_unchanged(monkeypatch):
    from terratorch.iterate import trial
    from terratorch.iterate.config import load_plan

    plan = load_plan(MULTI_DEVICE)
    assert plan.config.ray.gpus_per_trial == 2 and plan.config.ray.max_concurrent_trials == 4
    (task,) = plan.tasks
    trainer_args = task.resolved({"lr": 1e-3, "batch_size": 4})["trainer"]
    expected = {"devices": 2, "strategy": "ddp_spawn", "num_nodes": 1, "precision": "bf16-mixed"}

    # The trainer section handed to the CLI (the `terratorch fit` path) keeps these settings ...
    config = trial._trainer_config(trainer_args, [], checkpointing=False)
    assert {k: config[k] for k in expected} == expected and config["accelerator"] == "gpu"
    from lightning import Trainer

    from terratorch.iterate import lightning_bridge

    # ... and the CLI parser builds a real Trainer from them (on CPU here; nothing is spawned).
    parsed = lightning_bridge.parse_section("trainer", {**config, "accelerator": "cpu"})
    trainer = Trainer(**parsed.as_dict())
    assert (trainer.num_devices, trainer.num_nodes, trainer.precision) == (2, 1, "bf16-mixed")
    assert type(trainer.strategy).__name__ == "DDPStrategy" and trainer.strategy._start_method == "spawn"
