"""The in-process backend: trials run sequentially in the calling process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.iterate.backends import Backend, Objective, StudyCallback

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Sequential trials in this process, with Optuna heartbeats so a killed run can be resumed.

    ``connect``, ``close`` and ``map_tasks`` keep the :class:`Backend` defaults (nothing to
    connect to; tasks run one after another).
    """

    name = "local"

    def optimize(
        self, study: Any, objective: Objective, n_trials: int, callbacks: Sequence[StudyCallback]
    ) -> None:
        """Run ``n_trials`` trials; exceptions inside trials are recorded as failed trials."""
        study.optimize(
            objective,
            n_trials=n_trials,
            callbacks=list(callbacks),
            catch=(Exception,),
            gc_after_trial=False,
            show_progress_bar=False,
        )
