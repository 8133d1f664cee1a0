"""Execution backends: where the trials of a study run.

A backend only decides *how* trials are executed; the study (sampler, storage, budget) and the
objective are built by :mod:`terratorch.iterate.runner`. :class:`LocalBackend` runs them one after
another in this process; :class:`~terratorch.iterate.backends.ray.RayBackend` (``ray`` extra)
implements the same interface by running trials on several workers that share the Optuna RDB
storage.

The runner calls, in this order: :meth:`Backend.connect` (before anything is written to the
stores), :meth:`Backend.map_tasks` over the benchmark's tasks, :meth:`Backend.optimize` per task
(one trial at a time unless :attr:`Backend.parallel`), and :meth:`Backend.close` at the end. Every
method but ``optimize`` has a default here, so a backend only overrides what it changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["BACKENDS", "Backend", "get_backend"]

Objective = Callable[[Any], float]
StudyCallback = Callable[[Any, Any], None]
T = TypeVar("T")
R = TypeVar("R")


class Backend(ABC):
    """Runs Optuna trials of a study.

    Attributes:
        name: The name :func:`get_backend` knows the backend by.
        parallel: ``True`` when :meth:`optimize` runs several trials at once, so the runner hands
            it every remaining trial of a task in one call instead of one trial per call.
    """

    name: str = "abstract"
    parallel: bool = False

    def connect(self) -> None:  # noqa: B027 - an optional hook, no-op by default
        """Acquire what the trials need (a cluster connection) and check it works; idempotent.

        The default does nothing: an in-process backend has nothing to connect to.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, no-op by default
        """Release what :meth:`connect` acquired; safe to call several times, or without connecting."""

    def map_tasks(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Apply ``function`` to every task in ``items``; results keep the input order.

        The default runs the tasks one after another; a parallel backend may run them at once.
        """
        return [function(item) for item in items]

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

    def __enter__(self) -> Backend:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


BACKENDS: dict[str, str] = {
    "local": "terratorch.iterate.backends.local:LocalBackend",
    "ray": "terratorch.iterate.backends.ray:RayBackend",
}


def get_backend(name: str = "local") -> Backend:
    """Instantiate the backend called ``name``.

    Raises:
        ValueError: ``name`` is not in :data:`BACKENDS` (the message lists the valid names and
            the closest match).
    """
    import importlib

    from terratorch.choices import did_you_mean

    if name not in BACKENDS:
        hint = did_you_mean(name, BACKENDS)
        raise ValueError(f"unknown backend {name!r}; available: {sorted(BACKENDS)}.{hint}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)()
