"""Several workers on one benchmark: coordination through the shared Optuna RDB storage.

Any number of ``terratorch iterate`` processes (or Ray workers) may run the same config against
the same stores. The only shared state is the Optuna storage (SQLite on one machine, PostgreSQL or
MySQL across machines) and the MLflow tracking store, so all coordination goes through them:

* **Claims** (:func:`claim`): exactly one worker wins a named claim, forever. A claim is an Optuna
  study named ``terratorch-claim:<key>``; study names are unique in every Optuna RDB, so creating
  one is an atomic test-and-set on any database. Used where losing the winner is harmless (who
  creates the benchmark run or a task run, who logs a task's final state).
* **Units** (:class:`UnitLedger`): a unit of work (a repetition, the results table, the report)
  that must run exactly once even when its worker is killed. Each attempt is a claim
  ``<unit>#<n>`` whose owner keeps a heartbeat counter in the claim's user attributes and marks it
  ``done`` at the end. Another worker that finds the counter frozen for longer than the grace
  period takes the unit over with attempt ``n + 1``; one that finds it ``done`` skips it.
* **Surplus trials** (:func:`is_surplus`): two workers that both see ``n_trials - 1`` trials can
  both start one. The trial that started later (``datetime_start``, then number) is a surplus: it
  stops before sampling or training, is stored as FAIL with the user attribute
  :data:`SURPLUS_ATTR`, has no MLflow run and counts nowhere.
* **Peers** (:func:`wait_for_peers`): a worker that ran out of trials to start waits for the
  trials other workers are still running before it reports the task, so every worker reports the
  same final state. Dead peers are detected by Optuna heartbeats and their trials re-queued.

SQLite databases are switched to WAL journaling (:func:`prepare_sqlite`), so readers do not block
the writer; SQLite locking only works on a local disk, so SQLite is for workers on one machine.

**Test hook.** :func:`kill_point` names the boundaries of the benchmark (``trial-epoch:<task>:<k>``,
``after-trial:<task>:<k>``, ``after-task:<task>``, ``repeat-epoch:<task>:<i>``,
``report-written``). When the environment variable :data:`KILL_AT_ENV` equals one of them, the
process SIGKILLs itself there: the reliability tests use it to stop a benchmark at a precise point.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CLAIM_PREFIX",
    "KILL_AT_ENV",
    "SURPLUS_ATTR",
    "SurplusTrialError",
    "UnitLedger",
    "claim",
    "counted_trials",
    "file_lock",
    "init_sqlite_stores",
    "is_surplus",
    "kill_point",
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
KILL_AT_ENV = "TERRATORCH_TEST_KILL_AT"


class SurplusTrialError(RuntimeError):
    """Raised inside a trial that another worker already made unnecessary (never counted)."""


def kill_point(name: str) -> None:
    """Test hook: SIGKILL this process when ``$TERRATORCH_TEST_KILL_AT`` equals ``name``.

    Costs one environment lookup; the benchmark never sets the variable itself.
    """
    if os.environ.get(KILL_AT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _create_claim_study(storage: Any, name: str) -> bool:
    """Create the study ``name``; ``False`` when it exists (another worker created it first)."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line per claim
    try:
        storage.create_new_study(directions=[StudyDirection.MINIMIZE], study_name=name)
    except DuplicatedStudyError:
        return False
    finally:
        optuna.logging.set_verbosity(verbosity)
    return True


def claim(storage: Any, key: str) -> bool:
    """Atomically claim ``key`` among all workers sharing ``storage``.

    Args:
        storage: An Optuna storage or an RDB URL.
        key: What is claimed, e.g. ``"<study name>/reported/3-0-1"``.

    Returns:
        ``True`` for exactly one caller per key, ever; ``False`` for every other one.
    """
    if isinstance(storage, str):
        storage = open_storage(storage)
    return _create_claim_study(storage, CLAIM_PREFIX + key)


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


# -- units of work that run exactly once --------------------------------------------------------------
DONE, BUSY = "done", "busy"
_STATE, _BEAT, _OWNER = "state", "beat", "owner"


@dataclass
class _Seen:
    beat: Any
    since: float


class _Lease:
    """An attempt this worker owns: a heartbeat thread bumps its counter until it is released."""

    def __init__(self, storage: Any, study_id: int, interval: float) -> None:
        self.storage, self.study_id = storage, study_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)
        self._thread.start()

    def _beat(self, interval: float) -> None:
        beat = 0
        while not self._stop.wait(interval):
            beat += 1
            try:
                self.storage.set_study_user_attr(self.study_id, _BEAT, beat)
            except Exception:  # a busy database: the next beat retries; the grace period absorbs it
                continue

    def release(self, state: str) -> None:
        self._stop.set()
        self._thread.join()
        self.storage.set_study_user_attr(self.study_id, _STATE, state)


class UnitLedger:
    """Runs named units of work exactly once across every worker sharing an Optuna storage.

    Args:
        url: SQLAlchemy URL of the shared Optuna storage.
        heartbeat_interval: Seconds between the owner's heartbeats.
        grace: Seconds without a heartbeat after which an attempt's owner counts as dead
            (default ``3 * heartbeat_interval + 2``).
        out: Where "waiting"/"taking over" notes go.
    """

    def __init__(
        self,
        url: str,
        heartbeat_interval: float,
        grace: float | None = None,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.storage = open_storage(url)
        self.interval = float(heartbeat_interval)
        self.grace = 3 * self.interval + 2 if grace is None else float(grace)
        self.out = out or (lambda line: None)
        self._seen: dict[str, _Seen] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _attrs(self, name: str) -> tuple[int, dict[str, Any]] | None:
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            return None
        return study_id, self.storage.get_study_user_attrs(study_id)

    def _stale(self, name: str, attrs: dict[str, Any]) -> bool:
        """Whether the owner of attempt ``name`` stopped beating for longer than the grace period."""
        beat = attrs.get(_BEAT)
        seen = self._seen.get(name)
        now = time.monotonic()
        if seen is None or seen.beat != beat:
            self._seen[name] = _Seen(beat, now)
            return False
        return now - seen.since > self.grace

    def acquire(self, key: str) -> _Lease | str:
        """Own the next attempt of ``key``, or say it is :data:`DONE` or :data:`BUSY` elsewhere."""
        attempt = 0
        while True:
            name = f"{CLAIM_PREFIX}{key}#{attempt}"
            found = self._attrs(name)
            if found is None:
                if not _create_claim_study(self.storage, name):
                    return BUSY  # another worker created this attempt a moment ago
                study_id, _ = self._attrs(name) or (None, None)
                self.storage.set_study_user_attr(study_id, _OWNER, self._owner)
                self.storage.set_study_user_attr(study_id, _BEAT, 0)
                if attempt:
                    self.out(f"taking over {key} (attempt {attempt}; the previous owner stopped)")
                return _Lease(self.storage, study_id, self.interval)
            _, attrs = found
            state = attrs.get(_STATE)
            if state == DONE:
                return DONE
            if state != "abandoned" and not self._stale(name, attrs):
                return BUSY
            attempt += 1

    def run_once(self, key: str, work: Callable[[], Any], poll: float = 0.5) -> bool:
        """Run ``work`` if no other worker has done (or is doing) unit ``key``; wait for it otherwise.

        Returns:
            ``True`` when this worker ran ``work``; ``False`` when another one did.

        Raises:
            Exception: Whatever ``work`` raised (the attempt is abandoned so a rerun redoes it).
        """
        announced = False
        while True:
            lease = self.acquire(key)
            if lease == DONE:
                return False
            if isinstance(lease, _Lease):
                self.run_owned(lease, work)
                return True
            if not announced:
                self.out(f"waiting for {key} (another worker is on it)")
                announced = True
            time.sleep(poll)

    @staticmethod
    def run_owned(lease: _Lease, work: Callable[[], Any]) -> Any:
        """Run ``work`` under ``lease``; mark the unit done, or abandoned when ``work`` raises."""
        try:
            result = work()
        except BaseException:
            lease.release("abandoned")
            raise
        lease.release(DONE)
        return result

    def run_all(self, units: Iterable[tuple[str, Callable[[], Any]]], poll: float = 0.5) -> int:
        """Run every unit not done elsewhere; wait for the ones other workers hold. Returns how many ran here.

        Units held by live workers are skipped first and revisited, so two workers split a list.
        """
        pending = list(units)
        ran = 0
        announced = False
        while pending:
            busy = []
            for key, work in pending:
                lease = self.acquire(key)
                if isinstance(lease, _Lease):
                    self.run_owned(lease, work)
                    ran += 1
                elif lease == BUSY:
                    busy.append((key, work))
            pending = busy
            if pending:
                if not announced:
                    self.out(f"waiting for {len(pending)} unit(s) other workers are running")
                    announced = True
                time.sleep(poll)
        return ran


# -- trials ---------------------------------------------------------------------------------------------
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


def is_surplus(study: Any, number: int, n_trials: int) -> bool:
    """Whether the running trial number ``number`` started after ``n_trials`` others that count.

    A trial that finds itself beyond the budget gives way; the ones that started earlier run. The
    decision is taken once the trial exists in the shared storage, so two workers never both run
    the ``n_trials``-th trial.
    """
    order = [t.number for t in counted_trials(study)]
    return number in order and order.index(number) >= n_trials


def mark_surplus(trial: Any) -> None:
    """Tag a running ``optuna.Trial`` as surplus (it ends as FAIL without counting or being retried)."""
    trial.set_user_attr(SURPLUS_ATTR, True)


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
