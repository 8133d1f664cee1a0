"""One training run of the benchmark: build datamodule, task and trainer from a resolved config, fit,
optionally test, and report the best epoch of the task's metric.

HPO trials and repetitions both call :func:`run_training`. Task, datamodule and trainer are built by
the LightningCLI machinery of ``terratorch fit`` (:mod:`terratorch.iterate.lightning_bridge`), so a
benchmark task builds exactly like the equivalent fine-tuning config. The resolved config is the
mapping produced by
:meth:`terratorch.iterate.config.TaskPlan.resolved`::

    {"datamodule": {"class_path": ..., "init_args": {...}},
     "task": {"class": "SemanticSegmentationTask", "model_factory": ..., "model_args": {...}, ...},
     "trainer": {"max_epochs": 2, ...}}
"""

from __future__ import annotations

import copy
import shutil
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from terratorch.iterate import lightning_bridge

if TYPE_CHECKING:
    from lightning import Callback, LightningModule

    from terratorch.iterate.watch import MetricWatcher, PruningCallback

__all__ = [
    "MetricWatcher",
    "PruningCallback",
    "TrainingResult",
    "build_task",
    "run_tracked",
    "run_training",
    "watch_callbacks",
]

EpochLogger = Callable[[int, Mapping[str, float]], None]


def __getattr__(name: str) -> Any:
    """``MetricWatcher`` and ``PruningCallback`` load Lightning, so they are imported on first use."""
    if name in ("MetricWatcher", "PruningCallback"):
        from terratorch.iterate import watch

        return getattr(watch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class TrainingResult:
    """Outcome of one training.

    Attributes:
        value: Best epoch value of the monitored metric (in the task's direction).
        best_epoch: Epoch (0-based) where ``value`` was reached.
        epochs: Number of validation epochs that ran.
        history: Monitored metric value per validation epoch.
        test_metrics: Metrics of ``trainer.test`` (empty unless testing was requested).
        best_checkpoint: Path of the best checkpoint (when checkpointing was on).
        input_shape: Shape of one input sample ``(C, H, W)`` or ``(C, T, H, W)``, seen in training.
    """

    value: float | None
    best_epoch: int | None
    epochs: int
    history: list[float] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    input_shape: tuple[int, ...] | None = None


def build_task(task_config: Mapping[str, Any]) -> LightningModule:
    """Build the task ``{"class": <name>, **init_args}`` with the CLI's parser (as ``terratorch fit``)."""
    return lightning_bridge.build_task(task_config)


def watch_callbacks(
    metric: str,
    direction: str,
    early_stop_patience: int | None,
    checkpoint_dir: str | Path | None,
    max_run_duration: str | None = None,
) -> list[dict[str, Any]]:
    """Config specs of early stopping and checkpointing on the task metric (not ``val/loss``), and the timer.

    They are ``{class_path, init_args}`` entries of ``trainer.callbacks``, built by the CLI.
    ``max_run_duration`` (``DD:HH:MM:SS``) stops the run after that time (Lightning ``Timer``).
    """
    callbacks: list[dict[str, Any]] = []
    if early_stop_patience:
        callbacks.append(
            {
                "class_path": "lightning.pytorch.callbacks.EarlyStopping",
                "init_args": {"monitor": metric, "mode": direction, "patience": early_stop_patience},
            }
        )
    if checkpoint_dir is not None:
        callbacks.append(
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {
                    "dirpath": str(checkpoint_dir),
                    "filename": "best",
                    "monitor": metric,
                    "mode": direction,
                    "save_top_k": 1,
                    "save_last": True,
                },
            }
        )
    if max_run_duration:
        callbacks.append(
            {"class_path": "lightning.pytorch.callbacks.Timer", "init_args": {"duration": max_run_duration}}
        )
    return callbacks


def _trainer_config(
    trainer_args: Mapping[str, Any], callbacks: list[dict[str, Any]], checkpointing: bool
) -> dict[str, Any]:
    args = copy.deepcopy(dict(trainer_args))
    args.setdefault("logger", False)
    args.setdefault("enable_model_summary", False)
    args["enable_checkpointing"] = checkpointing
    configured = args.pop("callbacks", None) or []
    args["callbacks"] = [*(configured if isinstance(configured, list) else [configured]), *callbacks]
    return args


def run_training(
    resolved: Mapping[str, Any],
    *,
    metric: str,
    direction: str,
    seed: int,
    extra_callbacks: Sequence[Callback] = (),
    on_epoch: EpochLogger | None = None,
    early_stop_patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    test: bool = False,
    test_on_best: bool = True,
    max_run_duration: str | None = None,
) -> TrainingResult:
    """Train once and return the best epoch of ``metric``.

    Args:
        resolved: The resolved config (``datamodule``, ``task``, ``trainer``).
        metric: Task metric to watch (e.g. ``val/mIoU``).
        direction: ``"max"`` or ``"min"``.
        seed: Seed for ``lightning.seed_everything`` (python, numpy, torch, dataloader workers).
        extra_callbacks: More Lightning callbacks (e.g. :class:`PruningCallback`).
        on_epoch: Receives ``(epoch, metrics)`` for tracking.
        early_stop_patience: Stop after this many epochs without improvement of ``metric``.
        checkpoint_dir: Keep the best (and last) checkpoint here; required for ``test_on_best``.
        test: Run ``trainer.test`` after fitting.
        test_on_best: Test the best-validation checkpoint (else the final weights).
        max_run_duration: Stop training after this long (``DD:HH:MM:SS``).

    Raises:
        FloatingPointError: The metric was never finite (diverged training).
        Exception: Anything raised while building or training propagates (the caller records it).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from terratorch.iterate.watch import MetricWatcher, _scalars

    watcher = MetricWatcher(metric, direction, on_epoch)
    specs = watch_callbacks(metric, direction, early_stop_patience, checkpoint_dir, max_run_duration)
    checkpointing = checkpoint_dir is not None
    trainer_args = _trainer_config(resolved.get("trainer", {}), specs, checkpointing=checkpointing)
    task, datamodule, trainer = lightning_bridge.build(
        {**resolved, "trainer": trainer_args}, seed=seed, callbacks=[watcher, *extra_callbacks]
    )
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    trainer.fit(task, datamodule=datamodule)
    if watcher.best is None:
        raise FloatingPointError(
            f"{metric} was never finite in {len(watcher.history)} epochs ({watcher.history}); "
            "training diverged"
        )
    result = TrainingResult(
        value=watcher.best,
        best_epoch=watcher.best_epoch,
        epochs=len(watcher.history),
        history=list(watcher.history),
        best_checkpoint=checkpoint.best_model_path
        if checkpoint is not None and checkpoint.best_model_path
        else None,
        input_shape=watcher.input_shape,
    )
    if test:
        ckpt = result.best_checkpoint if test_on_best and result.best_checkpoint else None
        outputs = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        for output in outputs:
            result.test_metrics.update(_scalars(output))
    return result


def run_tracked(
    tracker: Any,
    run_id: str,
    task: Any,
    resolved: Mapping[str, Any],
    *,
    seed: int,
    checkpoints: bool,
    save_models: bool,
    test: bool,
    test_on_best: bool = True,
    extra_callbacks: Sequence[Callback] = (),
    required_metric: str | None = None,
    kill_label: str | None = None,
) -> TrainingResult:
    """Train once inside MLflow run ``run_id`` and record everything there (trials and repetitions).

    Logs the resolved config (``trial_config.yaml``), every epoch's metrics, the test metrics and,
    with ``save_models``, the best checkpoint. A failure is recorded in the run (``traceback.txt``,
    tags ``terratorch.status``/``terratorch.error``; ``pruned`` for ``optuna.TrialPruned``) and re-raised.

    Args:
        tracker: The benchmark's :class:`~terratorch.iterate.tracking.Tracker`.
        run_id: The MLflow run (already created by the caller).
        task: The :class:`~terratorch.iterate.config.TaskPlan` (metric, direction, stopping rules).
        resolved: Its resolved config for these hyperparameters.
        seed: Training seed.
        checkpoints: Keep the best checkpoint in a scratch folder (needed to test the best epoch).
        save_models: Log that checkpoint as an artifact.
        test: Run the test split after fitting.
        test_on_best: Test the best-validation checkpoint rather than the final weights.
        extra_callbacks: More Lightning callbacks (the pruning callback).
        required_metric: A test metric that must have been logged (a repetition's score).
        kill_label: Test hook name fired after each epoch is logged (see ``workers.kill_point``).
    """
    from terratorch.iterate import workers
    from terratorch.iterate.tracking import ERROR_TAG, STATUS_TAG, RunStatus

    trial_config = {"seed": seed, "metric": task.metric, "direction": task.direction, **resolved}
    tracker.log_text(run_id, yaml.safe_dump(trial_config, sort_keys=False), "trial_config.yaml")

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
        tracker.log_metrics(run_id, metrics, step=epoch)
        if kill_label is not None:
            workers.kill_point(kill_label)

    scratch = tracker.scratch_dir() if checkpoints else None
    try:
        result = run_training(
            resolved,
            metric=task.metric,
            direction=task.direction,
            seed=seed,
            extra_callbacks=extra_callbacks,
            on_epoch=on_epoch,
            early_stop_patience=task.early_stop_patience,
            max_run_duration=task.max_run_duration,
            checkpoint_dir=scratch,
            test=test,
            test_on_best=test_on_best,
        )
        if required_metric is not None and required_metric not in result.test_metrics:
            raise KeyError(
                f"the test run did not log {required_metric!r}; it logged {sorted(result.test_metrics)}"
            )
        if result.test_metrics:
            tracker.log_metrics(run_id, result.test_metrics)
        if save_models and result.best_checkpoint:
            tracker.log_file(run_id, result.best_checkpoint, artifact_path="checkpoints")
    except Exception as error:
        import optuna

        if isinstance(error, optuna.TrialPruned):
            tracker.set_tags(run_id, {STATUS_TAG: RunStatus.PRUNED})
        else:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            tracker.log_text(run_id, text, "traceback.txt")
            message = f"{type(error).__name__}: {error}"
            tracker.set_tags(run_id, {STATUS_TAG: RunStatus.FAILED, ERROR_TAG: message[:5000]})
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return result
