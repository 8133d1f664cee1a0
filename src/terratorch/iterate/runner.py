"""The benchmark loop: for each task an Optuna study of training trials, tracked in MLflow.

Phases and resumption (DESIGN.md "Nothing is lost"). A benchmark run goes through the phases
*tasks/HPO → repetitions → report*; each records its completion on the benchmark run (tags
``terratorch.phase.<phase>``, see :mod:`terratorch.iterate.tracking`) and each unit of work in it
is claimed in the Optuna store, so a rerun or a second worker continues the first incomplete
phase and never redoes a finished unit:

* The **benchmark run** (top-level MLflow run) is tagged with the config hash. Running the same
  config again continues the newest benchmark run with that hash while its measurement (HPO and
  repetitions) or, when a report is asked for, its report is not complete; a complete one is
  continued only with ``--continue_existing_experiments`` (or when only ``--repeat``/``--summarize``
  is asked), otherwise a new benchmark run starts. ``--parent_run_id`` picks one explicitly.
* Each task's **Optuna study** is named ``<experiment>/<task>/<benchmark run id>`` and keeps the
  task run id in its user attributes; trial runs carry their Optuna trial number and their index.
  Trial ``k`` is proposed by a sampler seeded from ``(master seed, task, k)``
  (:mod:`terratorch.iterate.sampling`), so resuming does not propose earlier trials again.
* Optuna heartbeats mark trials of a killed process as failed; ``RetryHeartbeatStaleTrialCallback``
  queues them again with the same parameters (and index, hence seed); their MLflow runs are closed
  as ``KILLED`` (kept, never deleted). Trials that raised (bad hyperparameters, NaN loss, OOM) count
  towards ``n_trials`` and are not retried; killed trials do not count.
* Repetitions, the results table, the efficiency measurement and the report are **units** run
  exactly once through :class:`~terratorch.iterate.workers.UnitLedger` (heartbeat leases: the unit
  of a killed worker is taken over, the unit of a live one is waited for).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from terratorch.iterate import seeds, workers
from terratorch.iterate.config import BenchmarkPlan, TaskPlan
from terratorch.iterate.space import decode, sample
from terratorch.iterate.tracking import (
    BACKBONE_TAG,
    BEST_TRIAL_RUN_ID_TAG,
    CONFIG_HASH_TAG,
    DIRECTION_TAG,
    FAILURE_TAG,
    LEVEL_TAG,
    MASTER_SEED_TAG,
    METRIC_TAG,
    N_COMPLETE_TAG,
    N_FAILED_TAG,
    N_PRUNED_TAG,
    NOTE_TAG,
    RETRY_OF_TAG,
    SEED_TAG,
    STATE_TAG,
    STATUS_TAG,
    STUDY_NAME_TAG,
    TASK_TAG,
    TASK_TYPE_TAG,
    TRIAL_INDEX_TAG,
    TRIAL_NUMBER_TAG,
    Phase,
    RunLevel,
    RunStatus,
    Tracker,
    phase_tag,
    resolve_storage,
)

__all__ = ["BenchmarkOutcome", "BenchmarkRunner", "TaskOutcome", "study_name"]

Printer = Callable[[str], None]
ERROR_ATTR = "error"  # Optuna user attr of trials that raised (they count towards n_trials)
INDEX_ATTR = "trial_index"  # Optuna user attr: the trial's index (see terratorch.iterate.sampling)
INTERRUPTED_ATTR = "interrupted"  # Optuna user attr of trials stopped by Ctrl-C/SIGTERM (re-queued)
TASK_RUN_ATTR = "mlflow_task_run_id"  # Optuna study user attr
RUN_ATTR = "mlflow_run_id"  # Optuna trial user attr
logger = logging.getLogger("terratorch.iterate")


@dataclass
class TaskOutcome:
    """Result of the HPO of one task."""

    name: str
    status: str
    task_run_id: str | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_trial_run_id: str | None = None
    n_complete: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    input_shape: tuple[int, ...] | None = None
    error: str | None = None


@dataclass
class BenchmarkOutcome:
    """Result of :meth:`BenchmarkRunner.run`."""

    benchmark_run_id: str
    experiment_id: str
    tasks: list[TaskOutcome] = field(default_factory=list)
    repeats_csv: Path | None = None
    report: Path | None = None

    @property
    def failed_tasks(self) -> list[str]:
        """Names of tasks whose trials all failed."""
        return [t.name for t in self.tasks if t.status == "failed"]


def study_name(experiment: str, task: str, benchmark_run_id: str) -> str:
    """Name of the Optuna study of ``task`` in benchmark run ``benchmark_run_id``."""
    return f"{experiment}/{task}/{benchmark_run_id}"


def _created_elsewhere(study: Any) -> str | None:
    """The task run id another worker records in ``study`` (``None`` if it died before doing so)."""
    try:
        return workers.wait_for(lambda: study.user_attrs.get(TASK_RUN_ATTR), "the task run", timeout=60)
    except TimeoutError:
        return None


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for package in (
        "terratorch",
        "torch",
        "torchvision",
        "lightning",
        "timm",
        "segmentation-models-pytorch",
        "torchmetrics",
        "optuna",
        "mlflow",
        "numpy",
        "rasterio",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


class _OptunaRecords(logging.Handler):
    """Forwards Optuna's log records to our logger; trial tracebacks only with ``--verbose``.

    Optuna logs every failed trial at WARNING with its traceback. Our progress line already reports
    the failure, and the traceback is stored with the trial run (``traceback.txt``), so without
    ``--verbose`` such records go to DEBUG (hidden by default) without their traceback.
    """

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not self.verbose:
            logger.debug(record.getMessage())
        else:
            logger.log(record.levelno, record.getMessage(), exc_info=record.exc_info)


def route_optuna_logging(verbose: bool = False) -> None:
    """Send Optuna's log records through ``terratorch.iterate`` (no tracebacks unless ``verbose``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.disable_propagation()  # the root logger's handlers would print the traceback too
    optuna_logger = logging.getLogger("optuna")
    for old in [h for h in optuna_logger.handlers if isinstance(h, _OptunaRecords)]:
        optuna_logger.removeHandler(old)
    optuna_logger.addHandler(_OptunaRecords(verbose))


def _digest(*texts: str) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


class BenchmarkRunner:
    """Runs a validated :class:`~terratorch.iterate.config.BenchmarkPlan`.

    Args:
        plan: The validated plan (see :func:`terratorch.iterate.config.build_plan`).
        backend: Trial execution backend (default: :class:`~terratorch.iterate.backends.local.LocalBackend`).
        out: Where progress lines go (default ``print``).
        verbose: Let Optuna's trial-failure tracebacks through (``--verbose``).
    """

    def __init__(
        self, plan: BenchmarkPlan, backend: Any = None, out: Printer | None = None, verbose: bool = False
    ) -> None:
        from terratorch.iterate.backends import get_backend

        self.plan = plan
        self.config = plan.config
        self._owns_backend = backend is None  # a backend given by the caller is closed by the caller
        self.backend = backend or get_backend("local")
        self.out = out or (lambda line: print(line, flush=True))
        self.verbose = verbose
        self.location = resolve_storage(self.config.storage_uri, self.config.optuna_storage)
        self.tracker: Tracker | None = None
        self.units: workers.UnitLedger | None = None
        self.experiment_id = ""

    # -- entry point -----------------------------------------------------------------------------
    def run(
        self,
        *,
        hpo: bool = True,
        repeat: bool = True,
        summarize: bool = True,
        parent_run_id: str | None = None,
        continue_existing: bool = False,
        report_dir: str | Path | None = None,
    ) -> BenchmarkOutcome:
        """Run the requested phases (HPO, repetitions, report), continuing the first incomplete one."""
        self.backend.connect()  # idempotent; a cluster is checked before anything is written
        try:
            return self._run(hpo, repeat, summarize, parent_run_id, continue_existing, report_dir)
        finally:
            if self._owns_backend:
                self.backend.close()

    def _run(
        self,
        hpo: bool,
        repeat: bool,
        summarize: bool,
        parent_run_id: str | None,
        continue_existing: bool,
        report_dir: str | Path | None,
    ) -> BenchmarkOutcome:
        self._open_stores()
        assert self.tracker is not None and self.units is not None
        bench_id = self._benchmark_run(parent_run_id, continue_existing or not hpo, summarize)
        outcome = BenchmarkOutcome(benchmark_run_id=bench_id, experiment_id=self.experiment_id)
        self.out(f"benchmark run {bench_id} (experiment {self.config.experiment_name!r})")
        # Backends that can (Ray) run independent tasks concurrently; otherwise one after another.
        outcome.tasks.extend(
            self.backend.map_tasks(
                lambda task: self._task_hpo(task, bench_id, run_trials=hpo), self.plan.tasks
            )
        )
        results_text = self._log_results_table(bench_id, outcome.tasks)
        if hpo:
            self._log_efficiency(bench_id, outcome.tasks)
            self.tracker.set_tags(bench_id, {phase_tag(Phase.HPO): Phase.COMPLETE})
        repeats_text = ""
        if repeat and self.config.run_repetitions > 0:
            from terratorch.iterate.repeat import RepeatContext, run_repetitions

            context = RepeatContext.of(self, bench_id)
            outcome.repeats_csv, repeats_text = run_repetitions(context, outcome.tasks)
            self.tracker.set_tags(bench_id, {phase_tag(Phase.REPEATS): Phase.COMPLETE})
        tags = self.tracker.get_run(bench_id).data.tags
        complete = tags.get(phase_tag(Phase.HPO)) == Phase.COMPLETE and (
            self.config.run_repetitions == 0 or tags.get(phase_tag(Phase.REPEATS)) == Phase.COMPLETE
        )
        self.tracker.set_tags(bench_id, {STATE_TAG: "complete" if complete else "partial"})
        self.tracker.set_status(bench_id, "FINISHED")
        if summarize:
            outcome.report = self._report(bench_id, report_dir, _digest(results_text, repeats_text))
        for task in outcome.tasks:
            value = "-" if task.best_value is None else f"{task.best_value:.4g}"
            self.out(
                f"task={task.name} status={task.status} best={value} params={json.dumps(task.best_params)}"
            )
        return outcome

    def _open_stores(self) -> None:
        """Demo data, databases (created once even by workers started together), experiment."""
        if self.location.local_dir is not None:  # workers started together generate demo data once
            self.location.local_dir.mkdir(parents=True, exist_ok=True)
            with workers.file_lock(self.location.local_dir / ".demo_data.lock"):
                prepare_demo_data(self.config, self.out)
        else:
            prepare_demo_data(self.config, self.out)
        workers.init_sqlite_stores(self.location.tracking_uri, self.location.optuna_url)
        route_optuna_logging(self.verbose)
        self.tracker = Tracker(self.location)
        self.units = workers.UnitLedger(
            self.location.optuna_url, self.config.heartbeat_interval, out=self.out
        )
        tracker, name = self.tracker, self.config.experiment_name
        # retry: a worker started at the same moment may create the experiment first
        self.experiment_id = workers.retry(lambda: tracker.experiment_id(name))

    def _report(self, bench_id: str, report_dir: str | Path | None, signature: str) -> Path | None:
        """The report phase: written once per state of the results (by one worker), then tagged complete."""
        assert self.tracker is not None and self.units is not None
        written: list[Path | None] = []

        def write() -> None:
            written.append(self.summarize([bench_id], report_dir))
            workers.kill_point("report-written")

        try:
            if not self.units.run_once(f"{bench_id}/report/{signature}", write):
                written.append(self._report_path([bench_id], report_dir) / "report.html")
                self.out(f"report written by another worker: {written[-1]}")
        except Exception as error:  # the results are stored; the report can be rebuilt later
            self.out(
                f"report could not be written ({type(error).__name__}: {error}); rebuild it with --summarize"
            )
            return None
        self.tracker.set_tags(bench_id, {phase_tag(Phase.REPORT): Phase.COMPLETE})
        return written[-1]

    # -- benchmark run ---------------------------------------------------------------------------
    def _benchmark_run(self, parent_run_id: str | None, reuse: bool, report: bool) -> str:
        assert self.tracker is not None
        config_hash = self.config.config_hash()
        if parent_run_id:
            run = self.tracker.get_run(parent_run_id)
            level = run.data.tags.get(LEVEL_TAG)
            if level != RunLevel.BENCHMARK or run.info.experiment_id != self.experiment_id:
                raise ValueError(
                    f"--parent_run_id {parent_run_id} is not a benchmark run of experiment "
                    f"{self.config.experiment_name!r} (level={level!r}, "
                    f"experiment id {run.info.experiment_id})"
                )
            if run.data.tags.get(CONFIG_HASH_TAG) != config_hash:
                self.out(f"warning: run {parent_run_id} was started with a different config (hash differs)")
            self._reopen(parent_run_id)
            return parent_run_id
        found = self.tracker.search(
            self.experiment_id, {LEVEL_TAG: RunLevel.BENCHMARK, CONFIG_HASH_TAG: config_hash}
        )
        if found:
            latest = found[0]
            tags = latest.data.tags
            unfinished = tags.get(STATE_TAG) != "complete" or (
                report and tags.get(phase_tag(Phase.REPORT)) != Phase.COMPLETE
            )
            if unfinished or reuse:
                self.out(f"continuing benchmark run {latest.info.run_id} (same config hash {config_hash})")
                self._reopen(latest.info.run_id)
                return latest.info.run_id
        previous = found[0].info.run_id if found else "none"
        key = f"{self.config.experiment_name}/{config_hash}/benchmark-after/{previous}"
        if workers.claim(self.location.optuna_url, key):
            return self._new_benchmark_run(config_hash)

        # Another worker is creating this benchmark run right now: join it.
        def newer() -> str | None:
            runs = self.tracker.search(
                self.experiment_id, {LEVEL_TAG: RunLevel.BENCHMARK, CONFIG_HASH_TAG: config_hash}
            )
            return runs[0].info.run_id if runs and runs[0].info.run_id != previous else None

        try:
            run_id = workers.wait_for(newer, "the benchmark run", timeout=60)
        except TimeoutError:  # the claiming worker died before creating it
            return self._new_benchmark_run(config_hash)
        self.out(f"joining benchmark run {run_id} created by another worker")
        return run_id

    def _reopen(self, run_id: str) -> None:
        """Mark a continued benchmark run running; its report is due again (the results may change)."""
        assert self.tracker is not None
        self.tracker.set_status(run_id, "RUNNING")
        self.tracker.set_tags(run_id, {STATE_TAG: "running", phase_tag(Phase.REPORT): "pending"})

    def _new_benchmark_run(self, config_hash: str) -> str:
        assert self.tracker is not None
        cfg = self.config
        tags = {
            LEVEL_TAG: RunLevel.BENCHMARK,
            BACKBONE_TAG: cfg.backbone_label(),
            MASTER_SEED_TAG: cfg.seed,
            CONFIG_HASH_TAG: config_hash,
            STATE_TAG: "running",
            phase_tag(Phase.REPORT): "pending",
        }
        if cfg.description:
            tags[NOTE_TAG] = cfg.description
        run_id = self.tracker.create_run(self.experiment_id, cfg.run_name or cfg.experiment_name, tags)
        self.tracker.log_params(run_id, cfg.model_dump(mode="json"))
        source = Path(self.plan.source)
        original = source.read_text() if source.is_file() else None
        resolved = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        self.tracker.log_text(run_id, original or resolved, "config.yaml")
        self.tracker.log_text(run_id, resolved, "resolved_config.yaml")
        self.tracker.log_json(run_id, _versions(), "versions.json")
        self.out(f"new benchmark run {run_id} (config hash {config_hash})")
        return run_id

    # -- one task --------------------------------------------------------------------------------
    def _task_hpo(self, task: TaskPlan, bench_id: str, run_trials: bool) -> TaskOutcome:
        try:
            study = self._study(task, bench_id)
            task_run_id = self._task_run(task, bench_id, study)
            self._reconcile(task, study, task_run_id)
            if run_trials:
                self._run_trials(task, study, task_run_id)
            outcome = self._finish_task(task, study, task_run_id)
        except Exception as error:  # one broken task must not stop the others
            self.out(f"task={task.name} failed before its trials could run: {type(error).__name__}: {error}")
            return TaskOutcome(name=task.name, status="failed", error=f"{type(error).__name__}: {error}")
        workers.kill_point(f"after-task:{task.name}")
        return outcome

    def _study(self, task: TaskPlan, bench_id: str) -> Any:
        import optuna
        from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

        from terratorch.iterate.sampling import TrialSeededSampler

        cfg = self.config
        with warnings.catch_warnings():  # heartbeats are marked experimental, and we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                self.location.optuna_url,
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=2 * cfg.heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=cfg.max_retries),
            )
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
            if task.early_prune
            else optuna.pruners.NopPruner()
        )
        return optuna.create_study(
            study_name=study_name(cfg.experiment_name, task.name, bench_id),
            storage=storage,
            sampler=TrialSeededSampler(cfg.seed, task.name, bayesian=cfg.bayesian_search),
            pruner=pruner,
            direction="maximize" if task.direction == "max" else "minimize",
            load_if_exists=True,
        )

    def _task_run(self, task: TaskPlan, bench_id: str, study: Any) -> str:
        assert self.tracker is not None
        run_id = study.user_attrs.get(TASK_RUN_ATTR)
        if run_id is None:
            # Killed between creating the run and recording it in the study: find it by parent id + tag.
            existing = [
                r
                for r in self.tracker.children(self.experiment_id, bench_id, RunLevel.TASK)
                if r.data.tags.get(TASK_TAG) == task.name
            ]
            if existing:
                run_id = existing[0].info.run_id
            elif not workers.claim(self.location.optuna_url, f"{study.study_name}/task-run") and (
                run_id := _created_elsewhere(study)
            ):
                return run_id
            else:
                run_id = self.tracker.create_run(
                    self.experiment_id,
                    task.name,
                    {
                        LEVEL_TAG: RunLevel.TASK,
                        TASK_TAG: task.name,
                        BACKBONE_TAG: task.backbone_label,
                        TASK_TYPE_TAG: task.task_type,
                        METRIC_TAG: task.metric,
                        DIRECTION_TAG: task.direction,
                        STATUS_TAG: RunStatus.RUNNING,
                        STUDY_NAME_TAG: study.study_name,
                    },
                    parent_run_id=bench_id,
                )
            study.set_user_attr(TASK_RUN_ATTR, run_id)
        else:
            self.tracker.set_status(run_id, "RUNNING")
        return run_id

    def _reconcile(self, task: TaskPlan, study: Any, task_run_id: str) -> None:
        """Fail trials of dead processes (they are re-queued) and close their MLflow runs as KILLED."""
        import optuna
        from optuna.trial import TrialState

        assert self.tracker is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._expire_dead_trials(task, study)
        self._requeue_interrupted(study)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for run in self.tracker.children(self.experiment_id, task_run_id, RunLevel.TRIAL):
            if run.info.status != "RUNNING":
                continue
            number = int(run.data.tags.get(TRIAL_NUMBER_TAG, -1))
            if states.get(number) in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
                continue  # alive in another worker, or finished there and closed by its callback
            self.tracker.set_tags(
                run.info.run_id, {STATUS_TAG: RunStatus.FAILED, FAILURE_TAG: RunStatus.INTERRUPTED}
            )
            self.tracker.set_status(run.info.run_id, "KILLED")
            self.out(
                f"task={task.name}: trial run {run.info.run_id} was interrupted; its trial is queued again"
            )

    def _requeue_interrupted(self, study: Any) -> None:
        """Queue again, once, the trials a Ctrl-C/SIGTERM stopped (heartbeats only catch dead processes)."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        for trial in trials:
            if trial.state != TrialState.FAIL or not trial.user_attrs.get(INTERRUPTED_ATTR):
                continue
            if trial.number in retried:
                continue
            if workers.claim(self.location.optuna_url, f"{study.study_name}/requeue/{trial.number}"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    RetryHeartbeatStaleTrialCallback(max_retry=self.config.max_retries)(study, trial)

    def _expire_dead_trials(self, task: TaskPlan, study: Any) -> None:
        """Wait (at most the grace period) for trials of killed processes to go stale, then fail them."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            grace = 2 * self.config.heartbeat_interval
            self.out(
                f"task={task.name}: {len(running)} trial(s) marked running; waiting up to {grace + 2}s "
                "for their heartbeat to expire (a killed run) or continue (another live process)"
            )
            deadline = time.monotonic() + grace + 2
            while running and time.monotonic() < deadline:
                fail_stale_trials(study)
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if running:
                    time.sleep(1.0)
        fail_stale_trials(study)

    @staticmethod
    def _counts(study: Any) -> dict[str, int]:
        from optuna.trial import TrialState

        counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
        for trial in study.get_trials(deepcopy=False):
            if trial.state == TrialState.COMPLETE:
                counts["complete"] += 1
            elif trial.state == TrialState.PRUNED:
                counts["pruned"] += 1
            elif trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs:
                counts["failed"] += 1
            elif trial.state == TrialState.RUNNING:
                counts["running"] += 1
            elif trial.state == TrialState.WAITING:
                counts["waiting"] += 1
        return counts

    def _done(self, study: Any) -> int:
        counts = self._counts(study)
        return counts["complete"] + counts["pruned"] + counts["failed"] + counts["running"]

    def _run_trials(self, task: TaskPlan, study: Any, task_run_id: str) -> None:
        n_trials = self.config.n_trials
        objective = self._objective(task, task_run_id)
        callback = self._after_trial(task, task_run_id)
        attempts = 0
        limit = n_trials * (self.config.max_retries + 2)
        while self._done(study) < n_trials and attempts < limit:
            count = n_trials - self._done(study) if self.backend.parallel else 1
            self.backend.optimize(study, objective, n_trials=count, callbacks=[callback])
            attempts += 1
        workers.wait_for_peers(study, self.out, label=f"task={task.name}: ")

    def _objective(self, task: TaskPlan, task_run_id: str) -> Callable[[Any], float]:
        from terratorch.iterate.sampling import retry_root, trial_index

        cfg = self.config
        tracker = self.tracker
        experiment_id = self.experiment_id
        assert tracker is not None

        def objective(trial: Any) -> float:
            import optuna

            from terratorch.iterate import trial as training

            if workers.is_surplus(trial.study, trial.number, cfg.n_trials):
                workers.mark_surplus(trial)
                raise workers.SurplusTrialError("another worker already started the last trial")
            trials = trial.study.get_trials(deepcopy=False)
            frozen = next(t for t in trials if t.number == trial.number)
            original = retry_root(frozen)
            index = trial_index(trials, trial.number)
            seed = seeds.trial_seed(cfg.seed, task.name, index)
            values = sample(trial, task.space)
            resolved = task.resolved(values)
            run_id = tracker.create_run(
                experiment_id,
                f"{task.name}-trial-{trial.number}",
                {
                    LEVEL_TAG: RunLevel.TRIAL,
                    TASK_TAG: task.name,
                    TRIAL_NUMBER_TAG: trial.number,
                    TRIAL_INDEX_TAG: index,
                    STATUS_TAG: RunStatus.RUNNING,
                    SEED_TAG: seed,
                    **({RETRY_OF_TAG: original} if original is not None else {}),
                },
                parent_run_id=task_run_id,
            )
            trial.set_user_attr(RUN_ATTR, run_id)
            trial.set_user_attr("seed", seed)
            trial.set_user_attr(INDEX_ATTR, index)
            tracker.log_params(run_id, values)
            pruning = [training.PruningCallback(trial, task.metric)] if task.early_prune else []
            try:
                result = training.run_tracked(
                    tracker,
                    run_id,
                    task,
                    resolved,
                    seed=seed,
                    checkpoints=cfg.save_models or cfg.test_models,
                    save_models=cfg.save_models,
                    test=cfg.test_models,
                    test_on_best=cfg.report_on_best_val,
                    extra_callbacks=pruning,
                    kill_label=f"trial-epoch:{task.name}:{index}",
                )
            except optuna.TrialPruned:
                raise
            except Exception as error:
                trial.set_user_attr(ERROR_ATTR, f"{type(error).__name__}: {error}"[:2000])
                raise
            except KeyboardInterrupt:  # Ctrl-C / SIGTERM: recorded, and queued again on the next run
                trial.set_user_attr(INTERRUPTED_ATTR, True)
                tracker.set_tags(run_id, {STATUS_TAG: RunStatus.FAILED, FAILURE_TAG: RunStatus.INTERRUPTED})
                tracker.set_status(run_id, "KILLED")
                raise
            tracker.log_metrics(run_id, {"trial_value": result.value, "best_epoch": result.best_epoch or 0})
            trial.set_user_attr("epochs", result.epochs)
            if result.input_shape is not None:
                trial.set_user_attr("input_shape", list(result.input_shape))
            tracker.set_tags(run_id, {STATUS_TAG: RunStatus.FINISHED})
            return float(result.value)

        return objective

    def _after_trial(self, task: TaskPlan, task_run_id: str) -> Callable[[Any, Any], None]:
        from optuna.trial import TrialState

        def callback(study: Any, frozen: Any) -> None:
            assert self.tracker is not None
            if frozen.user_attrs.get(workers.SURPLUS_ATTR):
                return  # never started: no MLflow run, not counted
            run_id = frozen.user_attrs.get(RUN_ATTR)
            if run_id and frozen.state == TrialState.FAIL and ERROR_ATTR not in frozen.user_attrs:
                # Its worker died mid-trial (Ray): the trial is queued again, like a killed local run.
                self.tracker.set_tags(
                    run_id, {STATUS_TAG: RunStatus.FAILED, FAILURE_TAG: RunStatus.INTERRUPTED}
                )
            status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}.get(
                frozen.state, "FAILED"
            )
            if run_id:
                if frozen.state == TrialState.PRUNED:
                    self.tracker.set_tags(run_id, {STATUS_TAG: RunStatus.PRUNED})
                self.tracker.set_status(run_id, status)
            self.out(self._progress_line(task, study, frozen))
            workers.kill_point(f"after-trial:{task.name}:{frozen.user_attrs.get(INDEX_ATTR)}")

        return callback

    def _progress_line(self, task: TaskPlan, study: Any, frozen: Any) -> str:
        from optuna.trial import TrialState

        done = self._done(study)
        if frozen.state == TrialState.COMPLETE:
            value = f"{frozen.value:.4g}"
        elif frozen.state == TrialState.PRUNED:
            last = max(frozen.intermediate_values) if frozen.intermediate_values else 0
            value = f"pruned@epoch{last}"
        else:
            value = f"failed ({frozen.user_attrs.get(ERROR_ATTR, 'interrupted')[:120]})"
        try:
            best = f"{study.best_value:.4g}"
        except ValueError:
            best = "-"
        seconds = frozen.duration.total_seconds() if frozen.duration else 0.0
        return (
            f"task={task.name} trial={done}/{self.config.n_trials} value={value} best={best} ({seconds:.1f}s)"
        )

    def _finish_task(self, task: TaskPlan, study: Any, task_run_id: str) -> TaskOutcome:
        from optuna.trial import TrialState

        assert self.tracker is not None
        counts = self._counts(study)
        outcome = TaskOutcome(
            name=task.name,
            status="failed",
            task_run_id=task_run_id,
            n_complete=counts["complete"],
            n_failed=counts["failed"],
            n_pruned=counts["pruned"],
        )
        if counts["complete"]:
            best = study.best_trial
            outcome.status = "finished"
            outcome.best_value = float(best.value)
            outcome.best_params = decode(task.space, best.params)
            outcome.best_trial_run_id = best.user_attrs.get(RUN_ATTR)
            shape = best.user_attrs.get("input_shape")
            outcome.input_shape = tuple(shape) if shape else None
            state = f"{study.study_name}/reported/{counts['complete']}-{counts['pruned']}-{counts['failed']}"
            if workers.claim(self.location.optuna_url, state):  # several workers reach the same state
                self.tracker.log_metrics(task_run_id, {"best_value": outcome.best_value})
                best = {f"best/{k}": v for k, v in outcome.best_params.items()}
                self.tracker.log_params(task_run_id, best)
        else:
            errors = [t.user_attrs.get(ERROR_ATTR) for t in study.get_trials(states=(TrialState.FAIL,))]
            outcome.error = next((e for e in reversed(errors) if e), "no trial finished")
            self.out(f"task={task.name}: all trials failed; last error: {outcome.error}")
        tags = {
            STATUS_TAG: outcome.status,
            N_COMPLETE_TAG: counts["complete"],
            N_FAILED_TAG: counts["failed"],
            N_PRUNED_TAG: counts["pruned"],
        }
        if outcome.best_trial_run_id:
            tags[BEST_TRIAL_RUN_ID_TAG] = outcome.best_trial_run_id
        self.tracker.set_tags(task_run_id, tags)
        self.tracker.set_status(task_run_id, "FINISHED" if outcome.status == "finished" else "FAILED")
        return outcome

    # -- benchmark-level artifacts ----------------------------------------------------------------
    def _log_results_table(self, bench_id: str, tasks: list[TaskOutcome]) -> str:
        """Log ``results.csv`` on the benchmark run (once per content, by one worker); returns the text."""
        assert self.tracker is not None and self.units is not None
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "task",
                "task_type",
                "metric",
                "direction",
                "status",
                "best_value",
                "n_complete",
                "n_failed",
                "n_pruned",
                "best_params",
                "task_run_id",
                "best_trial_run_id",
            ]
        )
        plans = {t.name: t for t in self.plan.tasks}
        for outcome in tasks:
            plan = plans[outcome.name]
            writer.writerow(
                [
                    outcome.name,
                    plan.task_type,
                    plan.metric,
                    plan.direction,
                    outcome.status,
                    "" if outcome.best_value is None else outcome.best_value,
                    outcome.n_complete,
                    outcome.n_failed,
                    outcome.n_pruned,
                    json.dumps(outcome.best_params),
                    outcome.task_run_id or "",
                    outcome.best_trial_run_id or "",
                ]
            )
        text = buffer.getvalue()
        tracker = self.tracker
        self.units.run_once(
            f"{bench_id}/results/{_digest(text)}", lambda: tracker.log_text(bench_id, text, "results.csv")
        )
        return text

    def _log_efficiency(self, bench_id: str, tasks: list[TaskOutcome]) -> None:
        """Measure parameters/GFLOPs/throughput/memory of the first task's best model (once)."""
        assert self.units is not None
        first = next((t for t in tasks if t.status == "finished" and t.input_shape), None)
        if first is not None:
            self.units.run_once(
                f"{bench_id}/efficiency/{first.best_trial_run_id}",
                lambda: self._measure_efficiency(bench_id, first),
            )

    def _measure_efficiency(self, bench_id: str, first: TaskOutcome) -> None:
        assert self.tracker is not None and first.input_shape is not None
        try:
            from terratorch.iterate import trial
            from terratorch.iterate.efficiency import measure_efficiency

            plan = next(p for p in self.plan.tasks if p.name == first.name)
            model = trial.build_task(plan.resolved(first.best_params)["task"]).model
            figures = measure_efficiency(model, (1, *first.input_shape))
        except Exception as error:  # efficiency is informative; never fail the benchmark on it
            self.out(f"efficiency measurement skipped: {type(error).__name__}: {error}")
            return
        metrics = _efficiency_metrics(figures)
        self.tracker.log_metrics(bench_id, metrics)
        self.out("efficiency " + " ".join(f"{k.split('/')[1]}={v:.4g}" for k, v in metrics.items()))

    # -- summary ---------------------------------------------------------------------------------
    def _report_path(self, parent_run_ids: list[str] | None, report_dir: str | Path | None) -> Path:
        if report_dir is not None:
            return Path(report_dir)
        base = self.location.local_dir or Path.cwd()
        suffix = parent_run_ids[0][:8] if parent_run_ids else "all"
        return base / "reports" / f"{self.config.experiment_name}_{suffix}"

    def summarize(
        self,
        parent_run_ids: list[str] | None,
        report_dir: str | Path | None = None,
        experiments: list[str] | None = None,
    ) -> Path | None:
        """Write the report (tables, plots, report.html) for these benchmark runs; returns report.html."""
        try:
            from terratorch.iterate.summarize import load_results, write_summary
        except ImportError as error:
            self.out(f"summary skipped: the report module is not available ({error})")
            return None
        names = experiments or [self.config.experiment_name]
        results = load_results(self.location.tracking_uri, names, parent_run_ids)
        folder = self._report_path(parent_run_ids, report_dir)
        path = Path(
            write_summary(
                results,
                folder,
                reference_ranges=self.config.reference_ranges,
                normalization=self.config.normalization,
            )
        )
        self.out(f"report written to {path}")
        return path


def _efficiency_metrics(figures: Mapping[str, Any]) -> dict[str, float]:
    """Map the efficiency module's keys onto the ``efficiency/*`` metric names of the contract."""
    wanted = {
        "params": ("params", "parameters"),
        "gflops": ("gflops",),
        "samples_per_s": ("samples_per_s", "throughput", "samples/s"),
        "peak_mem_mb": ("peak_mem_mb", "peak_memory_mb", "peak_mem"),
    }
    metrics: dict[str, float] = {}
    for name, keys in wanted.items():
        for key in keys:
            if key in figures and figures[key] is not None:
                metrics[f"efficiency/{name}"] = float(figures[key])
                break
    return metrics


def _make_demo(root: Path, task: str, options: dict[str, Any]) -> None:
    """Write one demo dataset: GEO-Bench tasks (``m-eurosat``...) in their layout, detection data, or ours."""
    if task == "object_detection":
        from terratorch.datasets.demo import make_detection_demo

        if "num_classes" in options:
            raise ValueError(
                "demo_data for object_detection always has 2 classes (+ background); drop num_classes"
            )
        make_detection_demo(root, **options)
        return
    if task.startswith("m-"):
        from terratorch.datasets.geobench_demo import make_geobench_demo

        unsupported = sorted(set(options) - {"n_train", "size", "seed"})
        if unsupported:
            raise ValueError(
                f"demo_data for GEO-Bench task {task!r} takes n_train (samples per split), size and seed; "
                f"got {unsupported}"
            )
        make_geobench_demo(
            root,
            [task],
            n_samples=options.get("n_train", 4),
            size=options.get("size", 32),
            seed=options.get("seed", 0),
        )
        return
    from terratorch.datasets.demo import make_demo_dataset

    make_demo_dataset(root, task, **options)


def prepare_demo_data(config: Any, out: Printer) -> None:
    """Generate the ``demo_data`` datasets whose root folder does not exist yet."""
    if not config.demo_data:
        return
    import os
    import shutil

    for spec in config.demo_data:
        root = Path(spec.root)
        if root.exists() and any(root.iterdir()):
            continue
        options = {k: v for k, v in spec.model_dump().items() if k not in ("task", "root") and v is not None}
        out(f"generating demo data: {spec.task} -> {root}")
        # Written aside and renamed into place, so a concurrent worker sees either no folder or a whole one.
        staging = root.with_name(f".{root.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        _make_demo(staging, spec.task, options)
        try:
            if root.exists() and not any(root.iterdir()):
                root.rmdir()
            staging.rename(root)
        except OSError:  # another worker renamed its copy first; theirs is complete
            shutil.rmtree(staging, ignore_errors=True)
