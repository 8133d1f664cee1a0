"""Deterministic seeds derived from one master seed.

Every trial, repeat and sampler seed is a hash of the master seed and a label naming its role
(``"task:burn_scars/trial:3"``), so the same config reproduces the same seeds regardless of order,
resumption or which tasks are selected. Python's ``hash`` is salted per process, hence SHA-256.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed", "repeat_seed", "sampler_seed", "trial_sampler_seed", "trial_seed"]

_MAX = 2**31 - 1  # numpy, torch and Lightning all accept seeds in [0, 2**31)


def derive_seed(master_seed: int, *labels: object) -> int:
    """Seed in ``[0, 2**31 - 1)`` determined by ``master_seed`` and the ``labels`` naming its use."""
    text = "/".join([str(int(master_seed)), *(str(label) for label in labels)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % _MAX


def sampler_seed(master_seed: int, task: str) -> int:
    """Seed of the Optuna sampler for ``task``."""
    return derive_seed(master_seed, "task", task, "sampler")


def trial_seed(master_seed: int, task: str, trial_number: int) -> int:
    """Training seed of HPO trial ``trial_number`` of ``task``."""
    return derive_seed(master_seed, "task", task, "trial", trial_number)


def repeat_seed(master_seed: int, task: str, index: int) -> int:
    """Training seed of repetition ``index`` of the best configuration of ``task``."""
    return derive_seed(master_seed, "task", task, "repeat", index)


def trial_sampler_seed(master_seed: int, task: str, index: int) -> int:
    """Seed of the sampler that proposes the hyperparameters of trial ``index`` of ``task``."""
    return derive_seed(master_seed, "task", task, "sampler", index)
