"""Forward throughput of ``prithvi_eo_v2_100_tl`` against timm's ViT-B/16 on the same input.

Both encoders have width 768, 12 blocks, 12 heads and 16 px patches; timm's model is built with
the same number of input bands. Runs alternate between the two models (median of ``--repeats``
timed rounds) so that machine load affects both alike. Target: ratio >= 0.9.

Usage::

    python benchmarks/backbone_forward.py [--batch 8] [--size 224] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch

from terratorch.registry import BACKBONE_REGISTRY


def images_per_second(run: Callable[[], object], batch: int, iters: int, device: torch.device) -> float:
    """Images per second over ``iters`` calls of ``run`` (after synchronising the device)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=3, help="forward calls per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per model (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    torch.manual_seed(0)
    prithvi = BACKBONE_REGISTRY.build("prithvi_eo_v2_100_tl", img_size=args.size)
    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, num_classes=0, in_chans=6, img_size=args.size
    )
    prithvi, vit = (m.to(device=device, dtype=dtype).eval() for m in (prithvi, vit))
    x = torch.randn(args.batch, 6, args.size, args.size, device=device, dtype=dtype)
    dates = torch.tensor([[[2021.0, 180.0]]] * args.batch, device=device, dtype=dtype)
    where = torch.tensor([[45.0, 7.0]] * args.batch, device=device, dtype=dtype)
    runs = {
        "timm vit_base_patch16_224": lambda: vit.forward_features(x),
        "prithvi_eo_v2_100_tl": lambda: prithvi(x),
        "prithvi_eo_v2_100_tl + coords": lambda: prithvi(x, temporal_coords=dates, location_coords=where),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                results[name].append(images_per_second(run, args.batch, args.iters, device))

    print(
        f"device={device} dtype={args.dtype} batch={args.batch} size={args.size} "
        f"threads={torch.get_num_threads()}"
    )
    baseline = statistics.median(results["timm vit_base_patch16_224"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:32s} {median:9.2f} img/s   ratio vs timm {median / baseline:5.3f}")


if __name__ == "__main__":
    main()
