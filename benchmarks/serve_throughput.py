"""Serving throughput and latency of ``terratorch serve`` for a ramp of concurrent clients.

One run builds a demo segmentation dataset and a small CNN config (``small_cnn`` from
``examples/finetune/custom_modules``), then measures, on the same files:

- **baseline**: ``terratorch predict`` over the folder, in-process after a warm-up run (config
  parsing, model building, reading, predicting, writing every GeoTIFF), plus one cold run as a
  subprocess (with its interpreter start and imports);
- **server**: one ``terratorch serve`` subprocess (startup time reported), then for each
  concurrency level ``c`` of ``--clients``, ``c`` client threads (one keep-alive httpx client each)
  send ``--requests`` multipart uploads each and wait for the prediction GeoTIFF. Throughput is
  requests / wall time; latency percentiles are per request; ``batch`` is the mean forward-pass
  size the server reports in ``/metadata``.

Ratios are server throughput / in-process predict throughput (files per second). Clients and
server share the machine's cores, as they would on one host.

Run: ``.venv/bin/python benchmarks/serve_throughput.py [--files 16 --size 64 --clients 1,2,4,8 --requests 8]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp: Path, files: int, size: int, batch_size: int) -> tuple[Path, list[Path]]:
    """Demo chips and a predict-ready config for them; returns ``(config, input files)``."""
    import yaml

    from terratorch.datasets.demo import make_demo_dataset

    demo = make_demo_dataset(tmp / "demo", "segmentation", n_train=files, n_val=1, n_test=1, size=size)
    config = {
        "seed_everything": 0,
        "custom_modules_path": str(ROOT / "examples" / "finetune" / "custom_modules"),
        "trainer": {
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp / "run"),  # where predict saves its config copies
        },
        "data": {
            "class_path": "GenericNonGeoSegmentationDataModule",
            "init_args": demo.datamodule_kwargs(
                batch_size=batch_size, num_workers=0, predict_data_root=str(demo.image_dir)
            ),
        },
        "model": {
            "class_path": "SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    "backbone": "small_cnn",
                    "backbone_in_chans": 6,
                    "backbone_width": 16,
                    "decoder": "FCNDecoder",
                    "decoder_channels": 32,
                    "num_classes": 3,
                },
                "plot_on_val": False,
            },
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, sorted(demo.image_dir.glob(demo.img_grep))


def time_predict(config: Path, out: Path) -> float:
    """Seconds of one in-process ``terratorch predict`` over the folder."""
    from terratorch.cli.lightning import build_lightning_cli

    started = time.perf_counter()
    build_lightning_cli(["predict", "-c", str(config), "--predict_output_dir", str(out)])
    return time.perf_counter() - started


def time_predict_cold(config: Path, out: Path) -> float:
    """Seconds of ``terratorch predict`` as a fresh process (interpreter start and imports included)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "terratorch", "predict", "-c", str(config), "--predict_output_dir", str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


class Server:
    """A ``terratorch serve`` subprocess on a free port."""

    def __init__(self, config: Path, max_batch: int, max_wait_ms: float) -> None:
        import httpx

        started = time.perf_counter()
        command = [sys.executable, "-m", "terratorch", "serve", "-c", str(config), "--port", "0"]
        command += ["--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = re.search(r"on (http://\S+:\d+)", line)
            if match:
                self.url = match.group(1)
                break
        else:
            raise RuntimeError("terratorch serve did not start")
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        self.startup_s = time.perf_counter() - started

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.url}/metadata", timeout=10).json()["batching"]["stats"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def ramp_level(url: str, files: list[Path], clients: int, requests: int) -> dict[str, float]:
    """``clients`` threads x ``requests`` uploads; returns throughput and latency percentiles."""
    import httpx

    payloads = [(p.name, p.read_bytes()) for p in files]
    latencies: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(timeout=300) as session:
            for k in range(requests):
                name, data = payloads[(index * requests + k) % len(payloads)]
                started = time.perf_counter()
                answer = session.post(f"{url}/predict", files={"file": (name, data, "image/tiff")})
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "throughput": len(ordered) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
    }


def main() -> None:
    """Print the baseline, the ramp table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16, help="demo training chips (plus 2) to predict")
    parser.add_argument("--size", type=int, default=64, help="chip size (pixels)")
    parser.add_argument("--batch-size", type=int, default=8, help="predict batch size (config)")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=8, help="requests per client at each level")
    parser.add_argument("--max-batch", type=int, default=8, help="server --max-batch")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="server --max-wait-ms")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config, files = write_config(tmp, args.files, args.size, args.batch_size)
        time_predict(config, tmp / "warm")  # imports, file cache
        predict_s = min(time_predict(config, tmp / f"p{i}") for i in range(2))
        cold_s = time_predict_cold(config, tmp / "cold")
        server = Server(config, args.max_batch, args.max_wait_ms)
        try:
            ramp_level(server.url, files[:2], 1, 2)  # warm-up
            rows = []
            for clients in levels:
                before = server.stats()
                row = ramp_level(server.url, files, clients, args.requests)
                after = server.stats()
                batches = after["batches"] - before["batches"]
                row["batch"] = (after["requests"] - before["requests"]) / max(1, batches)
                rows.append((clients, row))
        finally:
            server.stop()

    baseline = len(files) / predict_s
    print(
        f"files: {len(files)} x 6 bands x {args.size}^2; predict batch_size {args.batch_size}; "
        f"server --max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g}; {os.cpu_count()} CPUs"
    )
    print(
        f"terratorch predict (in-process, warm): {predict_s:.2f} s = {baseline:.1f} files/s; "
        f"cold CLI run: {cold_s:.2f} s = {len(files) / cold_s:.1f} files/s"
    )
    print(f"terratorch serve startup (spawn -> /health ok): {server.startup_s:.1f} s")
    print(f"{'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6} {'vs predict':>10}")
    for clients, row in rows:
        ratio = row["throughput"] / baseline
        print(
            f"{clients:>7} {row['throughput']:>8.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['batch']:>6.2f} {ratio:>9.2f}x"
        )


if __name__ == "__main__":
    main()
