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
