"""Cost of the benchmark tool: trials through ``terratorch iterate`` vs the same trainings run directly.

Part 1 (overhead): ``--trials`` HPO trials of a small segmentation task on demo data run through
the tool (Optuna study on SQLite, MLflow runs, config resolution, progress lines). Then the same
trainings (same resolved configs, same seeds) run directly through ``run_training`` without any
tracking. The difference per trial is the tool's overhead, reported in seconds and as a share of a
30-second trial (DESIGN.md budget: < 5%). One-off costs per benchmark (creating the stores and the
benchmark/task runs, the efficiency measurement) are reported separately.

Part 2 (pruning): the same search twice with the same seeded TPE sampler, with and without
``early_prune`` (median pruner on the task metric); prints the epochs trained and the best value of
each, and the epochs saved by pruning.

Usage: python benchmarks/iterate_overhead.py [--trials 6] [--epochs 3] [--prune-trials 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")
BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
TRIAL_SECONDS = 30.0


def _config(root: Path, storage: Path, trials: int, epochs: int, prune: bool, name: str) -> dict[str, Any]:
    init: dict[str, Any] = {
        "batch_size": 4,
        "img_grep": "*_img.tif",
        "label_grep": "*_mask.tif",
        "means": str(root / "means.txt"),
        "stds": str(root / "stds.txt"),
        "dataset_bands": BANDS,
        "constant_scale": 0.0001,
        "no_data_replace": 0.0,
        "no_label_replace": -1,
        "num_classes": 3,
    }
    for split in ("train", "val", "test"):
        init[f"{split}_data_root"] = str(root / "images")
        init[f"{split}_label_data_root"] = str(root / "labels")
        init[f"{split}_split"] = str(root / "splits" / f"{split}.txt")
    return {
        "experiment_name": name,
        "storage_uri": str(storage),
        "seed": 0,
        "n_trials": trials,
        "backbone": {"backbone": "timm_resnet18", "backbone_args": {"pretrained": False}},
        "defaults": {
            "trainer_args": {
                "accelerator": "cpu",
                "max_epochs": epochs,
                "num_sanity_val_steps": 0,
                "enable_progress_bar": False,
                "log_every_n_steps": 1,
            },
            "terratorch_task": {"plot_on_val": False},
        },
        "optimization_space": {"lr": {"min": 1.0e-5, "max": 1.0e-1, "type": "real", "log": True}},
        "tasks": [
            {
                "name": "segmentation",
                "type": "segmentation",
                "decoder": "FCNDecoder",
                "decoder_args": {"channels": 32},
                "num_classes": 3,
                "bands": BANDS,
                "loss": "ce",
                "ignore_index": -1,
                "early_prune": prune,
                "datamodule": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": init},
            }
        ],
    }


def _runner(raw: dict[str, Any]):
    from terratorch.iterate.config import build_plan, parse_config
    from terratorch.iterate.runner import BenchmarkRunner

    return BenchmarkRunner(build_plan(parse_config(raw)), out=lambda line: print("   ", line, flush=True))


def _study(runner, bench_id: str):
    import optuna

    from terratorch.iterate.runner import study_name

    name = study_name(runner.config.experiment_name, runner.plan.tasks[0].name, bench_id)
    return optuna.load_study(study_name=name, storage=runner.location.optuna_url)


def overhead(root: Path, work: Path, trials: int, epochs: int) -> None:
    """Part 1: each trial through the tool, then the same training directly (paired, interleaved).

    Interleaving keeps both sides of a pair under the same machine load; the overhead is the
    median of the paired differences (robust to load spikes) and the total difference.
    """
    import statistics

    from terratorch.iterate.backends.local import LocalBackend
    from terratorch.iterate.space import decode
    from terratorch.iterate.trial import run_training

    tool: list[float] = []
    direct: list[float] = []

    class PairedBackend(LocalBackend):
        """Times each trial through the tool, then runs the same training directly."""

        def optimize(self, study, objective, n_trials, callbacks):
            start = time.perf_counter()
            super().optimize(study, objective, n_trials, callbacks)
            tool.append(time.perf_counter() - start)
            last = study.trials[-1]
            resolved = task.resolved(decode(task.space, last.params))
            start = time.perf_counter()
            run_training(resolved, metric=task.metric, direction=task.direction, seed=last.user_attrs["seed"])
            direct.append(time.perf_counter() - start)

    runner = _runner(_config(root, work / "store", trials, epochs, prune=False, name="overhead"))
    runner.backend = PairedBackend()
    task = runner.plan.tasks[0]
    print("warm-up training (not timed) ...", flush=True)
    run_training(task.resolved({"lr": 1e-3}), metric=task.metric, direction=task.direction, seed=0)
    print(
        f"{trials} trials through the tool, each followed by the same training run directly ...", flush=True
    )
    start = time.perf_counter()
    runner.run(hpo=True, repeat=False, summarize=False)
    total = time.perf_counter() - start

    differences = [t - d for t, d in zip(tool, direct)]
    median = statistics.median(differences)
    mean = (sum(tool) - sum(direct)) / len(tool)
    print()
    print(f"trials: {len(tool)}, epochs per trial: {epochs}")
    print(f"direct trainings:      {sum(direct):8.2f} s ({sum(direct) / len(direct):.2f} s per trial)")
    print(f"through the tool:      {sum(tool):8.2f} s ({sum(tool) / len(tool):.2f} s per trial)")
    print(f"ratio tool / direct:   {sum(tool) / sum(direct):8.3f}x")
    print(f"per-trial differences: {', '.join(f'{d:+.2f}' for d in differences)} s")
    print(
        f"overhead per trial:    median {median:+.3f} s = {100 * median / TRIAL_SECONDS:+.2f}%, "
        f"mean {mean:+.3f} s = {100 * mean / TRIAL_SECONDS:+.2f}% of a {TRIAL_SECONDS:.0f} s trial "
        "(budget < 5%)"
    )
    one_off = total - sum(tool) - sum(direct)
    print(f"one-off per benchmark: {one_off:8.2f} s (stores, benchmark/task runs, efficiency measurement)")


def pruning(root: Path, work: Path, trials: int, epochs: int) -> None:
    """Part 2: epochs trained and best value with and without pruning (same seeded sampler)."""
    from optuna.trial import TrialState

    results = {}
    for prune in (False, True):
        label = "with pruning" if prune else "without pruning"
        print(f"{trials} trials {label} ...", flush=True)
        runner = _runner(
            _config(root, work / f"prune_{prune}", trials, epochs, prune=prune, name=f"prune_{prune}")
        )
        outcome = runner.run(hpo=True, repeat=False, summarize=False)
        study = _study(runner, outcome.benchmark_run_id)
        done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        trained = sum(len(t.intermediate_values) or int(t.user_attrs.get("epochs", 0)) for t in done)
        pruned = sum(t.state == TrialState.PRUNED for t in done)
        results[prune] = (trained, study.best_value, pruned)
    (plain_epochs, plain_best, _), (pruned_epochs, pruned_best, n_pruned) = results[False], results[True]
    print()
    print(f"without pruning: {plain_epochs} epochs, best val/mIoU {plain_best:.4f}")
    print(
        f"with pruning:    {pruned_epochs} epochs, best val/mIoU {pruned_best:.4f} ({n_pruned} trials pruned)"
    )
    saved = plain_epochs - pruned_epochs
    print(
        f"epochs saved:    {saved} ({100 * saved / max(plain_epochs, 1):.1f}%), "
        f"best value ratio pruned/plain {pruned_best / plain_best:.3f}"
    )


def main() -> None:
    """Run both parts in a temporary folder and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=6, help="trials for the overhead measurement")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--prune-trials", type=int, default=8, help="trials per pruning run (0: skip)")
    parser.add_argument("--size", type=int, default=64, help="demo chip size in pixels")
    args = parser.parse_args()

    from terratorch.datasets.demo import make_demo_dataset

    work = Path(tempfile.mkdtemp(prefix="iterate_overhead_"))
    try:
        root = make_demo_dataset(
            work / "data", "segmentation", n_train=16, n_val=8, n_test=8, size=args.size
        ).root
        overhead(root, work, args.trials, args.epochs)
        if args.prune_trials:
            pruning(root, work, args.prune_trials, args.epochs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
