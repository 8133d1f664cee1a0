"""Resumption after a real SIGKILL: finished trials kept, the interrupted one re-run, nothing duplicated.

A subprocess runs ``terratorch iterate`` with the training replaced by a fast fake (so the test is
about bookkeeping, not Lightning) that hangs in its second call; the test kills it with SIGKILL while
that trial runs, starts the same command again and inspects the Optuna and MLflow stores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
from mlflow import MlflowClient

DRIVER = """
import json, math, os, sys, time
from pathlib import Path
from terratorch.iterate import trial

log = Path(sys.argv[2])

def fake(resolved, *, metric, direction, seed, on_epoch=None, **kwargs):
    with log.open("a") as handle:
        handle.write(json.dumps({"seed": seed, "lr": resolved["task"]["lr"], "pid": os.getpid()}) + "\\n")
    if len(log.read_text().splitlines()) == int(os.environ.get("HANG_ON_CALL", "0")):
        time.sleep(600)  # killed here
    value = 1.0 - abs(math.log10(resolved["task"]["lr"]) + 2.0) / 4.0
    on_epoch(0, {metric: value})
    return trial.TrainingResult(value=value, best_epoch=0, epochs=1, history=[value])

trial.run_training = fake
from terratorch.iterate.__main__ import main
sys.exit(main(["--config", sys.argv[1], "--hpo"]))
"""


def _calls(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_sigkill_mid_trial_then_rerun_continues(helpers, storage, demo_roots, tmp_path):
    raw = helpers.base_config(storage, seg_root=demo_roots["segmentation"])
    raw.update(n_trials=3, heartbeat_interval=1, run_repetitions=0)
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "HANG_ON_CALL": "2", "TERRATORCH_NO_AUTOLOAD": "1"}
    process = subprocess.Popen(
        [sys.executable, str(driver), str(config), str(log)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 400
    while len(_calls(log)) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    assert len(_calls(log)) == 2, process.communicate()[0] if process.poll() is not None else "timeout"
    time.sleep(1.5)  # let a heartbeat land while the second trial is running
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    interrupted = _calls(log)[1]
    env["HANG_ON_CALL"] = "0"
    rerun = subprocess.run(
        [sys.executable, str(driver), str(config), str(log)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "continuing benchmark run" in rerun.stdout
    assert "was interrupted; its trial is queued again" in rerun.stdout

    calls = _calls(log)
    assert len(calls) == 4  # 2 before the kill, then the interrupted trial again and the last one
    assert calls[2]["lr"] == interrupted["lr"] and calls[2]["seed"] == interrupted["seed"]

    tracking = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = tracking.get_experiment_by_name("unit")
    runs = tracking.search_runs([experiment.experiment_id], max_results=100)
    by_level: dict[str, list] = {}
    for run in runs:
        by_level.setdefault(run.data.tags["terratorch.level"], []).append(run)
    assert len(by_level["benchmark"]) == 1 and len(by_level["task"]) == 1
    trials = by_level["trial"]
    assert len(trials) == 4  # nothing deleted: the killed run is kept
    killed = [r for r in trials if r.info.status == "KILLED"]
    finished = [r for r in trials if r.info.status == "FINISHED"]
    assert len(killed) == 1 and len(finished) == 3
    assert killed[0].data.tags["terratorch.failure"] == "interrupted"
    assert float(killed[0].data.params["lr"]) == interrupted["lr"]
    retried = [r for r in finished if "terratorch.retry_of" in r.data.tags]
    assert len(retried) == 1 and retried[0].data.params["lr"] == killed[0].data.params["lr"]
    assert retried[0].data.tags["terratorch.seed"] == killed[0].data.tags["terratorch.seed"]
    assert len({r.data.tags["terratorch.trial_number"] for r in finished}) == 3  # no duplicates
    assert sorted(r.data.tags["terratorch.trial_index"] for r in finished) == ["0", "1", "2"]

    study_name = by_level["task"][0].data.tags["terratorch.study_name"]
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage / 'optuna.db'}")
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
