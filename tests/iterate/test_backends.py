"""Execution backends (terratorch.iterate.backends)."""

from __future__ import annotations

import optuna
import pytest

from terratorch.iterate.backends import Backend, get_backend
from terratorch.iterate.backends.local import LocalBackend


def test_local_backend_records_failures_and_keeps_going():
    backend = get_backend("local")
    assert isinstance(backend, LocalBackend) and isinstance(backend, Backend)
    study = optuna.create_study()
    seen = []

    def objective(trial):
        if trial.number == 1:
            raise RuntimeError("boom")
        return float(trial.number)

    backend.optimize(study, objective, n_trials=3, callbacks=[lambda s, t: seen.append(t.state.name)])
    assert seen == ["COMPLETE", "FAIL", "COMPLETE"]


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'dask'; available: \['local', 'ray'\]"):
        get_backend("dask")
