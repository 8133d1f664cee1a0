"""Benchmark tiled inference against running the same crops through the model in plain batches.

Two scenarios, each timed against its own baseline measured in the same run:

1. In memory: a ``size x size x bands`` float32 tensor through ``tiled_inference`` vs a loop that cuts the
   same crops (same grid, same batch size) and runs the model, discarding the outputs.
2. Streaming: a ``stream_size x stream_size x bands`` int16 GeoTIFF (generated window by window) through
   ``tiled_inference_geotiff`` (argmax, uint8 output) vs a loop that reads the same strips with rasterio,
   cuts the same crops, normalises each batch the same way and runs the model, discarding the outputs.
   A second scene with the same width and a quarter of the rows is streamed too: its peak memory should
   match the full scene's (memory follows the strip, not the number of tiles).

Every measurement runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own; RSS is reported
next to the size of the output raster (in memory: the float32 accumulator the caller gets back; streaming:
what the whole prediction would take in memory). Plain and tiled runs alternate (``--repeats``) and the
fastest of each is kept, so background load hits both. Targets (DESIGN.md): throughput >= 0.9x the plain
batches; memory bounded by output + one batch (in memory) or a strip (streaming).

Usage::

    python benchmarks/tiled_inference.py --threads 1          # 4096^2 in memory, 16384^2 streamed
    python benchmarks/tiled_inference.py --size 1024 --stream-size 2048 --repeats 1   # quick run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("memory-plain", "memory-tiled", "stream-plain", "stream-tiled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--child`` is internal: run one measurement and print JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="in-memory scene edge in pixels")
    parser.add_argument("--stream-size", type=int, default=16384, help="streamed GeoTIFF edge in pixels")
    parser.add_argument("--bands", type=int, default=6)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--stride", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (interleaved); fastest kept")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch default)")
    parser.add_argument("--scenarios", nargs="+", default=["memory", "stream"], choices=["memory", "stream"])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the GeoTIFFs go (default: a tmp dir)"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- measured work (child)
def rss_mb() -> float:
    """Current resident set size in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(bands: int, classes: int):
    """A small segmentation-like conv net (3x3 conv, ReLU, 1x1 classifier), deterministic weights."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(bands, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, classes, 1)).eval()


def normalize(x):
    """Per-band normalisation applied to float32 crops (stands in for the datamodule's ``normalize``)."""
    return (x - 1000.0) / 500.0


def plain_batches(model, crops_iter, batch_size: int, preprocess=None) -> int:
    """Run ``model`` over crops in batches of ``batch_size``, discarding outputs; return the crop count.

    ``preprocess`` is applied to each stacked batch, exactly as ``tiled_inference_geotiff`` does.
    """
    import torch

    count, batch = 0, []
    with torch.no_grad():
        for crop in itertools.chain(crops_iter, [None]):
            if crop is not None:
                batch.append(crop)
            if batch and (len(batch) == batch_size or crop is None):
                x = torch.stack(batch)
                model(x if preprocess is None else preprocess(x))
                count, batch = count + len(batch), []
    return count


def grid_for(height: int, width: int, args: argparse.Namespace):
    """The crop grid tiled inference uses, so the baseline sees exactly the same crops."""
    from terratorch.tasks.tiled_inference import TileGrid

    return TileGrid.build(height, width, args.crop, args.crop, args.stride, args.stride, "cosine")


def run_memory(args: argparse.Namespace, tiled: bool) -> dict:
    """In-memory scenario: returns timing, crop count and RSS figures."""
    import torch

    from terratorch.tasks.tiled_inference import tiled_inference

    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, args.bands, args.size, args.size, generator=gen)
    model = make_model(args.bands, args.classes)
    grid = grid_for(args.size, args.size, args)
    base = rss_mb()
    start = time.perf_counter()
    if tiled:
        out = tiled_inference(model, image, crop=args.crop, stride=args.stride, batch_size=args.batch_size)
        assert out.shape == (1, args.classes, args.size, args.size)
        crops = len(grid)
    else:
        cut = (image[0, :, y : y + args.crop, x : x + args.crop] for y in grid.ys for x in grid.xs)
        crops = plain_batches(model, cut, args.batch_size)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "crops": crops, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


def run_stream(args: argparse.Namespace, tiled: bool) -> dict:
    """Streaming scenario over ``args.scene``: returns timing, crop count and RSS figures."""
    import rasterio
    import torch
    from rasterio.windows import Window

    from terratorch.tasks.tiled_inference import tiled_inference_geotiff

    model = make_model(args.bands, args.classes)
    with rasterio.open(args.scene) as src:
        height, width = src.height, src.width
    grid = grid_for(height, width, args)
    base = rss_mb()
    start = time.perf_counter()
    if tiled:
        dst = args.scene.with_name("prediction.tif")
        tiled_inference_geotiff(
            model, args.scene, dst, crop=args.crop, stride=args.stride, batch_size=args.batch_size,
            preprocess=normalize, output="argmax", progress=False,
        )  # fmt: skip
        crops = len(grid)
    else:

        def cut():
            with rasterio.open(args.scene) as src:
                for y in grid.ys:
                    strip = src.read(window=Window(0, y, width, args.crop)).astype("float32")
                    strip = torch.from_numpy(strip)
                    for x in grid.xs:
                        yield strip[:, :, x : x + args.crop]

        crops = plain_batches(model, cut(), args.batch_size, preprocess=normalize)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "crops": crops, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


# ----------------------------------------------------------------------------- orchestration (parent)
def write_scene(path: Path, size: int, bands: int, height: int | None = None) -> None:
    """Write a ``height x size`` (default square) int16 GeoTIFF window by window, never the whole scene."""
    import numpy as np
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    height = size if height is None else height
    profile = {
        "driver": "GTiff", "height": height, "width": size, "count": bands, "dtype": "int16",
        "crs": "EPSG:32633", "transform": Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0),
        "nodata": -9999, "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    rng = np.random.default_rng(0)
    cols = np.arange(size)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, height, 512):
            rows = min(512, height - top)
            yy = np.arange(top, top + rows)[:, None]
            pattern = 1000 + 400 * np.sin(yy / 97.0) * np.cos(cols[None, :] / 131.0)
            data = pattern[None] + rng.normal(0, 50, (bands, rows, size))
            dst.write(data.astype("int16"), window=Window(0, top, size, rows))


def run_child(mode: str, args: argparse.Namespace, scene: Path | None) -> dict:
    """Run one mode in a fresh interpreter and parse the JSON line it prints."""
    cmd = [
        sys.executable, __file__, "--child", mode, "--size", str(args.size), "--bands", str(args.bands),
        "--classes", str(args.classes), "--crop", str(args.crop), "--stride", str(args.stride),
        "--batch-size", str(args.batch_size), "--threads", str(args.threads),
    ]  # fmt: skip
    if scene is not None:
        cmd += ["--scene", str(scene)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_pair(prefix: str, args: argparse.Namespace, scene: Path | None) -> tuple[dict, dict]:
    """Alternate plain and tiled runs ``--repeats`` times (so load changes hit both); keep the fastest."""
    runs: dict[str, list[dict]] = {"plain": [], "tiled": []}
    for _ in range(args.repeats):
        for kind in runs:
            runs[kind].append(run_child(f"{prefix}-{kind}", args, scene))
    plain, tiled = (min(runs[k], key=lambda r: r["seconds"]) for k in ("plain", "tiled"))
    return plain, tiled


def report(name: str, plain: dict, tiled: dict, output_mb: float, extra: str) -> float:
    """Print throughput and memory figures of one scenario; return the throughput ratio tiled/plain."""
    ratio = plain["seconds"] / tiled["seconds"]
    print(f"\n== {name} ({tiled['crops']} crops) ==")
    for label, r in (("plain batches", plain), ("tiled inference", tiled)):
        print(
            f"  {label:16s} {r['seconds']:8.2f} s {r['crops'] / r['seconds']:8.1f} crops/s   "
            f"peak RSS {r['peak_rss_mb']:7.1f} MiB (before inference {r['base_rss_mb']:.1f} MiB)"
        )
    verdict = "OK" if ratio >= 0.9 else "BELOW TARGET"
    print(f"  throughput tiled/plain: {ratio:.3f}x (target >= 0.9x) {verdict}")
    grown = tiled["peak_rss_mb"] - tiled["base_rss_mb"]
    print(f"  tiled peak RSS growth during inference: {grown:.1f} MiB; output raster {output_mb:.1f} MiB")
    print(f"  {extra}")
    return ratio


def stream_scenario(args: argparse.Namespace) -> float:
    """Streaming figures, plus a scene of the same width and a quarter of the rows (same memory expected)."""
    size = args.stream_size
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        scene, short = Path(tmp) / "scene.tif", Path(tmp) / "short.tif"
        start = time.perf_counter()
        write_scene(scene, size, args.bands)
        write_scene(short, size, args.bands, height=max(args.crop, size // 4))
        mib, seconds = scene.stat().st_size / 2**20, time.perf_counter() - start
        print(f"\nwrote the {mib:.0f} MiB int16 scene (and a short one) in {seconds:.1f} s")
        plain, tiled = measure_pair("stream", args, scene)
        short_run = run_child("stream-tiled", args, short)
    full_mb = args.classes * size**2 * 4 / 2**20
    strip_mb = args.crop * size * (args.bands + args.classes) * 4 / 2**20
    ratio = report(
        f"streaming GeoTIFF {size}x{size}x{args.bands} -> uint8 argmax", plain, tiled, size**2 / 2**20,
        f"whole-scene float32 scores would be {full_mb:.0f} MiB; strip of input + scores {strip_mb:.0f} MiB",
    )  # fmt: skip
    grown = short_run["peak_rss_mb"] - short_run["base_rss_mb"]
    rows = max(args.crop, size // 4)
    print(f"  same width, {rows} rows ({short_run['crops']} crops): tiled peak RSS growth {grown:.1f} MiB")
    return ratio


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the selected scenarios and print figures and ratios."""
    args = parse_args(argv)
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        runner = run_memory if args.child.startswith("memory") else run_stream
        print(json.dumps(runner(args, tiled=args.child.endswith("tiled"))))
        return
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, torch threads {args.threads or 'default'}; "
        f"crop {args.crop}, stride {args.stride}, batch {args.batch_size}, {args.bands} bands, "
        f"{args.classes} classes; fastest of {args.repeats} interleaved run(s)"
    )
    ratios = {}
    if "memory" in args.scenarios:
        plain, tiled = measure_pair("memory", args, None)
        size, in_mb = args.size, args.bands * args.size**2 * 4 / 2**20
        out_mb = args.classes * size**2 * 4 / 2**20
        batch_mb = args.batch_size * (args.bands + args.classes) * args.crop**2 * 4 / 2**20
        ratios["memory"] = report(
            f"in memory {size}x{size}x{args.bands} float32", plain, tiled, out_mb,
            f"input tensor {in_mb:.1f} MiB (allocated before); a batch of crops + outputs {batch_mb:.1f} MiB",
        )  # fmt: skip
    if "stream" in args.scenarios:
        ratios["stream"] = stream_scenario(args)
    print("\nsummary (throughput tiled/plain): " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
