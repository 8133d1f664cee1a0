"""One training run of the benchmark: build datamodule, task and trainer from a resolved config, fit,
optionally test, and report the best epoch of the task's metric.

This is the only module of the benchmark tool that touches Lightning; HPO trials and repetitions
both call :func:`run_training`. The resolved config is the mapping produced by
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

from terratorch.iterate.config import DATAMODULE_MODULES, instantiate, resolve_class

__all__ = [
    "MetricWatcher",
    "PruningCallback",
    "TrainingResult",
    "build_datamodule",
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
    """Instantiate the task class named in ``task_config["class"]`` with the other keys as kwargs.

    ``{class_path, init_args}`` values (e.g. a backbone module in ``model_args.backbone``) are
    instantiated first.
    """
    kwargs = copy.deepcopy(dict(task_config))
    cls = resolve_class(kwargs.pop("class"), ("terratorch.tasks",))
    model_args = kwargs.get("model_args")
    if isinstance(model_args, Mapping):
        kwargs["model_args"] = {k: instantiate(v) for k, v in model_args.items()}
    return cls(**kwargs)


def build_datamodule(datamodule_config: Mapping[str, Any]) -> Any:
    """Instantiate the datamodule ``{class_path, init_args}`` (short names from terratorch.datamodules)."""
    return instantiate(dict(datamodule_config), DATAMODULE_MODULES)


def watch_callbacks(
    metric: str, direction: str, early_stop_patience: int | None, checkpoint_dir: str | Path | None
) -> list[Callback]:
    """Early stopping and checkpointing on the task metric in the task direction (not ``val/loss``)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    callbacks: list[Callback] = []
    if early_stop_patience:
        callbacks.append(EarlyStopping(monitor=metric, mode=direction, patience=early_stop_patience))
    if checkpoint_dir is not None:
        callbacks.append(
            ModelCheckpoint(
                dirpath=str(checkpoint_dir),
                filename="best",
                monitor=metric,
                mode=direction,
                save_top_k=1,
                save_last=True,
            )
        )
    return callbacks


def _trainer(trainer_args: Mapping[str, Any], callbacks: list[Callback], checkpointing: bool) -> Trainer:
    args = dict(trainer_args)
    args.setdefault("logger", False)
    args.setdefault("enable_model_summary", False)
    args["enable_checkpointing"] = checkpointing
    args["callbacks"] = [*list(args.pop("callbacks", None) or []), *callbacks]
    return Trainer(**args)


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

    Raises:
        FloatingPointError: The metric was never finite (diverged training).
        Exception: Anything raised while building or training propagates (the caller records it).
    """
    from lightning import seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint

    seed_everything(seed, workers=True, verbose=False)
    datamodule = build_datamodule(resolved["datamodule"])
    task = build_task(resolved["task"])
    watcher = MetricWatcher(metric, direction, on_epoch)
    callbacks = [
        watcher,
        *extra_callbacks,
        *watch_callbacks(metric, direction, early_stop_patience, checkpoint_dir),
    ]
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    trainer = _trainer(resolved.get("trainer", {}), callbacks, checkpointing=checkpoint is not None)
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
