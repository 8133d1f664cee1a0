"""Several ``terratorch iterate`` processes sharing one benchmark through the Optuna RDB.

Two processes start the same config at the same moment against the same stores (SQLite; and
PostgreSQL when a server and a driver are available). They must share the studies: no trial runs
twice, ``n_trials`` is respected, each task is reported once and the report has the same shape as a
single-process run. Training is a fast fake patched in by a small driver script.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from terratorch.iterate import workers

DRIVER = """
import json, math, os, sys, time
from pathlib import Path
from types import SimpleNamespace
from terratorch.iterate import efficiency, trial

log = Path(sys.argv[2])
started = log.with_suffix(".pids")
workers = int(os.environ["WAIT_FOR_WORKERS"])

def fake(resolved, *, metric, direction, seed, on_epoch=None, **kwargs):
    # The first trials wait until every worker trains, so each process surely gets a share.
    with started.open("a") as handle:
        handle.write(f"{os.getpid()}\\n")
    deadline = time.monotonic() + 120
    while len(set(started.read_text().split())) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    lr = resolved["task"]["lr"]
    with log.open("a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "lr": lr, "seed": seed}) + "\\n")
    value = 1.0 - abs(math.log10(lr) + 2.0) / 4.0
    on_epoch(0, {metric: value})
    return trial.TrainingResult(value=value, best_epoch=0, epochs=1, history=[value], input_shape=(6, 32, 32))

trial.run_training = fake
trial.build_task = lambda config: SimpleNamespace(model=None)
efficiency.measure_efficiency = lambda model, shape, **kwargs: {"params": 1.0}
from terratorch.iterate.__main__ import main
sys.exit(main(["--config", sys.argv[1], "--hpo", *sys.argv[3:]]))
"""


def _config(helpers, storage, demo_roots, tmp_path, name="bench.yaml"):
    raw = helpers.base_config(
        storage, seg_root=demo_roots["segmentation"], cls_root=demo_roots["classification"]
    )
    raw.update(n_trials=4, run_repetitions=0, heartbeat_interval=1, bayesian_search=False)
    return helpers.write_config(tmp_path / name, raw)


def _start(tmp_path, config, log, extra=(), workers=2):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "TERRATORCH_NO_AUTOLOAD": "1", "MPLBACKEND": "Agg", "WAIT_FOR_WORKERS": str(workers)}
    return subprocess.Popen(
        [sys.executable, str(driver), str(config), str(log), *extra],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(processes) -> list[str]:
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-4000:]
        outputs.append(output)
    return outputs


def _layout(storage: Path) -> dict:
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("unit")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    level = {r.info.run_id: r.data.tags["terratorch.level"] for r in runs}
    benchmarks = [r for r in runs if level[r.info.run_id] == "benchmark"]
    tasks = [r for r in runs if level[r.info.run_id] == "task"]
    layout = {"benchmarks": len(benchmarks), "tasks": {}}
    for task in tasks:
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == task.info.run_id]
        history = client.get_metric_history(task.info.run_id, "best_value")
        layout["tasks"][task.info.run_name] = {
            "status": (task.info.status, task.data.tags["terratorch.status"]),
            "trials": len(trials),
            "trial_states": sorted(t.info.status for t in trials),
            "best_value_reports": len(history),
        }
    (bench,) = benchmarks
    text = Path(client.download_artifacts(bench.info.run_id, "results.csv")).read_text()
    layout["results"] = [
        (r["task"], r["status"], r["n_complete"], r["n_failed"]) for r in csv.DictReader(io.StringIO(text))
    ]
    return layout


def _trial_numbers(storage: Path, task: str) -> list[int]:
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("unit")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`terratorch.level` = 'trial' and tags.`terratorch.task` = '{task}'",
    )
    return sorted(int(r.data.tags["terratorch.trial_number"]) for r in runs)


def _report_files(storage: Path) -> list[str]:
    (folder,) = list((storage / "reports").iterdir())
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


_REFERENCE: dict[str, tuple[dict, list[str]]] = {}  # the single-process run, made once per session


def _single_process_reference(helpers, mlflow_template, demo_roots, tmp_path) -> tuple[dict, list[str]]:
    if "alone" not in _REFERENCE:
        alone = tmp_path / "alone"
        (alone / "store").mkdir(parents=True)
        shutil.copy(mlflow_template, alone / "store" / "mlflow.db")
        config = _config(helpers, alone / "store", demo_roots, alone)
        _finish([_start(alone, config, alone / "calls.jsonl", workers=1)])
        _REFERENCE["alone"] = (_layout(alone / "store"), _report_files(alone / "store"))
    return _REFERENCE["alone"]


def _check_shared_run(
    storage: Path, log: Path, outputs: list[str], reference: tuple[dict, list[str]]
) -> None:
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 8  # 2 tasks x 4 trials: none trained twice, none beyond n_trials
    assert len({c["pid"] for c in calls}) == 2  # both processes trained
    assert len({(c["lr"], c["seed"]) for c in calls}) == 8
    layout = _layout(storage)
    for name in ("seg", "cls"):
        assert _trial_numbers(storage, name) == sorted(set(_trial_numbers(storage, name)))  # none twice
        assert layout["tasks"][name]["best_value_reports"] == 1  # reported once
    assert sum("joining benchmark run" in o or "continuing benchmark run" in o for o in outputs) == 1
    assert layout == reference[0]
    assert _report_files(storage) == reference[1]


def test_two_processes_share_a_sqlite_study(helpers, storage, mlflow_template, demo_roots, tmp_path):
    config = _config(helpers, storage, demo_roots, tmp_path)
    log = tmp_path / "calls.jsonl"
    outputs = _finish([_start(tmp_path, config, log), _start(tmp_path, config, log)])
    reference = _single_process_reference(helpers, mlflow_template, demo_roots, tmp_path)
    _check_shared_run(storage, log, outputs, reference)
    with open(storage / "optuna.db", "rb") as handle:
        assert handle.read(100)[18:20] == b"\x02\x02"  # WAL journal mode (file format bytes 18-19)


# -- PostgreSQL ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture
def postgres_url(tmp_path):
    """A throw-away PostgreSQL server (initdb into tmp_path, run as 'nobody' when we are root)."""
    import importlib.util

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip(
            "PostgreSQL is installed but the Python driver psycopg2 is not (pip install psycopg2-binary)"
        )
    base = Path(tempfile.mkdtemp(prefix="terratorch-pg-"))  # pytest's tmp root is private to root
    data = base / "pg"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        os.chmod(base, 0o755)
        shutil.chown(data, "nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"], check=True, capture_output=True
    )
    port = _free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    log = data / "server.log"  # the server must not inherit our pipes, or run() waits for it forever
    start = [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


def test_two_processes_share_a_postgresql_study(
    helpers, storage, mlflow_template, demo_roots, tmp_path, postgres_url
):
    import optuna

    config = _config(helpers, storage, demo_roots, tmp_path)
    log = tmp_path / "calls.jsonl"
    extra = ["--storage", postgres_url]
    outputs = _finish([_start(tmp_path, config, log, extra), _start(tmp_path, config, log, extra)])
    reference = _single_process_reference(helpers, mlflow_template, demo_roots, tmp_path)
    _check_shared_run(storage, log, outputs, reference)
    assert not (storage / "optuna.db").exists()  # the studies live in PostgreSQL
    names = [s.study_name for s in optuna.get_all_study_summaries(postgres_url)]
    assert sum(not n.startswith(workers.CLAIM_PREFIX) for n in names) == 2  # one study per task


# -- coordination primitives and bad input ------------------------------------------------------------
def test_claims_are_won_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert workers.claim(url, "bench/seg/reported/3-0-0") is True
    assert workers.claim(url, "bench/seg/reported/3-0-0") is False
    assert workers.claim(url, "bench/seg/reported/4-0-0") is True


def test_surplus_trial_is_the_one_that_started_last(tmp_path):
    import optuna

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    first, second, third = study.ask(), study.ask(), study.ask()
    study.tell(first, 1.0)
    assert not workers.is_surplus(study, second.number, n_trials=2)
    assert workers.is_surplus(study, third.number, n_trials=2)
    workers.mark_surplus(third)
    study.tell(third, state=optuna.trial.TrialState.FAIL)
    assert [t.number for t in workers.counted_trials(study)] == [0, 1]  # surplus/killed fails do not count


def test_wait_for_names_what_never_appeared():
    with pytest.raises(TimeoutError, match="another worker claimed the task run but it did not appear"):
        workers.wait_for(lambda: None, "the task run", timeout=0.2, poll=0.05)


def test_unreachable_database_fails_before_anything_is_written(
    helpers, storage, demo_roots, tmp_path, capsys
):
    import importlib.util

    from terratorch.iterate.__main__ import main

    config = _config(helpers, storage, demo_roots, tmp_path)
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{_free_port()}/optuna"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--storage", url])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "optuna_storage" in err
    if importlib.util.find_spec("psycopg2") is None:
        assert "database driver for postgresql+psycopg2 is not installed (psycopg2)" in err
    else:
        assert f"database {url} is unreachable" in err
    with pytest.raises(SystemExit):
        main(["--config", str(config), "--storage", f"sqlite:///{tmp_path / 'missing' / 'optuna.db'}"])
    assert "the folder of SQLite database" in capsys.readouterr().err
    assert MlflowClient(f"sqlite:///{storage / 'mlflow.db'}").get_experiment_by_name("unit") is None
    assert not (storage / "optuna.db").exists()
