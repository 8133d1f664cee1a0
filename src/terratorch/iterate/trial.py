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
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer

from terratorch.iterate import lightning_bridge

__all__ = [
    "MetricWatcher",
    "PruningCallback",
    "TrainingResult",
    "build_task",
    "run_training",
    "watch_callbacks",
]

EpochLogger = Callable[[int, Mapping[str, float]], None]


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


def _better(a: float, b: float | None, direction: str) -> bool:
    if b is None:
        return True
    return a > b if direction == "max" else a < b


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class MetricWatcher(Callback):
    """Tracks the monitored metric per validation epoch and forwards epoch metrics to a logger.

    Fixes an upstream behaviour: the watched metric is the task's own metric in the task's
    direction (upstream benchmarks watched ``val/loss``).

    Args:
        metric: Logged name, e.g. ``"val/mIoU"``.
        direction: ``"max"`` or ``"min"``.
        on_epoch: Called as ``on_epoch(epoch, metrics)`` with validation metrics after each validation
            and with the remaining (train) metrics at the end of each training epoch.
    """

    def __init__(self, metric: str, direction: str, on_epoch: EpochLogger | None = None) -> None:
        self.metric = metric
        self.direction = direction
        self.on_epoch = on_epoch
        self.history: list[float] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.input_shape: tuple[int, ...] | None = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Remember the shape of one input sample (used for the efficiency measurement)."""
        if self.input_shape is None and isinstance(batch, Mapping) and hasattr(batch.get("image"), "shape"):
            self.input_shape = tuple(int(s) for s in batch["image"].shape[1:])

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record the metric of this epoch (skipping the sanity check)."""
        if trainer.sanity_checking:
            return
        metrics = _scalars(trainer.callback_metrics)
        if self.metric not in metrics:
            logged = sorted(k for k in metrics if k.startswith("val/"))
            raise KeyError(
                f"the task never logged the benchmark metric {self.metric!r}; it logged {logged}. "
                "Fix 'metric' in the task config."
            )
        value = metrics[self.metric]
        epoch = trainer.current_epoch
        self.history.append(value)
        if math.isfinite(value) and _better(value, self.best, self.direction):
            self.best, self.best_epoch = value, epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch, {k: v for k, v in metrics.items() if k.startswith("val/")})

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forward the epoch's training metrics."""
        if self.on_epoch is not None:
            metrics = _scalars(trainer.callback_metrics)
            self.on_epoch(
                trainer.current_epoch, {k: v for k, v in metrics.items() if not k.startswith("val/")}
            )


class PruningCallback(Callback):
    """Reports the monitored metric to an Optuna trial each epoch and stops unpromising trials.

    A small stand-in for ``optuna-integration``'s Lightning callback (not a dependency): the
    pruner decides with the study's direction, which is the task's direction.

    Args:
        trial: The running ``optuna.Trial``.
        metric: Logged name of the task metric.
    """

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``trial.report`` the epoch value; raise ``optuna.TrialPruned`` when the pruner says so."""
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        import optuna

        value = float(trainer.callback_metrics[self.metric])
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.metric}={value:.4g})")


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
