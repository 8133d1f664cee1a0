"""Coordination primitives of several ``terratorch iterate`` workers, and the PostgreSQL fixture.

The end-to-end checks (2 and 4 workers on SQLite and PostgreSQL, started together or staggered:
no unit runs twice, each task is reported once, the results equal a single worker's) are in
``tests/reliability/test_concurrency.py``, which uses :func:`postgres_url` from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from terratorch.iterate import workers


def _config(helpers, storage, demo_roots, tmp_path, name="bench.yaml"):
    raw = helpers.base_config(
        storage, seg_root=demo_roots["segmentation"], cls_root=demo_roots["classification"]
    )
    raw.update(n_trials=4, run_repetitions=0, heartbeat_interval=1, bayesian_search=False)
    return helpers.write_config(tmp_path / name, raw)


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
