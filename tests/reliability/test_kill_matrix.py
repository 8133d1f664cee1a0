"""A benchmark SIGKILLed at each boundary and run again ends exactly like an uninterrupted one.

Each case runs ``terratorch iterate`` (all phases: HPO, repetitions, report) in a real child
process that SIGKILLs itself at a named point (the test hook ``TERRATORCH_TEST_KILL_AT``, see
:func:`terratorch.iterate.workers.kill_point`), then runs the same command again and compares the
stores with an uninterrupted run of the same config: the same trial sequence (index, parameters,
seed, value) per task, the same repetitions and report, no unit finished twice, none lost, and no
file overwritten with another run's data.

Training is a fast deterministic fake (the bookkeeping is under test, not Lightning). Children are
forked from a "zygote" process that imported the toolkit, validated the config once and created
empty migrated databases, so a child starts in milliseconds instead of paying half a minute of
imports, parser construction and schema migrations; each child is still a separate process,
killed by a real SIGKILL. :mod:`test_concurrency` reuses this harness.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
# Runs in the child: fake training, then the real command line. ``ARGV``, ``ENV``, ``CWD`` and
# ``OUT`` come from the namespace the parent passes to ``exec``.
CHILD = r"""
import json, math, os, sys, time
from types import SimpleNamespace

os.chdir(CWD)
os.environ.update(ENV)
fd = os.open(OUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(fd, 1)
os.dup2(fd, 2)
sys.stdout = open(1, "w", buffering=1, closefd=False)
sys.stderr = open(2, "w", buffering=1, closefd=False)

from terratorch.iterate import efficiency, trial

def fake(resolved, *, metric, direction, seed, on_epoch=None, test=False, **kwargs):
    lr = resolved["task"]["lr"]
    task = resolved["datamodule"]["class_path"].rsplit(".", 1)[-1]
    with open(os.environ["CALL_LOG"], "a") as handle:
        record = {"pid": os.getpid(), "task": task, "lr": lr, "seed": seed, "test": test}
        handle.write(json.dumps(record) + "\n")
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
    value = 1.0 - abs(math.log10(lr) + 2.0) / 4.0 + (seed % 997) / 1e6
    for epoch in range(2):
        on_epoch(epoch, {metric: value - 0.1 * (1 - epoch), "val/loss": 1.0 - value})
    scores = {metric.replace("val/", "test/"): value - 0.05, "test/loss": 0.5} if test else {}
    return trial.TrainingResult(
        value=value, best_epoch=1, epochs=2, history=[value - 0.1, value], test_metrics=scores,
        input_shape=(6, 32, 32),
    )

trial.run_training = fake
trial.build_task = lambda config: SimpleNamespace(model=None)
efficiency.measure_efficiency = lambda model, shape, **kwargs: {"params": 1.0, "gflops": 0.5}

from terratorch.iterate.__main__ import main
try:
    code = main(ARGV)
except SystemExit as stop:
    code = stop.code
sys.stdout.flush()
sys.stderr.flush()
os._exit(int(code or 0))
"""


# The zygote: imports and warms up once, then forks one child per request and reports its exit code.
ZYGOTE = r"""
import os, sys, tempfile
from pathlib import Path

os.environ.update(ENV)
from terratorch.iterate import workers
from terratorch.iterate.config import load_plan
from terratorch.iterate.tracking import resolve_storage
import terratorch.iterate.__main__, terratorch.iterate.runner, terratorch.iterate.repeat
import terratorch.iterate.sampling, terratorch.iterate.summarize, terratorch.iterate.trial
import matplotlib.pyplot

load_plan(WARM_CONFIG, [])  # builds the CLI parsers the validation uses (the slow part of a start)
templates = Path(tempfile.mkdtemp(prefix="terratorch-zygote-"))
location = resolve_storage(str(templates))
workers.init_sqlite_stores(location.tracking_uri, location.optuna_url)
for storage in workers._STORAGES.values():
    storage.engine.dispose()
workers._STORAGES.clear()
CONN.send(str(templates))
while True:
    try:
        message = CONN.recv()
    except EOFError:
        os._exit(0)
    if message[0] == "start":
        pid = os.fork()
        if pid == 0:
            CONN.close()
            try:
                exec(CHILD, message[1])
            finally:
                os._exit(99)
        CONN.send(pid)
    elif message[0] == "poll":
        try:
            done, status = os.waitpid(message[1], os.WNOHANG)
        except ChildProcessError:
            done, status = 0, 0
        CONN.send(os.waitstatus_to_exitcode(status) if done else None)
"""


# -- harness (also used by test_concurrency.py) -----------------------------------------------------------
class Zygote:
    """A warmed-up process that forks benchmark children on request (one per test module)."""

    def __init__(self, warm_config: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        env = {"TERRATORCH_NO_AUTOLOAD": "1", "MPLBACKEND": "Agg"}
        namespace = {"CONN": theirs, "ENV": env, "WARM_CONFIG": str(warm_config), "CHILD": CHILD}
        self.process = context.Process(target=exec, args=(ZYGOTE, namespace), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 600
        while not self.conn.poll(1):
            if not self.process.is_alive():  # its traceback is in the captured stderr
                raise AssertionError(f"the zygote process exited ({self.process.exitcode}) before warming up")
            if time.monotonic() > deadline:
                raise AssertionError("the zygote process did not warm up within 600 s")
        self.templates = Path(self.conn.recv())

    def fork(self, namespace: dict[str, Any]) -> Child:
        """Start a child running ``CHILD`` with ``namespace``."""
        self.conn.send(("start", namespace))
        return Child(self, self.conn.recv())

    def close(self) -> None:
        """Stop the zygote (children still running are left to finish)."""
        self.conn.close()
        self.process.join(10)


class Child:
    """A benchmark child process (a grandchild of the test: its exit code comes through the zygote)."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.exitcode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), or ``None`` while it runs."""
        if self.exitcode is None:
            self.zygote.conn.send(("poll", self.pid))
            self.exitcode = self.zygote.conn.recv()
        return self.exitcode

    def join(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the child to end; returns its exit code."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.exitcode

    def kill(self) -> None:
        """SIGKILL the child."""
        os.kill(self.pid, signal.SIGKILL)


def make_data(base: Path) -> dict[str, Path]:
    """Tiny segmentation and classification demo datasets (32 px)."""
    from terratorch.datasets.demo import make_demo_dataset

    return {
        "seg": make_demo_dataset(
            base / "seg", "segmentation", n_train=4, n_val=2, n_test=2, size=32, seed=1
        ).root,
        "cls": make_demo_dataset(
            base / "cls", "classification", n_train=6, n_val=3, n_test=3, size=32, seed=1
        ).root,
    }


def _split_args(root: Path, image_grep: str, label: bool) -> dict[str, Any]:
    init: dict[str, Any] = {
        "batch_size": 2,
        "num_workers": 0,
        "img_grep": image_grep,
        "means": str(root / "means.txt"),
        "stds": str(root / "stds.txt"),
        "dataset_bands": BANDS,
        "constant_scale": 0.0001,
        "no_data_replace": 0.0,
        "num_classes": 3,
    }
    for split in ("train", "val", "test"):
        init[f"{split}_data_root"] = str(root / "images")
        init[f"{split}_split"] = str(root / "splits" / f"{split}.txt")
        if label:
            init[f"{split}_label_data_root"] = str(root / "labels")
    if label:
        init.update(label_grep="*_mask.tif", no_label_replace=-1)
    return init


def bench_config(storage: Path, roots: dict[str, Path], **overrides: Any) -> dict[str, Any]:
    """2 tasks x 3 trials, 1 repetition, 1-second heartbeats: the smallest config with every phase."""
    config: dict[str, Any] = {
        "experiment_name": "kill",
        "storage_uri": str(storage),
        "seed": 11,
        "backbone": {"backbone": "timm_resnet18", "backbone_args": {"pretrained": False}},
        "defaults": {
            "trainer_args": {"accelerator": "cpu", "max_epochs": 1, "enable_progress_bar": False},
            "terratorch_task": {"plot_on_val": False},
        },
        "n_trials": 3,
        "run_repetitions": 1,
        "heartbeat_interval": 1,
        "optimization_space": {"lr": {"min": 1.0e-4, "max": 1.0e-1, "type": "real", "log": True}},
        "tasks": [
            {
                "name": "seg",
                "type": "segmentation",
                "metric": "val/mIoU",
                "direction": "max",
                "decoder": "FCNDecoder",
                "decoder_args": {"channels": 16},
                "num_classes": 3,
                "bands": BANDS,
                "loss": "ce",
                "ignore_index": -1,
                "datamodule": {
                    "class_path": "GenericNonGeoSegmentationDataModule",
                    "init_args": _split_args(roots["seg"], "*_img.tif", label=True),
                },
            },
            {
                "name": "cls",
                "type": "classification",
                "decoder": "IdentityDecoder",
                "num_classes": 3,
                "bands": BANDS,
                "datamodule": {
                    "class_path": "GenericNonGeoClassificationDataModule",
                    "init_args": _split_args(roots["cls"], "*.tif", label=False),
                },
            },
        ],
    }
    config.update(overrides)
    return config


class Bench:
    """One benchmark folder (config, stores, call log) whose command runs in forked children."""

    def __init__(
        self, zygote: Zygote, folder: Path, config: dict[str, Any], extra_args: tuple[str, ...] = ()
    ) -> None:
        self.zygote = zygote
        self.folder = folder
        self.storage = Path(config["storage_uri"])
        self.storage.mkdir(parents=True, exist_ok=True)
        names = ["mlflow.db"] if config.get("optuna_storage") else ["mlflow.db", "optuna.db"]
        for name in names:  # empty migrated databases: creating them costs seconds per store
            _copy_database(zygote.templates / name, self.storage / name)
        self.config_path = folder / "bench.yaml"
        self.config_path.write_text(yaml.safe_dump(copy.deepcopy(config), sort_keys=False))
        self.calls = folder / "calls.jsonl"
        self.extra_args = extra_args
        self.experiment = config["experiment_name"]
        self.optuna_url = config.get("optuna_storage") or f"sqlite:///{self.storage / 'optuna.db'}"
        self._count = 0

    def start(self, kill_at: str | None = None, env: dict[str, str] | None = None) -> tuple[Child, Path]:
        """Start ``terratorch iterate --config bench.yaml`` in a child; returns (process, output file)."""
        self._count += 1
        out = self.folder / f"run{self._count}.log"
        child_env = {
            "CALL_LOG": str(self.calls),
            "TERRATORCH_NO_AUTOLOAD": "1",
            "MPLBACKEND": "Agg",
            "TERRATORCH_TEST_KILL_AT": kill_at or "",
            **(env or {}),
        }
        namespace = {
            "ARGV": ["--config", str(self.config_path), *self.extra_args],
            "ENV": child_env,
            "CWD": str(self.folder),
            "OUT": str(out),
            "__name__": "__iterate_child__",
        }
        return self.zygote.fork(namespace), out

    def run(self, kill_at: str | None = None, timeout: float = 300) -> tuple[int, str]:
        """Run the command to its end (or its kill point); returns (exit code, output)."""
        process, out = self.start(kill_at)
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join(30)
            raise AssertionError(f"the benchmark did not finish in {timeout}s:\n{out.read_text()[-3000:]}")
        return process.exitcode, out.read_text()

    # -- what the stores hold -------------------------------------------------------------------------
    def call_log(self) -> list[dict[str, Any]]:
        """Every training call, in order (a killed one included)."""
        return (
            [json.loads(line) for line in self.calls.read_text().splitlines()] if self.calls.exists() else []
        )

    def runs(self) -> list[Any]:
        """All MLflow runs of the experiment."""
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{self.storage / 'mlflow.db'}")
        experiment = client.get_experiment_by_name(self.experiment)
        return list(client.search_runs([experiment.experiment_id], max_results=5000)) if experiment else []

    def trial_sequences(self) -> dict[str, list[tuple[int, float, int, float]]]:
        """Per task, the counted trials as (index, lr, seed, value), by index (from the Optuna studies)."""
        import optuna

        sequences: dict[str, list[tuple[int, float, int, float]]] = {}
        for summary in optuna.get_all_study_summaries(self.optuna_url, include_best_trial=False):
            if summary.study_name.startswith("terratorch-claim:"):
                continue
            study = optuna.load_study(study_name=summary.study_name, storage=self.optuna_url)
            task = summary.study_name.split("/")[1]
            done = [t for t in study.trials if t.state.name == "COMPLETE"]
            sequences[task] = sorted(
                (
                    t.user_attrs["trial_index"],
                    round(t.params["lr"], 12),
                    t.user_attrs["seed"],
                    round(t.value, 9),
                )
                for t in done
            )
        return sequences

    def units(self) -> dict[str, list[tuple[str, str]]]:
        """Finished trial and repeat runs per (level, task) as (index, status) pairs; the benchmark runs."""
        found: dict[str, list[tuple[str, str]]] = {}
        for run in self.runs():
            tags = run.data.tags
            level = tags["terratorch.level"]
            if level in ("trial", "repeat") and run.info.status == "FINISHED":
                index = tags.get("terratorch.trial_index", tags.get("terratorch.repeat_index"))
                found.setdefault(f"{level}/{tags['terratorch.task']}", []).append(
                    (index, tags["terratorch.status"])
                )
            elif level in ("benchmark", "task"):
                found.setdefault(level, []).append((tags.get("terratorch.task", ""), run.info.status))
        return {k: sorted(v) for k, v in found.items()}

    def best_value_reports(self) -> dict[str, int]:
        """Per task run, how many times its ``best_value`` metric was logged (once when reported once)."""
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{self.storage / 'mlflow.db'}")
        return {
            run.data.tags["terratorch.task"]: len(client.get_metric_history(run.info.run_id, "best_value"))
            for run in self.runs()
            if run.data.tags["terratorch.level"] == "task"
        }

    def repeated_rows(self) -> list[tuple[str, str, str]]:
        """(task, seed, score) rows of ``repeated_results.csv``."""
        with (self.storage / "repeated_results.csv").open() as handle:
            return sorted((r["task"], r["seed"], r["score"]) for r in csv.DictReader(handle))

    def report_files(self) -> dict[str, list[str]]:
        """Report folders and their files."""
        reports = self.storage / "reports"
        if not reports.is_dir():
            return {}
        return {
            folder.name.split("_")[0]: sorted(
                str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            )
            for folder in reports.iterdir()
        }

    def snapshot(self) -> dict[str, tuple[int, str]]:
        """Files the tool wrote in the storage folder (databases excluded): path -> (mtime, sha256)."""
        found = {}
        for path in self.storage.rglob("*"):
            if (
                path.is_file()
                and not path.name.startswith(("mlflow.db", "optuna.db", "."))
                and "artifacts" not in path.parts
            ):
                found[str(path.relative_to(self.storage))] = (path.stat().st_mtime_ns, _sha(path))
        return found


def _copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with its write-ahead log folded in (a plain file copy would miss it)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the matrix ---------------------------------------------------------------------------------------
# Five boundaries; the second repetition stops at the other task's side of each.
KILL_POINTS = {
    "during-trial": ("trial-epoch:seg:1", "trial-epoch:cls:2"),
    "between-trials": ("after-trial:seg:0", "after-trial:cls:1"),
    "between-tasks": ("after-task:seg", "after-task:cls"),
    "during-repeats": ("repeat-epoch:cls:0", "repeat-epoch:seg:0"),
    "during-report": ("report-written", "report-written"),
}
CASES = [pytest.param(name, points[0], id=f"{name}-1") for name, points in KILL_POINTS.items()] + [
    pytest.param(name, points[1], id=f"{name}-2", marks=pytest.mark.slow)
    for name, points in KILL_POINTS.items()
]


def start_zygote(base: Path) -> tuple[Zygote, dict[str, Path]]:
    """Demo data under ``base`` and a zygote warmed up on a config reading it."""
    roots = make_data(base / "data")
    warm = base / "warm.yaml"
    warm.write_text(yaml.safe_dump(bench_config(base / "warm_store", roots), sort_keys=False))
    return Zygote(warm), roots


def shared_zygote(request: Any, tmp_path_factory: Any) -> tuple[Zygote, dict[str, Path]]:
    """One zygote (and its demo data) for the whole session: warming one up costs about a minute."""
    config = request.config
    if not hasattr(config, "_terratorch_iterate_zygote"):
        zygote, roots = start_zygote(tmp_path_factory.mktemp("iterate_zygote"))
        config._terratorch_iterate_zygote = (zygote, roots)
        config.add_cleanup(zygote.close)
    return config._terratorch_iterate_zygote


@pytest.fixture
def zygote_and_roots(request, tmp_path_factory) -> tuple[Zygote, dict[str, Path]]:
    """The session's zygote and demo data."""
    return shared_zygote(request, tmp_path_factory)


_UNINTERRUPTED: dict[str, Any] = {}


@pytest.fixture
def uninterrupted(zygote_and_roots, tmp_path_factory) -> dict[str, Any]:
    """The same benchmark run once without a kill (made once per module)."""
    if not _UNINTERRUPTED:
        zygote, roots = zygote_and_roots
        folder = tmp_path_factory.mktemp("uninterrupted")
        bench = Bench(zygote, folder, bench_config(folder / "store", roots))
        code, output = bench.run()
        assert code == 0, output[-4000:]
        _UNINTERRUPTED.update(
            sequences=bench.trial_sequences(),
            units=bench.units(),
            repeated=bench.repeated_rows(),
            reports=bench.report_files(),
            calls=len(bench.call_log()),
        )
    return _UNINTERRUPTED


@pytest.mark.parametrize(("boundary", "kill_at"), CASES)
def test_killed_benchmark_resumes_without_repeating_or_losing_work(
    boundary, kill_at, zygote_and_roots, uninterrupted, tmp_path
):
    zygote, roots = zygote_and_roots
    bench = Bench(zygote, tmp_path, bench_config(tmp_path / "store", roots))
    code, output = bench.run(kill_at=kill_at)
    assert code == -signal.SIGKILL, f"never reached {kill_at}:\n{output[-3000:]}"
    before = bench.snapshot()

    code, output = bench.run()
    assert code == 0, output[-4000:]
    assert "continuing benchmark run" in output and "new benchmark run" not in output

    # Same trials (index, parameters, seed, value), repetitions and report as the uninterrupted run.
    assert bench.trial_sequences() == uninterrupted["sequences"]
    assert bench.units() == uninterrupted["units"]  # 0 duplicate, 0 lost: one finished run per unit
    assert bench.repeated_rows() == uninterrupted["repeated"]
    assert bench.report_files() == uninterrupted["reports"]  # one report folder, every file in it
    # At most the interrupted unit trains twice; a kill between units costs no training at all.
    redone = len(bench.call_log()) - uninterrupted["calls"]
    assert redone == (1 if boundary in ("during-trial", "during-repeats") else 0)
    # Files written before the kill are kept, except the report that was being written.
    after = bench.snapshot()
    for path, stamp in before.items():
        if boundary == "during-report" and path.startswith("reports/"):
            continue
        assert after[path] == stamp, f"{path} was rewritten"
    if boundary == "during-report":
        assert "repeated_results.csv" in before  # the repetitions were done and were not redone
        assert "repeat=" not in output and "trial=" not in output


def test_sigterm_exits_130_and_the_rerun_continues(zygote_and_roots, uninterrupted, tmp_path):
    zygote, roots = zygote_and_roots
    bench = Bench(zygote, tmp_path, bench_config(tmp_path / "store", roots))
    process, out = bench.start(env={"TRIAL_SLEEP": "3"})
    deadline = time.monotonic() + 120
    while len(bench.call_log()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    process.join(60)
    assert process.exitcode == 130, out.read_text()[-3000:]
    assert "Traceback" not in out.read_text()
    code, output = bench.run()
    assert code == 0, output[-4000:]
    assert bench.trial_sequences() == uninterrupted["sequences"]
    assert bench.units() == uninterrupted["units"]
