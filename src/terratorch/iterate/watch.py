"""The Lightning callbacks of a benchmark training: the metric watcher and the Optuna pruning hook.

They live apart from :mod:`terratorch.iterate.trial` so that importing the benchmark loop does not
import Lightning (the first training does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from lightning import Callback, LightningModule, Trainer

__all__ = ["EpochLogger", "MetricWatcher", "PruningCallback"]

EpochLogger = Callable[[int, Mapping[str, float]], None]


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
