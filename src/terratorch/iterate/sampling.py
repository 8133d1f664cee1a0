"""A sampler whose proposals do not depend on interruptions: trial ``k`` is seeded by ``k``.

Optuna samplers keep one random stream per process, so a study resumed after a kill (or shared
by several workers) restarts or splits that stream and proposes earlier trials' parameters again.
:class:`TrialSeededSampler` instead builds a fresh inner sampler for every trial, seeded with
``seeds.trial_sampler_seed(master_seed, task, k)``, where ``k`` is the trial's *index*
(:func:`trial_index`): its rank among the trials the study started fresh. A re-queued copy of an
interrupted trial keeps the index of the trial it retries. Trial ``k``'s parameters are therefore a
function of the master seed, the task, ``k`` and the completed trials (TPE reads those), however
often the benchmark was interrupted or however many workers share it.

Only Optuna's public sampler interface is used, so the class also travels to Ray workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.storages import RetryHeartbeatStaleTrialCallback

from terratorch.iterate import seeds

__all__ = ["TrialSeededSampler", "retry_root", "trial_index"]

SURPLUS_ATTR = "terratorch_surplus"  # same user attribute as terratorch.iterate.workers


def retry_root(trial: Any) -> int | None:
    """Number of the original trial that ``trial`` (a frozen trial) re-runs; ``None`` if it is fresh."""
    with warnings.catch_warnings():  # the retry helpers are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def trial_index(trials: Sequence[Any], number: int) -> int:
    """Index of trial ``number`` among ``trials`` (the frozen trials of its study).

    Fresh trials (not re-queued copies, not surplus) are indexed 0, 1, 2, ... in number order; a
    re-queued copy has the index of the trial it retries.
    """
    by_number = {t.number: t for t in trials}
    root = retry_root(by_number[number]) if number in by_number else None
    target = number if root is None else root
    return sum(
        1
        for n, t in by_number.items()
        if n < target and retry_root(t) is None and not t.user_attrs.get(SURPLUS_ATTR)
    )


class TrialSeededSampler(BaseSampler):
    """Random or TPE sampling with one seed per trial index (see the module docstring).

    Args:
        master_seed: The benchmark's master seed.
        task: Task name (part of every derived seed).
        bayesian: TPE (``True``) or uniform random sampling.
    """

    def __init__(self, master_seed: int, task: str, bayesian: bool) -> None:
        self.master_seed = int(master_seed)
        self.task = task
        self.bayesian = bayesian
        self._inner: dict[int, BaseSampler] = {}

    def __str__(self) -> str:
        return f"TrialSeededSampler({'TPE' if self.bayesian else 'random'}, task={self.task!r})"

    def _for(self, study: Any, trial: Any) -> BaseSampler:
        inner = self._inner.get(trial.number)
        if inner is None:
            index = trial_index(study.get_trials(deepcopy=False), trial.number)
            seed = seeds.trial_sampler_seed(self.master_seed, self.task, index)
            inner = TPESampler(seed=seed) if self.bayesian else RandomSampler(seed=seed)
            self._inner[trial.number] = inner
        return inner

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        """Delegate to this trial's inner sampler."""
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        """Delegate to this trial's inner sampler."""
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        """Delegate to this trial's inner sampler."""
        return self._for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        """Delegate to this trial's inner sampler."""
        self._for(study, trial).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        """Delegate, then forget the trial's inner sampler."""
        inner = self._inner.pop(trial.number, None)
        if inner is not None:
            inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's seed is derived, not drawn."""
