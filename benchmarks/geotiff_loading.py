"""GeoTIFF loading throughput: the datamodule's train dataloader vs bare rasterio reads.

Both sides read the same files and bands (image chip + label chip per sample, one window each).
The datamodule additionally converts to float32, replaces nodata, checks labels, shuffles and
collates batches; the target is >= 0.8x the bare-rasterio throughput. Timings are the best of
``--repeats`` interleaved runs, so load from other processes affects both sides alike; the CPU
time of this process is printed too, as it is less sensitive to other processes on a shared
machine.

Run: ``.venv/bin/python benchmarks/geotiff_loading.py [--n 256 --size 64 --bands 6 --batch-size 16]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _timed(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def iterate_datamodule(datamodule) -> None:
    """One epoch of the train dataloader (num_workers=0): read, convert, check, shuffle, batch."""
    for _ in datamodule.train_dataloader():
        pass


def iterate_rasterio(pairs, indexes) -> None:
    """Open/read/close every image (selected bands) and label with rasterio, nothing else."""
    import rasterio

    for image_path, label_path in pairs:
        with rasterio.open(image_path) as src:
            src.read(indexes)
        with rasterio.open(label_path) as src:
            src.read(1)


def main() -> None:
    """Print samples/s of both loaders and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="chips")
    parser.add_argument("--size", type=int, default=64, help="chip size (pixels)")
    parser.add_argument("--bands", type=int, default=6, help="bands per chip")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from terratorch.datasets.demo import make_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        info = make_demo_dataset(
            Path(tmp), "segmentation", n_train=args.n, n_val=1, n_test=1, size=args.size, num_bands=args.bands
        )
        output = info.band_names[: max(1, args.bands - 1)]  # a real band selection, not "all bands"
        datamodule = info.make_datamodule(
            batch_size=args.batch_size, num_workers=0, drop_last=False, output_bands=output
        )
        datamodule.setup("fit")
        dataset = datamodule.train_dataset
        pairs = list(dataset.samples)
        indexes = [info.band_names.index(band) + 1 for band in output]
        ours_run = lambda: iterate_datamodule(datamodule)  # noqa: E731
        bare_run = lambda: iterate_rasterio(pairs, indexes)  # noqa: E731
        ours_run(), bare_run()  # warm-up: imports, file-system cache
        ours, bare = [], []
        for _ in range(args.repeats):
            ours.append(_timed(ours_run))
            bare.append(_timed(bare_run))
    print(f"chips: {args.n} x {args.bands} bands x {args.size}^2 (+ label), reading {len(output)} bands")
    for column, label in ((0, "wall clock"), (1, "CPU time")):
        ours_rate = args.n / min(t[column] for t in ours)
        bare_rate = args.n / min(t[column] for t in bare)
        print(
            f"[{label}] datamodule train_dataloader (num_workers=0, batch {args.batch_size}): "
            f"{ours_rate:8.1f} samples/s"
        )
        print(f"[{label}] bare rasterio open/read/close loop: {bare_rate:8.1f} samples/s")
        print(f"[{label}] ratio datamodule / rasterio: {ours_rate / bare_rate:.2f}x (target >= 0.8x)")


if __name__ == "__main__":
    main()
