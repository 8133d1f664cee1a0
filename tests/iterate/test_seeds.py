"""Seeds derived from the master seed (terratorch.iterate.seeds)."""

from __future__ import annotations

import subprocess
import sys

from terratorch.iterate import seeds


def test_derived_seeds_are_deterministic_and_distinct():
    first = [seeds.trial_seed(42, "seg", n) for n in range(20)]
    assert first == [seeds.trial_seed(42, "seg", n) for n in range(20)]
    assert len(set(first)) == 20
    assert all(0 <= s < 2**31 - 1 for s in first)


def test_seed_depends_on_master_task_and_role():
    assert seeds.trial_seed(42, "seg", 0) != seeds.trial_seed(43, "seg", 0)
    assert seeds.trial_seed(42, "seg", 0) != seeds.trial_seed(42, "cls", 0)
    assert seeds.trial_seed(42, "seg", 0) != seeds.repeat_seed(42, "seg", 0)
    assert seeds.sampler_seed(42, "seg") != seeds.sampler_seed(42, "cls")


def test_seeds_do_not_depend_on_python_hash_salt():
    code = "from terratorch.iterate.seeds import derive_seed; print(derive_seed(42, 'task', 'x', 3))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": salt},
            check=True,
        ).stdout.strip()
        for salt in ("1", "2")
    }
    assert outputs == {str(seeds.derive_seed(42, "task", "x", 3))}


def _lrs(study) -> list[float]:
    return [
        t.params["lr"] for t in sorted(study.trials, key=lambda t: t.number) if t.state.name == "COMPLETE"
    ]


def _sampler_study(url: str, bayesian: bool):
    import optuna

    from terratorch.iterate.sampling import TrialSeededSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = TrialSeededSampler(7, "seg", bayesian=bayesian)
    return optuna.create_study(study_name="s", storage=url, sampler=sampler, load_if_exists=True)


def _objective(trial) -> float:
    return -abs(trial.suggest_float("lr", 1e-4, 1e-1, log=True) - 1e-2)


def test_resumed_study_proposes_what_an_uninterrupted_one_does(tmp_path):
    for bayesian in (False, True):
        whole = _sampler_study(f"sqlite:///{tmp_path / f'whole{bayesian}.db'}", bayesian)
        whole.optimize(_objective, n_trials=4)
        url = f"sqlite:///{tmp_path / f'resumed{bayesian}.db'}"
        _sampler_study(url, bayesian).optimize(_objective, n_trials=1)
        _sampler_study(url, bayesian).optimize(_objective, n_trials=1)  # a new process: a new sampler
        _sampler_study(url, bayesian).optimize(_objective, n_trials=2)
        assert _lrs(_sampler_study(url, bayesian)) == _lrs(whole)
        assert len(set(_lrs(whole))) == 4  # each index has its own seed


def test_trial_index_skips_retries_and_surplus_trials(tmp_path):
    import optuna

    from terratorch.iterate.sampling import trial_index

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}")
    study.tell(study.ask(), 1.0)  # number 0 -> index 0
    killed = study.ask()  # number 1 -> index 1, then "killed"
    study.tell(killed, state=optuna.trial.TrialState.FAIL)
    retry = {"failed_trial": 1, "retry_history": [1]}
    study.add_trial(
        optuna.create_trial(state=optuna.trial.TrialState.WAITING, system_attrs=retry)
    )  # number 2
    rerun = study.ask()  # pops the waiting retry (number 2)
    fresh = study.ask()  # number 3
    trials = study.get_trials(deepcopy=False)
    assert [trial_index(trials, n) for n in (0, 1, rerun.number, fresh.number)] == [0, 1, 1, 2]
