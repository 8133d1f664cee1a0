"""Wall time of 8 short HPO trials on a local Ray instance: 1 vs 2 concurrent trials.

Both runs use the same benchmark (a random-init ResNet-18 on a tiny segmentation demo dataset,
1 epoch per trial, real Lightning training) and the same Ray instance; only
``ray.max_concurrent_trials`` differs. The Ray workers are warmed up first (torch, Lightning and
terratorch imported), so both runs measure trainings plus the benchmark tool's bookkeeping, not
worker start-up. Each trial reserves one CPU, so with 2 concurrent trials on a 2-core machine the
ideal speed-up is 2x; anything else (the driver, MLflow/Optuna writes, the OS) shares those cores.

Run: ``.venv/bin/python benchmarks/iterate_parallel.py [--trials 8 --cpus 2 --size 32]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def _config(root: Path, storage: Path, data: Any, trials: int) -> dict[str, Any]:
    """A one-task benchmark config over the demo dataset ``data`` (1 epoch, tiny batches)."""
    init = data.datamodule_kwargs(batch_size=4, num_workers=0)
    return {
        "experiment_name": "iterate_parallel",
        "storage_uri": str(storage),
        "seed": 0,
        "n_trials": trials,
        "bayesian_search": False,
        "heartbeat_interval": 5,
        "backbone": {"backbone": "timm_resnet18", "backbone_args": {"pretrained": False}},
        "defaults": {
            "trainer_args": {
                "accelerator": "cpu",
                "max_epochs": 1,
                "num_sanity_val_steps": 0,
                "enable_progress_bar": False,
                "log_every_n_steps": 1,
            },
            "terratorch_task": {"plot_on_val": False},
        },
        "optimization_space": {"lr": {"min": 1e-4, "max": 1e-2, "type": "real", "log": True}},
        "tasks": [
            {
                "name": "seg",
                "type": "segmentation",
                "decoder": "FCNDecoder",
                "decoder_args": {"channels": 16},
                "num_classes": 3,
                "bands": list(data.band_names),
                "loss": "ce",
                "ignore_index": -1,
                "datamodule": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": init},
            }
        ],
    }


def _warm_up(workers: int) -> None:
    """Import the training stack in ``workers`` Ray worker processes (reused by later tasks)."""
    import ray

    @ray.remote(num_cpus=1)
    def load() -> int:
        import os

        import lightning  # noqa: F401
        import timm  # noqa: F401

        import terratorch.iterate.trial  # noqa: F401

        time.sleep(1.0)  # hold the CPU so the next warm-up task lands on another worker
        return os.getpid()

    ray.get([load.remote() for _ in range(workers)])


def _run(raw: dict[str, Any], concurrent: int) -> tuple[float, int]:
    """Wall seconds of one HPO run with ``concurrent`` trials at a time, and its finished trials."""
    from terratorch.iterate.backends.ray import RayBackend
    from terratorch.iterate.config import build_plan, parse_config
    from terratorch.iterate.runner import BenchmarkRunner

    plan = build_plan(parse_config(raw))
    backend = RayBackend(cpus_per_trial=1, max_concurrent_trials=concurrent)
    backend.connect()
    runner = BenchmarkRunner(plan, backend=backend, out=lambda line: None)
    start = time.perf_counter()
    outcome = runner.run(repeat=False, summarize=False)
    return time.perf_counter() - start, outcome.tasks[0].n_complete


def main() -> None:
    """Print the wall time with 1 and with 2 concurrent trials and the speed-up ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--size", type=int, default=32, help="demo chip size (pixels)")
    args = parser.parse_args()

    import ray

    from terratorch.datasets.demo import make_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_demo_dataset(root / "data", "segmentation", n_train=16, n_val=8, n_test=4, size=args.size)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            _warm_up(min(2, args.cpus))
            timings = {}
            for concurrent in (1, 2):
                raw = _config(root, root / f"store_{concurrent}", data, args.trials)
                seconds, finished = _run(raw, concurrent)
                timings[concurrent] = seconds
                print(f"{args.trials} trials, {concurrent} concurrent: {seconds:.1f} s ({finished} finished)")
        finally:
            ray.shutdown()
    print(
        f"speed-up with 2 concurrent trials: {timings[1] / timings[2]:.2f}x (ideal 2.00x on {args.cpus} CPUs)"
    )


if __name__ == "__main__":
    main()
