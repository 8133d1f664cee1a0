"""Several workers on one benchmark: coordination through the shared Optuna RDB storage.

Any number of ``terratorch iterate`` processes (or Ray workers) may run the same config against
the same stores. The only shared state is the Optuna storage (SQLite on one machine, PostgreSQL or
MySQL across machines) and the MLflow tracking store, so all coordination goes through them:

* **Claims** (:func:`claim`): exactly one worker wins a named claim. A claim is an Optuna study
  named ``terratorch-claim:<key>``; study names are unique in every Optuna RDB, so creating one is
  an atomic test-and-set on any database. Used so that one worker creates the benchmark run and
  each task run, and one worker reports each finished task and writes the report.
* **Surplus trials** (:func:`is_surplus`): two workers that both see ``n_trials - 1`` trials can
  both start one. The trial that started later (``datetime_start``, then number) is a surplus: it
  stops before sampling or training, is stored as FAIL with the user attribute
  :data:`SURPLUS_ATTR`, has no MLflow run and counts nowhere.
* **Peers** (:func:`wait_for_peers`): a worker that ran out of trials to start waits for the
  trials other workers are still running before it reports the task, so every worker reports the
  same final state. Dead peers are detected by Optuna heartbeats and their trials re-queued.

SQLite databases are switched to WAL journaling (:func:`prepare_sqlite`), so readers do not block
the writer; SQLite locking only works on a local disk, so SQLite is for workers on one machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "CLAIM_PREFIX",
    "SURPLUS_ATTR",
    "SurplusTrialError",
    "claim",
    "counted_trials",
    "file_lock",
    "init_sqlite_stores",
    "is_surplus",
    "mark_surplus",
    "open_storage",
    "prepare_sqlite",
    "retry",
    "running_trials",
    "wait_for",
    "wait_for_peers",
]

CLAIM_PREFIX = "terratorch-claim:"
SURPLUS_ATTR = "terratorch_surplus"
ERROR_ATTR = "error"  # same user attribute as the runner: trials that raised count towards n_trials


class SurplusTrialError(RuntimeError):
    """Raised inside a trial that another worker already made unnecessary (never counted)."""


def claim(storage: Any, key: str) -> bool:
    """Atomically claim ``key`` among all workers sharing ``storage``.

    Args:
        storage: An Optuna storage (``study._storage``) or an RDB URL.
        key: What is claimed, e.g. ``"<study name>/reported/3-0-1"``.

    Returns:
        ``True`` for exactly one caller per key, ever; ``False`` for every other one.
    """
    import optuna
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    if isinstance(storage, str):
        storage = open_storage(storage)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line per claim
    try:
        storage.create_new_study(directions=[StudyDirection.MINIMIZE], study_name=CLAIM_PREFIX + key)
    except DuplicatedStudyError:
        return False
    finally:
        optuna.logging.set_verbosity(verbosity)
    return True


_STORAGES: dict[str, Any] = {}


def open_storage(url: str, attempts: int = 5) -> Any:
    """An Optuna ``RDBStorage`` for ``url``, cached per process.

    Workers started together may all find an empty database and create Optuna's tables at the
    same time; the losers of that race fail once and succeed on a retry.
    """
    from optuna.storages import RDBStorage

    if url not in _STORAGES:
        for attempt in range(attempts):
            try:
                _STORAGES[url] = RDBStorage(url)
                break
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
    return _STORAGES[url]


def _counts(trial: Any) -> bool:
    """Whether a frozen trial counts towards ``n_trials`` (the runner's rule)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


def counted_trials(study: Any) -> list[Any]:
    """Trials that count towards ``n_trials``, in the order they started (ties: trial number)."""
    trials = [t for t in study.get_trials(deepcopy=False) if _counts(t)]
    return sorted(trials, key=lambda t: (t.datetime_start is None, t.datetime_start or 0, t.number))


def is_surplus(study: Any, trial_id: int, n_trials: int) -> bool:
    """Whether the running trial ``trial_id`` started after ``n_trials`` others that count.

    A trial that finds itself beyond the budget gives way; the ones that started earlier run. The
    decision is taken once the trial exists in the shared storage, so two workers never both run
    the ``n_trials``-th trial.
    """
    order = [t._trial_id for t in counted_trials(study)]
    return trial_id in order and order.index(trial_id) >= n_trials


def mark_surplus(study: Any, trial_id: int) -> None:
    """Tag a trial as surplus (it will end as FAIL without counting or being retried)."""
    study._storage.set_trial_user_attr(trial_id, SURPLUS_ATTR, True)


def running_trials(study: Any) -> list[Any]:
    """Trials currently marked RUNNING (in this or any other worker)."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def wait_for_peers(
    study: Any, out: Callable[[str], None] | None = None, label: str = "", poll: float = 1.0
) -> None:
    """Block until no trial of ``study`` is running in another worker.

    Trials of workers that died stop sending heartbeats; ``optuna.storages.fail_stale_trials``
    fails them after the grace period (and the retry callback queues them again), so this returns
    even when a peer was killed.
    """
    import warnings

    import optuna
    from optuna.storages import fail_stale_trials

    announced = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        running = running_trials(study)
        if not running:
            return
        if out is not None and not announced:
            out(f"{label}waiting for {len(running)} trial(s) running in other workers")
            announced = True
        time.sleep(poll)


def retry(function: Callable[[], Any], attempts: int = 3, delay: float = 0.5) -> Any:
    """Call ``function`` again when it raises, for check-then-create races between workers.

    E.g. two workers that both find no MLflow experiment and both create it: the second creation
    fails, and the retry finds the experiment the first one made. The last error propagates.
    """
    for attempt in range(attempts):
        try:
            return function()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * (attempt + 1))
    return None


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 120.0, poll: float = 0.5) -> Any:
    """Poll ``probe()`` until it returns something truthy (what another worker is creating).

    Raises:
        TimeoutError: Nothing appeared within ``timeout`` seconds; names ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"another worker claimed {what} but it did not appear within {timeout:.0f}s; "
                "if that worker was killed, run the command again"
            )
        time.sleep(poll)


def sqlite_files(urls: Iterable[str | None]) -> list[Path]:
    """Database files of the ``sqlite:///`` URLs among ``urls``."""
    files = []
    for url in urls:
        if url and url.startswith("sqlite:///"):
            files.append(Path(url.removeprefix("sqlite:///").split("?", 1)[0]))
    return files


def init_sqlite_stores(tracking_uri: str, optuna_url: str) -> None:
    """Create (migrate) the SQLite MLflow and Optuna databases one process at a time, in WAL mode.

    Workers started at the same moment on a fresh storage directory would otherwise run the
    schema migrations concurrently and fail. An exclusive ``flock`` on ``<database>.lock`` next to
    each file serialises the first initialisation; later ones find the schema and return quickly.
    Non-SQLite stores are left alone (their servers handle concurrency; start one worker first).
    """
    for url, create in ((tracking_uri, _create_mlflow_db), (optuna_url, open_storage)):
        for file in sqlite_files([url]):
            file.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(file.with_name(file.name + ".lock")):
                prepare_sqlite(url)
                create(url)


def _create_mlflow_db(url: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=url).search_experiments(max_results=1)


class file_lock:  # noqa: N801 - used like a function: ``with file_lock(path):``
    """Exclusive advisory lock on ``path`` (no-op where ``fcntl`` does not exist, e.g. Windows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        self.handle = open(self.path, "a")  # closed in __exit__
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the lock
            self.handle = None


def prepare_sqlite(*urls: str | None, busy_timeout_ms: int = 30000) -> None:
    """Switch existing or new SQLite databases to WAL journaling (readers never block the writer).

    WAL is a persistent property of the database file, so setting it once is enough for every
    process that opens it later. Databases on network filesystems cannot use WAL (SQLite's
    locking needs a local disk); SQLite storage is therefore for workers on one machine.
    """
    for file in sqlite_files(urls):
        if not file.parent.is_dir():
            continue
        connection = sqlite3.connect(str(file), timeout=busy_timeout_ms / 1000)
        try:
            connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
