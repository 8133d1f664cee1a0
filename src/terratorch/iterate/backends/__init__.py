"""Execution backends: where the trials of a study run.

A backend only decides *how* trials are executed; the study (sampler, storage, budget) and the
objective are built by :mod:`terratorch.iterate.runner`. :class:`LocalBackend` runs them one after
another in this process; a Ray backend (``ray`` extra, later) implements the same interface by
running :meth:`Backend.optimize` on several workers that share the Optuna RDB storage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BACKENDS", "Backend", "get_backend"]

Objective = Callable[[Any], float]
StudyCallback = Callable[[Any, Any], None]


class Backend(ABC):
    """Runs Optuna trials of a study."""

    name: str = "abstract"

    @abstractmethod
    def optimize(
        self, study: Any, objective: Objective, n_trials: int, callbacks: Sequence[StudyCallback]
    ) -> None:
        """Run ``n_trials`` trials of ``study`` (failures recorded by Optuna, never raised).

        Args:
            study: An ``optuna.Study`` on RDB storage.
            objective: ``objective(trial) -> value``; may raise ``optuna.TrialPruned`` or any error.
            n_trials: How many trials to start (waiting/retried trials are taken first).
            callbacks: Called as ``callback(study, frozen_trial)`` after each trial is stored.
        """


BACKENDS: dict[str, str] = {
    "local": "terratorch.iterate.backends.local:LocalBackend",
    "ray": "terratorch.iterate.backends.ray:RayBackend",
}


def get_backend(name: str = "local") -> Backend:
    """Instantiate the backend called ``name`` (``ValueError`` listing the valid names)."""
    import importlib

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {sorted(BACKENDS)}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)()
