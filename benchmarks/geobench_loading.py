"""GEO-Bench loading speed: our m-eurosat dataset vs bare h5py on the same files, and a ResNet-18 epoch.

Data are generated in GEO-Bench's layout (``make_geobench_demo``) at m-eurosat's real size:
13-band 64 px chips, 2000 training samples by default. Two figures:

1. samples/s of ``MEuroSATNonGeo`` (whole ``__getitem__``: band keys, 13 reads, stacking, label,
   tensors) against a bare h5py loop doing the same reads (sorted keys, stack, float32, label
   from ``label_map.json``), alternating rounds so load hits both alike. Target: ratio >= 0.8.
2. wall time of one training epoch of a timm ResNet-18 (no weights, 13 input bands, 10 classes)
   over ``MEuroSATNonGeoDataModule``'s train loader (normalisation included), and the share of it
   spent waiting for data.

Usage::

    python benchmarks/geobench_loading.py [--train-samples 2000] [--repeats 3] [--batch 32] [--epoch]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def bare_h5py_pass(directory: Path, names: list[str]) -> int:
    """Read every sample with h5py directly, as a hand-written loader would; returns the count."""
    import h5py

    with open(directory / "label_map.json") as handle:
        label_map = json.load(handle)
    labels = {sample: index for index, samples in enumerate(label_map.values()) for sample in samples}
    for name in names:
        with h5py.File(directory / f"{name}.hdf5", "r") as h5file:
            keys = sorted(key for key in h5file if key != "label")
            image = np.stack([h5file[key][()] for key in keys], axis=-1).astype(np.float32)
        torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        torch.tensor(labels[name])
    return len(names)


def dataset_pass(dataset: torch.utils.data.Dataset) -> int:
    """Read every sample through our dataset; returns the count."""
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset)


def timed(run) -> float:
    start = time.perf_counter()
    count = run()
    return count / (time.perf_counter() - start)


def epoch_time(data_root: Path, batch: int) -> tuple[float, float, int]:
    """One ResNet-18 training epoch: (total seconds, seconds waiting for batches, samples)."""
    import timm

    from terratorch.datamodules import MEuroSATNonGeoDataModule

    datamodule = MEuroSATNonGeoDataModule(data_root=str(data_root), batch_size=batch)
    datamodule.setup("fit")
    model = timm.create_model("resnet18", pretrained=False, in_chans=13, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    waiting = 0.0
    seen = 0
    start = time.perf_counter()
    mark = start
    for raw in datamodule.train_dataloader():
        batch_dict = datamodule.on_after_batch_transfer(raw, 0)
        waiting += time.perf_counter() - mark
        optimizer.zero_grad()
        loss = loss_fn(model(batch_dict["image"]), batch_dict["label"])
        loss.backward()
        optimizer.step()
        seen += len(batch_dict["label"])
        mark = time.perf_counter()
    return time.perf_counter() - start, waiting, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=2000, help="m-eurosat has 2000")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epoch", action="store_true", help="also time one ResNet-18 training epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from terratorch.datasets.geobench import MEuroSATNonGeo
    from terratorch.datasets.geobench_demo import make_geobench_demo

    with tempfile.TemporaryDirectory(prefix="geobench-bench-") as tmp:
        start = time.perf_counter()
        counts = {"train": args.train_samples, "valid": 4, "test": 4}
        directory = make_geobench_demo(tmp, ["m-eurosat"], n_samples=counts, size=args.size)["m-eurosat"]
        print(
            f"wrote {args.train_samples} samples of 13x{args.size}x{args.size} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        data_root = Path(tmp) / "classification_v1.0"
        dataset = MEuroSATNonGeo(data_root, split="train")
        names = list(dataset.sample_names)
        dataset_pass(dataset)  # warm the page cache for both readers
        ours, bare = [], []
        for _ in range(args.repeats):
            ours.append(timed(lambda: dataset_pass(dataset)))
            bare.append(timed(lambda: bare_h5py_pass(directory, names)))
        ratio = statistics.median(ours) / statistics.median(bare)
        print(
            f"samples/s: ours {statistics.median(ours):.0f} (runs {[round(v) for v in ours]}), "
            f"bare h5py {statistics.median(bare):.0f} (runs {[round(v) for v in bare]}); "
            f"ratio {ratio:.3f} (target >= 0.8)"
        )
        if args.epoch:
            total, waiting, seen = epoch_time(data_root, args.batch)
            print(
                f"ResNet-18 epoch: {seen} samples in {total:.1f} s ({seen / total:.1f} samples/s), "
                f"{waiting:.1f} s ({100 * waiting / total:.0f}%) waiting for data, batch {args.batch}, "
                f"{torch.get_num_threads()} torch threads"
            )


if __name__ == "__main__":
    main()
