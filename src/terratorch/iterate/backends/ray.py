"""The Ray backend: trials (and independent tasks) run in parallel on a Ray cluster.

Optuna keeps proposing the hyperparameters and Ray only schedules the trainings: every trial is a
Ray task that runs ``study.optimize(objective, n_trials=1)`` against the shared Optuna RDB
storage, so sampling uses the same sampler and search space as the local backend (integers stay
integers), and the MLflow runs are created by the same objective, with the same nesting.

What each guarantee rests on:

* **Failure isolation**: an exception inside a trial is recorded by Optuna as a failed trial, as
  locally. A worker process that dies mid-trial (OOM killer, preempted node) makes its Ray task
  fail; the trial it was running is failed at once and queued again with the same parameters
  (the heartbeat retry callback of the runner's storage), and the benchmark carries on.
* **Resume**: trials send Optuna heartbeats from the worker, so if the *driver* dies the next
  ``terratorch iterate`` finds the stale trials and re-queues them, exactly as locally.
* **Custom modules**: ``custom_modules_path`` and ``backbone_registration`` are imported in every
  worker before the objective is unpickled. :meth:`RayBackend.connect` checks, before any MLflow run
  or Optuna study is created, that the cluster is reachable, that one trial's resources fit on a
  node and that a worker can import those modules.
* **Distinct, reproducible draws**: each Ray task unpickles its own copy of the sampler and calls
  ``reseed_rng()`` (what Optuna does for ``n_jobs > 1``). The benchmark's sampler
  (:class:`terratorch.iterate.sampling.TrialSeededSampler`) derives every trial's seed from the master
  seed, the task and the trial's index, so concurrent trials draw distinct values and a given trial index
  gets the same values as on the local backend. A plain Optuna sampler passed in instead is reseeded at
  random.

Only Optuna's public API is used: trials are found by ``trial.number`` and user attributes,
reopened with ``optuna.trial.Trial`` and changed through the storage's public methods.

Ray is an optional extra (``pip install 'terratorch[ray]'``); it is imported only when this
backend is used.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from terratorch.iterate.backends import Backend, Objective, StudyCallback

__all__ = ["RayBackend", "RayBackendError"]

WORKER_ATTR = "terratorch_ray_task"  # Optuna system attr: the Ray task running the trial
_IMPORTED: set[str] = set()  # custom modules already imported in this (worker) process


class RayBackendError(RuntimeError):
    """The Ray backend cannot run: unreachable cluster, impossible resources, broken workers."""


def _import_modules(paths: Sequence[str], cwd: str | None) -> None:
    """Import the user's custom modules once per worker process (registries fill on import)."""
    from terratorch.registry import import_custom_modules

    if cwd and os.path.isdir(cwd) and cwd not in sys.path:
        sys.path.insert(0, cwd)  # dotted module names resolve against the driver's working directory
    for path in paths:
        if path in _IMPORTED:
            continue
        try:
            import_custom_modules(path)
        except Exception as error:
            host = socket.gethostname()
            raise RayBackendError(
                f"Ray worker on {host} (pid {os.getpid()}) cannot import custom module {path!r}: {error}. "
                "Every node needs the same files at the same path (shared filesystem), or ship them with "
                "ray.runtime_env (working_dir / py_modules)."
            ) from error
        _IMPORTED.add(path)


def _probe(paths: Sequence[str], cwd: str | None) -> str:
    """Ray task run by :meth:`RayBackend.connect`: import the custom modules on a worker."""
    _import_modules(paths, cwd)
    return socket.gethostname()


def _run_trial(payload: bytes, paths: Sequence[str], cwd: str | None) -> Any:
    """Ray task body: one Optuna trial of the study in ``payload``; returns its ``FrozenTrial``.

    The study and objective travel pickled and are unpickled only after the custom modules are
    imported, so objects defined in those modules (a registered backbone, a patched training
    function) resolve in the worker too. Before the objective runs, the trial is tagged with this
    Ray task (:data:`WORKER_ATTR`) so the driver can find and fail it if the worker dies.
    """
    import ray
    from ray import cloudpickle

    _import_modules(paths, cwd)
    study, objective = cloudpickle.loads(payload)
    # Every Ray task unpickles the same sampler state; without a reseed, trials running at the
    # same time would all draw the same values (what Optuna itself does for ``n_jobs > 1``).
    study.sampler.reseed_rng()
    task_id = ray.get_runtime_context().get_task_id()
    finished: list[Any] = []

    def traced(trial: Any) -> float:
        storage = trial.storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), trial.number
        )
        trial.set_user_attr(WORKER_ATTR, {"task": task_id, "number": trial.number, "trial_id": trial_id})
        return objective(trial)

    study.optimize(
        traced,
        n_trials=1,
        catch=(Exception,),
        callbacks=[lambda _study, frozen: finished.append(frozen)],
        gc_after_trial=True,
        show_progress_bar=False,
    )
    return finished[-1] if finished else None


def _check_address(address: str, timeout: float) -> None:
    """Fail fast (before ``ray.init`` retries for a minute) when a ``host:port`` does not answer."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise RayBackendError(
            f"Ray address {address!r} is not valid; use host:port (e.g. 10.0.0.1:6379), "
            "ray://host:10001, 'auto' (a cluster started on this machine) or leave it empty for a "
            "local instance"
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as error:
        raise RayBackendError(
            f"Ray cluster at {address!r} is unreachable ({host}:{port}: {error}). Start it with "
            "'ray start --head' on the head node, or fix --ray-address / ray.address. Nothing was "
            "written to the benchmark stores."
        ) from None


class RayBackend(Backend):
    """Run trials as Ray tasks, several at a time, and independent tasks concurrently.

    Args:
        address: Ray cluster address (``host:port``, ``ray://host:port``, ``"auto"``); ``None``
            connects to ``RAY_ADDRESS`` or starts a local instance.
        cpus_per_trial: CPUs Ray reserves for one trial.
        gpus_per_trial: GPUs Ray reserves for one trial (Ray sets ``CUDA_VISIBLE_DEVICES``).
        max_concurrent_trials: Upper bound on trials running at once over all tasks (``None``:
            as many as the cluster's resources allow).
        custom_modules: ``custom_modules_path``/``backbone_registration`` entries to import in
            every worker (absolute paths or dotted module names).
        runtime_env: Ray ``runtime_env`` for the trial tasks (``working_dir``, ``env_vars``, ...).
        connect_timeout: Seconds to wait for the cluster address to answer.
        init_kwargs: Extra ``ray.init`` arguments (e.g. ``num_cpus`` of a local instance).
    """

    name = "ray"
    parallel = True

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        max_concurrent_trials: int | None = None,
        custom_modules: Sequence[str] = (),
        runtime_env: Mapping[str, Any] | None = None,
        connect_timeout: float = 5.0,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if cpus_per_trial < 0 or gpus_per_trial < 0:
            raise ValueError(
                f"ray.cpus_per_trial and ray.gpus_per_trial must be >= 0, got {cpus_per_trial}, "
                f"{gpus_per_trial}"
            )
        if max_concurrent_trials is not None and max_concurrent_trials < 1:
            raise ValueError(f"ray.max_concurrent_trials must be >= 1, got {max_concurrent_trials}")
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self.gpus_per_trial = float(gpus_per_trial)
        self.max_concurrent_trials = max_concurrent_trials
        self.custom_modules = list(custom_modules)
        self.runtime_env = dict(runtime_env or {})
        self.connect_timeout = connect_timeout
        self.init_kwargs = dict(init_kwargs or {})
        self.cwd = os.getcwd()
        self._started_ray = False
        self._connected = False
        self._slots = threading.BoundedSemaphore(max_concurrent_trials or 1_000_000)

    # The objective closes over the runner, which holds this backend: keep it picklable.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_slots", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self.max_concurrent_trials or 1_000_000)

    @classmethod
    def from_plan(cls, plan: Any, address: str | None = None) -> RayBackend:
        """Build the backend from a plan's ``ray:`` block; ``address`` (``--ray-address``) wins.

        Custom-module paths are resolved like the config loader does (working directory first,
        then the config file's folder) and passed to workers as absolute paths.
        """
        config = plan.config
        block = getattr(config, "ray", None)
        options = block.model_dump() if hasattr(block, "model_dump") else dict(block or {})
        if address:
            options["address"] = address
        return cls(custom_modules=_module_paths(config, plan.source), **options)

    # -- connection -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect to (or start) Ray and check the cluster can run the benchmark.

        Called before anything is written to MLflow or Optuna.

        Raises:
            RayBackendError: Ray is not installed, the address is unreachable, one trial's
                resources exceed every node, or a worker cannot import the custom modules.
        """
        if self._connected:
            return
        try:
            import ray
        except ModuleNotFoundError:
            raise RayBackendError(
                "the Ray backend needs Ray: pip install 'terratorch[ray]' (or use --backend local)"
            ) from None
        if self.address:
            _check_address(self.address, self.connect_timeout)
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": True, **self.init_kwargs}
            try:
                ray.init(address=self.address, **kwargs)
            except Exception as error:
                raise RayBackendError(
                    f"could not connect to Ray at {self.address or 'a new local instance'}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            self._started_ray = True
        try:
            self._check_resources()
            self._check_workers()
        except BaseException:
            self.close()  # leave no local Ray instance behind when the benchmark cannot start
            raise
        self._connected = True

    def _check_resources(self) -> None:
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        if self.cpus_per_trial > most_cpus or self.gpus_per_trial > most_gpus:
            raise RayBackendError(
                f"one trial asks for {self.cpus_per_trial:g} CPU and {self.gpus_per_trial:g} GPU, but the "
                f"largest node of the Ray cluster has {most_cpus:g} CPU and {most_gpus:g} GPU "
                f"({len(nodes)} node(s)); lower ray.cpus_per_trial / ray.gpus_per_trial or add bigger nodes"
            )

    def _check_workers(self) -> None:
        import ray

        probe = ray.remote(_probe).options(**self._task_options())
        try:
            ray.get(probe.remote(self.custom_modules, self.cwd))
        except ray.exceptions.RayTaskError as error:
            cause = error.as_instanceof_cause()
            raise RayBackendError(str(cause).strip().splitlines()[-1]) from None
        except ray.exceptions.RayError as error:  # e.g. the runtime_env could not be set up
            raise RayBackendError(
                f"a Ray worker could not be started for the trials: {type(error).__name__}: {error}"
            ) from None

    def _task_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_trial,
            "num_gpus": self.gpus_per_trial,
            "max_retries": 0,  # Optuna re-queues a lost trial itself; a blind Ray retry would duplicate it
        }
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return options

    def close(self) -> None:
        """Shut down the local Ray instance this backend started (a cluster is left running)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
        self._connected = False

    # -- execution ------------------------------------------------------------------------------
    def map_tasks(self, function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Run ``function`` over the benchmark's tasks concurrently; results keep the input order.

        Each task's trials then compete for the cluster with the other tasks' trials; Ray runs
        them as resources allow (bounded by ``max_concurrent_trials`` over all tasks).
        """
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="terratorch-task") as pool:
            return list(pool.map(function, items))

    def optimize(
        self, study: Any, objective: Objective, n_trials: int, callbacks: Sequence[StudyCallback]
    ) -> None:
        """Start ``n_trials`` trials as Ray tasks and run ``callbacks`` here as each one ends."""
        import ray
        from ray import cloudpickle

        self.connect()
        remote = ray.remote(_run_trial).options(**self._task_options())
        try:
            payload = ray.put(cloudpickle.dumps((study, objective)))
        except Exception as error:
            raise RayBackendError(
                f"the study and objective cannot be sent to Ray workers: {type(error).__name__}: {error}"
            ) from error
        pending: list[Any] = []
        launched = 0
        while launched < n_trials or pending:
            while launched < n_trials and self._slots.acquire(blocking=not pending):
                pending.append(remote.remote(payload, self.custom_modules, self.cwd))
                launched += 1
            timeout = 1.0 if launched < n_trials else None  # wake up to take slots freed elsewhere
            ready, pending = ray.wait(pending, num_returns=1, timeout=timeout)
            for ref in ready:
                self._slots.release()
                self._collect(study, ref, callbacks)

    def _collect(self, study: Any, ref: Any, callbacks: Sequence[StudyCallback]) -> None:
        """Fetch one finished Ray task and run the callbacks on its trial (or fail a lost trial)."""
        import ray

        try:
            frozen = ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.as_instanceof_cause()
            if isinstance(cause, RayBackendError):
                raise RayBackendError(str(cause).strip().splitlines()[-1]) from None
            raise
        except ray.exceptions.RayError as error:  # the worker process or its node died
            for lost in _fail_lost_trials(study, ref.task_id().hex(), error):
                for callback in callbacks:
                    callback(study, lost)
            return
        if frozen is None:
            return
        for callback in callbacks:
            callback(study, frozen)


def _fail_lost_trials(study: Any, task_id: str, error: BaseException) -> list[Any]:
    """Fail the trial a dead worker was running and queue it again (the storage's stale-trial callback).

    The worker tagged its trial with :data:`WORKER_ATTR` (Ray task, trial number and storage id), so
    the trial is reopened through Optuna's public ``Trial`` and storage API. Returns the failed
    trials as stored.
    """
    import copy

    import optuna
    from optuna.trial import TrialState

    lost = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = frozen.user_attrs.get(WORKER_ATTR)
        # A retried trial inherits its predecessor's user attrs: the trial number tells them apart.
        if not isinstance(tag, dict) or tag.get("task") != task_id or tag.get("number") != frozen.number:
            continue
        trial = optuna.trial.Trial(study, tag["trial_id"])
        trial.set_user_attr("lost_worker", type(error).__name__)
        storage = trial.storage
        if storage.set_trial_state_values(tag["trial_id"], state=TrialState.FAIL):
            failed = copy.deepcopy(storage.get_trial(tag["trial_id"]))  # a snapshot, not a live view
            retry = getattr(storage, "get_heartbeat_stale_trial_callback", None)  # RDB storages only
            callback = retry() if callable(retry) else None
            if callback is not None:
                callback(study, failed)
            lost.append(failed)
    return lost


def _module_paths(config: Any, source: str) -> list[str]:
    """``custom_modules_path`` + ``backbone_registration`` entries as the workers must import them."""
    from pathlib import Path

    base = Path(source).parent if source and Path(source).is_file() else None
    found: list[str] = []
    for key in ("custom_modules_path", "backbone_registration"):
        value = getattr(config, key, None)
        for entry in [value] if isinstance(value, str) else list(value or []):
            path = Path(entry).expanduser()
            if path.exists():
                found.append(str(path.resolve()))
            elif base is not None and not path.is_absolute() and (base / path).exists():
                found.append(str((base / path).resolve()))
            else:
                found.append(entry)  # a dotted module name
    return found
