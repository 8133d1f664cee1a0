"""The benchmark loop: for each task an Optuna study of training trials, tracked in MLflow.

State and resumption (DESIGN.md "Nothing is lost"):

* The **benchmark run** (top-level MLflow run) is tagged with the config hash. Running the same
  config again continues the newest benchmark run with that hash while it is not complete; a
  complete one is continued only with ``--continue_existing_experiments`` (or when only
  ``--repeat``/``--summarize`` is asked), otherwise a new benchmark run starts. ``--parent_run_id``
  picks one explicitly.
* Each task's **Optuna study** is named ``<experiment>/<task>/<benchmark run id>`` and keeps the
  task run id in its user attributes; trial runs carry their Optuna trial id as a tag.
* Optuna heartbeats mark trials of a killed process as failed; ``RetryHeartbeatStaleTrialCallback``
  queues them again with the same parameters, and their MLflow runs are closed as ``KILLED`` (kept,
  never deleted). Trials that raised (bad hyperparameters, NaN loss, OOM) count towards ``n_trials``
  and are not retried; killed trials do not count.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from terratorch.iterate import seeds, workers
from terratorch.iterate.config import BenchmarkPlan, TaskPlan
from terratorch.iterate.space import decode, sample
from terratorch.iterate.tracking import RunLevel, Tracker, resolve_storage

__all__ = ["BenchmarkOutcome", "BenchmarkRunner", "TaskOutcome", "study_name"]

Printer = Callable[[str], None]
STATE_TAG = "terratorch.state"
ERROR_ATTR = "error"  # Optuna user attr of trials that raised (they count towards n_trials)


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
        return workers.wait_for(
            lambda: study.user_attrs.get("mlflow_task_run_id"), "the task run", timeout=60
        )
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


class BenchmarkRunner:
    """Runs a validated :class:`~terratorch.iterate.config.BenchmarkPlan`.

    Args:
        plan: The validated plan (see :func:`terratorch.iterate.config.build_plan`).
        backend: Trial execution backend (default: :class:`~terratorch.iterate.backends.local.LocalBackend`).
        out: Where progress lines go (default ``print``).
    """

    def __init__(self, plan: BenchmarkPlan, backend: Any = None, out: Printer | None = None) -> None:
        from terratorch.iterate.backends import get_backend

        self.plan = plan
        self.config = plan.config
        self.backend = backend or get_backend("local")
        self.out = out or (lambda line: print(line, flush=True))
        self.location = resolve_storage(self.config.storage_uri, self.config.optuna_storage)
        self.tracker: Tracker | None = None
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
        """Run the requested phases (HPO, repetitions, summary) and return what happened."""
        if self.location.local_dir is not None:  # workers started together generate demo data once
            self.location.local_dir.mkdir(parents=True, exist_ok=True)
            with workers.file_lock(self.location.local_dir / ".demo_data.lock"):
                prepare_demo_data(self.config, self.out)
        else:
            prepare_demo_data(self.config, self.out)
        workers.init_sqlite_stores(self.location.tracking_uri, self.location.optuna_url)
        self.tracker = Tracker(self.location)
        tracker, name = self.tracker, self.config.experiment_name
        # retry: a worker started at the same moment may create the experiment first
        self.experiment_id = workers.retry(lambda: tracker.experiment_id(name))
        reuse = continue_existing or not hpo
        bench_id = self._benchmark_run(parent_run_id, reuse)
        outcome = BenchmarkOutcome(benchmark_run_id=bench_id, experiment_id=self.experiment_id)
        self.out(f"benchmark run {bench_id} (experiment {self.config.experiment_name!r})")
        # Backends that can (Ray) run independent tasks concurrently; otherwise one after another.
        map_tasks = getattr(self.backend, "map_tasks", None) or (lambda fn, items: [fn(i) for i in items])
        outcome.tasks.extend(
            map_tasks(lambda task: self._task_hpo(task, bench_id, run_trials=hpo), self.plan.tasks)
        )
        self._log_results_table(bench_id, outcome.tasks)
        if hpo:
            self._log_efficiency(bench_id, outcome.tasks)
        if repeat and self.config.run_repetitions > 0:
            from terratorch.iterate.repeat import run_repetitions

            outcome.repeats_csv = run_repetitions(self, bench_id, outcome.tasks)
        complete = hpo and (repeat or self.config.run_repetitions == 0)
        self.tracker.set_tags(bench_id, {STATE_TAG: "complete" if complete else "partial"})
        self.tracker.set_status(bench_id, "FINISHED")
        if summarize:
            try:
                outcome.report = self.summarize([bench_id], report_dir)
            except Exception as error:  # the results are stored; the report can be rebuilt later
                self.out(
                    f"report could not be written ({type(error).__name__}: {error}); "
                    "rebuild it with --summarize"
                )
        for task in outcome.tasks:
            value = "-" if task.best_value is None else f"{task.best_value:.4g}"
            self.out(
                f"task={task.name} status={task.status} best={value} params={json.dumps(task.best_params)}"
            )
        return outcome

    # -- benchmark run ---------------------------------------------------------------------------
    def _benchmark_run(self, parent_run_id: str | None, reuse: bool) -> str:
        assert self.tracker is not None
        config_hash = self.config.config_hash()
        if parent_run_id:
            run = self.tracker.get_run(parent_run_id)
            level = run.data.tags.get("terratorch.level")
            if level != RunLevel.BENCHMARK or run.info.experiment_id != self.experiment_id:
                raise ValueError(
                    f"--parent_run_id {parent_run_id} is not a benchmark run of experiment "
                    f"{self.config.experiment_name!r} (level={level!r}, "
                    f"experiment id {run.info.experiment_id})"
                )
            if run.data.tags.get("terratorch.config_hash") != config_hash:
                self.out(f"warning: run {parent_run_id} was started with a different config (hash differs)")
            self._reopen(parent_run_id)
            return parent_run_id
        found = self.tracker.search(
            self.experiment_id,
            {"terratorch.level": RunLevel.BENCHMARK, "terratorch.config_hash": config_hash},
        )
        if found:
            latest = found[0]
            if latest.data.tags.get(STATE_TAG) != "complete" or reuse:
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
                self.experiment_id,
                {"terratorch.level": RunLevel.BENCHMARK, "terratorch.config_hash": config_hash},
            )
            return runs[0].info.run_id if runs and runs[0].info.run_id != previous else None

        try:
            run_id = workers.wait_for(newer, "the benchmark run", timeout=60)
        except TimeoutError:  # the claiming worker died before creating it
            return self._new_benchmark_run(config_hash)
        self.out(f"joining benchmark run {run_id} created by another worker")
        return run_id

    def _reopen(self, run_id: str) -> None:
        assert self.tracker is not None
        self.tracker.set_status(run_id, "RUNNING")
        self.tracker.set_tags(run_id, {STATE_TAG: "running"})

    def _new_benchmark_run(self, config_hash: str) -> str:
        assert self.tracker is not None
        cfg = self.config
        tags = {
            "terratorch.level": RunLevel.BENCHMARK,
            "terratorch.backbone": cfg.backbone_label(),
            "terratorch.master_seed": cfg.seed,
            "terratorch.config_hash": config_hash,
            STATE_TAG: "running",
        }
        if cfg.description:
            tags["mlflow.note.content"] = cfg.description
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
            return self._finish_task(task, study, task_run_id)
        except Exception as error:  # one broken task must not stop the others
            self.out(f"task={task.name} failed before its trials could run: {type(error).__name__}: {error}")
            return TaskOutcome(name=task.name, status="failed", error=f"{type(error).__name__}: {error}")

    def _study(self, task: TaskPlan, bench_id: str) -> Any:
        import optuna
        from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        cfg = self.config
        with warnings.catch_warnings():  # heartbeats are marked experimental, and we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                self.location.optuna_url,
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=2 * cfg.heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=cfg.max_retries),
            )
        seed = seeds.sampler_seed(cfg.seed, task.name)
        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if cfg.bayesian_search
            else optuna.samplers.RandomSampler(seed)
        )
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
            if task.early_prune
            else optuna.pruners.NopPruner()
        )
        return optuna.create_study(
            study_name=study_name(cfg.experiment_name, task.name, bench_id),
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize" if task.direction == "max" else "minimize",
            load_if_exists=True,
        )

    def _task_run(self, task: TaskPlan, bench_id: str, study: Any) -> str:
        assert self.tracker is not None
        run_id = study.user_attrs.get("mlflow_task_run_id")
        if run_id is None:
            # Killed between creating the run and recording it in the study: find it by parent id + tag.
            existing = [
                r
                for r in self.tracker.children(self.experiment_id, bench_id, RunLevel.TASK)
                if r.data.tags.get("terratorch.task") == task.name
            ]
            if existing:
                run_id = existing[0].info.run_id
            elif not workers.claim(study._storage, f"{study.study_name}/task-run") and (
                run_id := _created_elsewhere(study)
            ):
                return run_id
            else:
                run_id = self.tracker.create_run(
                    self.experiment_id,
                    task.name,
                    {
                        "terratorch.level": RunLevel.TASK,
                        "terratorch.task": task.name,
                        "terratorch.task_type": task.task_type,
                        "terratorch.metric": task.metric,
                        "terratorch.direction": task.direction,
                        "terratorch.status": "running",
                        "terratorch.study_name": study.study_name,
                    },
                    parent_run_id=bench_id,
                )
            study.set_user_attr("mlflow_task_run_id", run_id)
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
        states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
        for run in self.tracker.children(self.experiment_id, task_run_id, RunLevel.TRIAL):
            if run.info.status != "RUNNING":
                continue
            trial_id = int(run.data.tags.get("terratorch.optuna_trial_id", -1))
            if states.get(trial_id) in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
                continue  # alive in another worker, or finished there and closed by its callback
            self.tracker.set_tags(
                run.info.run_id, {"terratorch.status": "failed", "terratorch.failure": "interrupted"}
            )
            self.tracker.set_status(run.info.run_id, "KILLED")
            self.out(
                f"task={task.name}: trial run {run.info.run_id} was interrupted; its trial is queued again"
            )

    def _expire_dead_trials(self, task: TaskPlan, study: Any) -> None:
        """Wait (at most the grace period) for trials of killed processes to go stale, then fail them."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            grace = 2 * self.config.heartbeat_interval
            self.out(
                f"task={task.name}: {len(running)} trial(s) marked running; waiting up to {grace + 2}s "
                "for their "
                "heartbeat to expire (a killed run) or continue (another live process)"
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
        batch = getattr(self.backend, "map_tasks", None) is not None  # parallel backends take several
        while self._done(study) < n_trials and attempts < limit:
            count = n_trials - self._done(study) if batch else 1
            self.backend.optimize(study, objective, n_trials=count, callbacks=[callback])
            attempts += 1
        workers.wait_for_peers(study, self.out, label=f"task={task.name}: ")

    def _objective(self, task: TaskPlan, task_run_id: str) -> Callable[[Any], float]:
        from terratorch.iterate.trial import PruningCallback, run_training

        cfg = self.config
        tracker = self.tracker
        assert tracker is not None

        def objective(trial: Any) -> float:
            if workers.is_surplus(trial.study, trial._trial_id, cfg.n_trials):
                workers.mark_surplus(trial.study, trial._trial_id)
                raise workers.SurplusTrialError("another worker already started the last trial")
            original = trial.storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
            number = trial.number if original is None else original
            seed = seeds.trial_seed(cfg.seed, task.name, number)
            values = sample(trial, task.space)
            resolved = task.resolved(values)
            run_id = tracker.create_run(
                self.experiment_id,
                f"{task.name}-trial-{trial.number}",
                {
                    "terratorch.level": RunLevel.TRIAL,
                    "terratorch.task": task.name,
                    "terratorch.trial_number": trial.number,
                    "terratorch.optuna_trial_id": trial._trial_id,
                    "terratorch.status": "running",
                    "terratorch.seed": seed,
                    **({"terratorch.retry_of": original} if original is not None else {}),
                },
                parent_run_id=task_run_id,
            )
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("seed", seed)
            tracker.log_params(run_id, values)
            trial_config = {"seed": seed, "metric": task.metric, "direction": task.direction, **resolved}
            tracker.log_text(run_id, yaml.safe_dump(trial_config, sort_keys=False), "trial_config.yaml")

            def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
                tracker.log_metrics(run_id, metrics, step=epoch)

            scratch = tracker.scratch_dir() if (cfg.save_models or cfg.test_models) else None
            pruning = [PruningCallback(trial, task.metric)] if task.early_prune else []
            try:
                result = run_training(
                    resolved,
                    metric=task.metric,
                    direction=task.direction,
                    seed=seed,
                    extra_callbacks=pruning,
                    on_epoch=on_epoch,
                    early_stop_patience=task.early_stop_patience,
                    max_run_duration=task.max_run_duration,
                    checkpoint_dir=scratch,
                    test=cfg.test_models,
                    test_on_best=cfg.report_on_best_val,
                )
            except Exception as error:
                self._record_failure(trial, run_id, error)
                raise
            finally:
                if scratch is not None and not cfg.save_models:
                    shutil.rmtree(scratch, ignore_errors=True)
            tracker.log_metrics(run_id, {"trial_value": result.value, "best_epoch": result.best_epoch or 0})
            if result.test_metrics:
                tracker.log_metrics(run_id, result.test_metrics)
            if cfg.save_models and result.best_checkpoint:
                tracker.log_file(run_id, result.best_checkpoint, artifact_path="checkpoints")
                shutil.rmtree(scratch, ignore_errors=True)
            trial.set_user_attr("epochs", result.epochs)
            if result.input_shape is not None:
                trial.set_user_attr("input_shape", list(result.input_shape))
            tracker.set_tags(run_id, {"terratorch.status": "finished"})
            return float(result.value)

        return objective

    def _record_failure(self, trial: Any, run_id: str, error: BaseException) -> None:
        import optuna

        assert self.tracker is not None
        if isinstance(error, optuna.TrialPruned):
            self.tracker.set_tags(run_id, {"terratorch.status": "pruned"})
            return
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.tracker.log_text(run_id, text, "traceback.txt")
        message = f"{type(error).__name__}: {error}"
        trial.set_user_attr(ERROR_ATTR, message[:2000])
        self.tracker.set_tags(run_id, {"terratorch.status": "failed", "terratorch.error": message[:5000]})

    def _after_trial(self, task: TaskPlan, task_run_id: str) -> Callable[[Any, Any], None]:
        from optuna.trial import TrialState

        def callback(study: Any, frozen: Any) -> None:
            assert self.tracker is not None
            if frozen.user_attrs.get(workers.SURPLUS_ATTR):
                return  # never started: no MLflow run, not counted
            run_id = frozen.user_attrs.get("mlflow_run_id")
            if run_id and frozen.state == TrialState.FAIL and ERROR_ATTR not in frozen.user_attrs:
                # Its worker died mid-trial (Ray): the trial is queued again, like a killed local run.
                self.tracker.set_tags(
                    run_id, {"terratorch.status": "failed", "terratorch.failure": "interrupted"}
                )
            status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}.get(
                frozen.state, "FAILED"
            )
            if run_id:
                if frozen.state == TrialState.PRUNED:
                    self.tracker.set_tags(run_id, {"terratorch.status": "pruned"})
                self.tracker.set_status(run_id, status)
            self.out(self._progress_line(task, study, frozen))

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
            outcome.best_trial_run_id = best.user_attrs.get("mlflow_run_id")
            shape = best.user_attrs.get("input_shape")
            outcome.input_shape = tuple(shape) if shape else None
            state = f"{study.study_name}/reported/{counts['complete']}-{counts['pruned']}-{counts['failed']}"
            if workers.claim(study._storage, state):  # several workers reach the same final state
                self.tracker.log_metrics(task_run_id, {"best_value": outcome.best_value})
                best = {f"best/{k}": v for k, v in outcome.best_params.items()}
                self.tracker.log_params(task_run_id, best)
        else:
            errors = [t.user_attrs.get(ERROR_ATTR) for t in study.get_trials(states=(TrialState.FAIL,))]
            outcome.error = next((e for e in reversed(errors) if e), "no trial finished")
            self.out(f"task={task.name}: all trials failed; last error: {outcome.error}")
        tags = {
            "terratorch.status": outcome.status,
            "terratorch.n_complete": counts["complete"],
            "terratorch.n_failed": counts["failed"],
            "terratorch.n_pruned": counts["pruned"],
        }
        if outcome.best_trial_run_id:
            tags["terratorch.best_trial_run_id"] = outcome.best_trial_run_id
        self.tracker.set_tags(task_run_id, tags)
        self.tracker.set_status(task_run_id, "FINISHED" if outcome.status == "finished" else "FAILED")
        return outcome

    # -- benchmark-level artifacts ----------------------------------------------------------------
    def _log_results_table(self, bench_id: str, tasks: list[TaskOutcome]) -> None:
        assert self.tracker is not None
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
        self.tracker.log_text(bench_id, buffer.getvalue(), "results.csv")

    def _log_efficiency(self, bench_id: str, tasks: list[TaskOutcome]) -> None:
        """Measure parameters/GFLOPs/throughput/memory of the first task's best model (once)."""
        assert self.tracker is not None
        first = next((t for t in tasks if t.status == "finished" and t.input_shape), None)
        if first is None:
            return
        if not workers.claim(self.location.optuna_url, f"{bench_id}/efficiency/{first.best_trial_run_id}"):
            return  # already measured for this best model (by another worker or an earlier run)
        try:
            from terratorch.iterate.efficiency import measure_efficiency
            from terratorch.iterate.trial import build_task

            plan = next(p for p in self.plan.tasks if p.name == first.name)
            model = build_task(plan.resolved(first.best_params)["task"]).model
            figures = measure_efficiency(model, (1, *first.input_shape))
        except Exception as error:  # efficiency is informative; never fail the benchmark on it
            self.out(f"efficiency measurement skipped: {type(error).__name__}: {error}")
            return
        metrics = _efficiency_metrics(figures)
        self.tracker.log_metrics(bench_id, metrics)
        self.out("efficiency " + " ".join(f"{k.split('/')[1]}={v:.4g}" for k, v in metrics.items()))

    # -- summary ---------------------------------------------------------------------------------
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
        if report_dir is None:
            base = self.location.local_dir or Path.cwd()
            suffix = parent_run_ids[0][:8] if parent_run_ids else "all"
            report_dir = base / "reports" / f"{self.config.experiment_name}_{suffix}"
        results = load_results(self.location.tracking_uri, names, parent_run_ids)
        path = Path(write_summary(results, Path(report_dir), reference_ranges=self.config.reference_ranges))
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


def prepare_demo_data(config: Any, out: Printer) -> None:
    """Generate the ``demo_data`` datasets whose root folder does not exist yet."""
    if not config.demo_data:
        return
    for spec in config.demo_data:
        root = Path(spec.root)
        if root.exists() and any(root.iterdir()):
            continue
        from terratorch.datasets.demo import make_demo_dataset

        options = {k: v for k, v in spec.model_dump().items() if k not in ("task", "root") and v is not None}
        out(f"generating demo data: {spec.task} -> {root}")
        make_demo_dataset(root, spec.task, **options)
