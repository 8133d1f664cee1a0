"""Several workers on one benchmark: every trial, repetition and report runs exactly once.

2 and 4 ``terratorch iterate`` processes run the same config against the same stores, started
together or one after another while the first is training, on SQLite (one machine) and on
PostgreSQL (the fixture of ``tests/iterate/test_multiworker.py``; skipped without a server). The
harness (forked children, fake training, store readers) is the one of :mod:`test_kill_matrix`.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load("_kill_matrix_harness", HERE / "test_kill_matrix.py")
postgres_url = _load("_multiworker_fixtures", HERE.parent / "iterate" / "test_multiworker.py").postgres_url


@pytest.fixture
def zygote_and_roots(request, tmp_path_factory) -> Any:
    """The harness's zygote and demo data (one per session, shared with test_kill_matrix.py)."""
    return harness.shared_zygote(request, tmp_path_factory)


_ALONE: dict[str, Any] = {}


@pytest.fixture
def alone(zygote_and_roots, tmp_path_factory) -> dict[str, Any]:
    """The benchmark run by a single worker (made once per module)."""
    if not _ALONE:
        zygote, roots = zygote_and_roots
        folder = tmp_path_factory.mktemp("alone")
        bench = harness.Bench(zygote, folder, harness.bench_config(folder / "store", roots, n_trials=4))
        code, output = bench.run()
        assert code == 0, output[-4000:]
        _ALONE.update(sequences=bench.trial_sequences(), units=bench.units(), repeated=bench.repeated_rows())
        _ALONE.update(reports=bench.report_files(), best_values=bench.best_value_reports())
    return _ALONE


def _run_workers(bench: Any, n: int, stagger: bool) -> list[str]:
    """Start ``n`` workers (all at once, or each once the previous one trained something); wait for all."""
    started = []
    for _ in range(n):
        if stagger and started:
            calls = len(bench.call_log())
            deadline = time.monotonic() + 120
            while len(bench.call_log()) <= calls and time.monotonic() < deadline:
                time.sleep(0.1)
        # Long enough that workers started together overlap even when one waits on the store's locks.
        started.append(bench.start(env={"TRIAL_SLEEP": "0.4" if stagger else "1.5"}))
    outputs = []
    for process, out in started:
        process.join(600)
        assert process.exitcode == 0, out.read_text()[-4000:]
        outputs.append(out.read_text())
    return outputs


def _check_exactly_once(
    bench: Any, outputs: list[str], alone: dict[str, Any], *, stagger: bool = False
) -> None:
    calls = Counter((c["task"], c["lr"], c["seed"], c["test"]) for c in bench.call_log())
    assert max(calls.values()) == 1, calls  # no trial or repetition trained twice
    assert len(calls) == 2 * 4 + 2 * 1  # 2 tasks x 4 trials, 2 tasks x 1 repetition: none lost
    assert bench.trial_sequences() == alone["sequences"]  # same trials as one worker alone
    assert bench.units() == alone["units"]
    assert bench.repeated_rows() == alone["repeated"]
    assert bench.report_files() == alone["reports"]
    assert bench.best_value_reports() == alone["best_values"]  # each task reported once, as alone
    assert set(alone["best_values"].values()) == {1}
    assert sum("report written to" in o for o in outputs) == 1  # the report was written once
    assert sum("repetition scores written to" in o for o in outputs) == 1
    assert sum("new benchmark run" in o for o in outputs) == 1  # one benchmark run, joined by all
    if stagger:
        # A late worker may find every unit done (how much is left depends on the machine's load), but
        # it must join the running benchmark rather than start or redo anything.
        assert all("joining benchmark run" in o or "continuing benchmark run" in o for o in outputs[1:]), (
            outputs
        )
    else:
        assert len({c["pid"] for c in bench.call_log()}) > 1  # the work was shared


@pytest.mark.parametrize(
    ("workers", "stagger"),
    [
        pytest.param(2, False, id="2-together"),
        pytest.param(4, False, id="4-together"),
        pytest.param(2, True, id="2-staggered"),
    ],
)
def test_workers_on_sqlite_run_every_unit_once(workers, stagger, zygote_and_roots, alone, tmp_path):
    zygote, roots = zygote_and_roots
    bench = harness.Bench(zygote, tmp_path, harness.bench_config(tmp_path / "store", roots, n_trials=4))
    outputs = _run_workers(bench, workers, stagger)
    _check_exactly_once(bench, outputs, alone, stagger=stagger)
    with open(tmp_path / "store" / "optuna.db", "rb") as handle:
        assert handle.read(100)[18:20] == b"\x02\x02"  # WAL journal mode (file format bytes 18-19)


@pytest.mark.slow
def test_four_staggered_workers_on_sqlite(zygote_and_roots, alone, tmp_path):
    zygote, roots = zygote_and_roots
    bench = harness.Bench(zygote, tmp_path, harness.bench_config(tmp_path / "store", roots, n_trials=4))
    _check_exactly_once(bench, _run_workers(bench, 4, stagger=True), alone, stagger=True)


@pytest.mark.parametrize(
    ("workers", "stagger"), [pytest.param(2, False, id="2-together"), pytest.param(4, True, id="4-staggered")]
)
def test_workers_on_postgresql_run_every_unit_once(
    workers, stagger, zygote_and_roots, alone, tmp_path, postgres_url
):
    import optuna

    zygote, roots = zygote_and_roots
    config = harness.bench_config(tmp_path / "store", roots, n_trials=4, optuna_storage=postgres_url)
    bench = harness.Bench(zygote, tmp_path, config)
    outputs = _run_workers(bench, workers, stagger)
    _check_exactly_once(bench, outputs, alone, stagger=stagger)
    assert not (tmp_path / "store" / "optuna.db").exists()  # the studies live in PostgreSQL
    names = [s.study_name for s in optuna.get_all_study_summaries(postgres_url)]
    assert sum(not n.startswith("terratorch-claim:") for n in names) == 2  # one study per task
