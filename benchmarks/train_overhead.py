"""Training-step overhead of a TerraTorch task vs a hand-written PyTorch loop.

Both sides train the same model (same initial weights), on the same in-memory batches, with the
same batch size, optimizer (AdamW) and loss (cross-entropy), for the same number of steps. The
first ``--warmup`` steps of each run are excluded from the timing. The task side is
``lightning.Trainer.fit`` on :class:`terratorch.tasks.SemanticSegmentationTask` (metrics, loss
logging and the label/NaN checks included, as users run it); the loop side is
``zero_grad -> forward -> loss -> backward -> step``. Runs alternate (loop, task, loop, task, ...);
the medians of ``--repeats`` runs and the median of the per-pair ratios are reported, the latter
being robust to changes in machine load between pairs.

Target (DESIGN.md): task throughput >= 0.95x the loop's.

    python benchmarks/train_overhead.py              # CPU defaults
    python benchmarks/train_overhead.py --device cuda --batch-size 32 --size 224
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
from torch import nn


def build_model(bands: int, num_classes: int) -> nn.Module:
    """A ResNet-18 encoder + FCN decoder from the EncoderDecoderFactory (random init)."""
    from terratorch.models import EncoderDecoderFactory

    return EncoderDecoderFactory().build_model(
        "segmentation",
        backbone="timm_resnet18",
        backbone_pretrained=False,
        backbone_in_chans=bands,
        decoder="FCNDecoder",
        decoder_channels=64,
        decoder_num_convs=1,
        num_classes=num_classes,
    )


def make_batches(steps: int, batch_size: int, bands: int, size: int, num_classes: int) -> list[dict]:
    """``steps`` batches (``image`` float32, ``mask`` int64), made once and reused by both sides."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(steps):
        image = torch.randn(batch_size, bands, size, size, generator=generator)
        mask = torch.randint(0, num_classes, (batch_size, size, size), generator=generator)
        batches.append({"image": image, "mask": mask})
    return batches


class _Timer:
    """Lightning callback: time from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        from lightning.pytorch.callbacks import Callback

        timer = self

        class _Callback(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if batch_idx == warmup:
                    _sync(device)
                    timer.start = time.perf_counter()

            def on_train_end(self, trainer, pl_module):
                _sync(device)
                timer.end = time.perf_counter()

        self.callback = _Callback()
        self.start = self.end = 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_task(
    model: nn.Module, batches: list[dict], warmup: int, device: torch.device, num_classes: int
) -> float:
    """Seconds for the timed steps of ``Trainer.fit`` on a SemanticSegmentationTask."""
    from lightning.pytorch import Trainer

    from terratorch.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(model=model, num_classes=num_classes, lr=1e-3, plot_on_val=False)
    timer = _Timer(warmup, device)
    trainer = Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer.callback],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, train_dataloaders=loader)
    return timer.end - timer.start


def time_loop(model: nn.Module, batches: list[dict], warmup: int, device: torch.device) -> float:
    """Seconds for the timed steps of a plain PyTorch training loop."""
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    start = 0.0
    for index, batch in enumerate(loader):
        if index == warmup:
            _sync(device)
            start = time.perf_counter()
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(image).output, mask)
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (default 5)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="image height/width in pixels")
    parser.add_argument("--bands", type=int, default=6)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side (median)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")

    torch.manual_seed(0)
    device = torch.device(args.device)
    reference = build_model(args.bands, args.num_classes)
    batches = make_batches(args.steps, args.batch_size, args.bands, args.size, args.num_classes)
    samples = (args.steps - args.warmup) * args.batch_size
    loop_rates, task_rates = [], []
    for _ in range(args.repeats):
        loop_rates.append(samples / time_loop(copy.deepcopy(reference), batches, args.warmup, device))
        task_rates.append(
            samples / time_task(copy.deepcopy(reference), batches, args.warmup, device, args.num_classes)
        )
    loop, task = statistics.median(loop_rates), statistics.median(task_rates)
    # each loop run is followed by its task run: the per-pair ratio cancels slow drifts in machine load
    pair_ratio = statistics.median(t / lp for t, lp in zip(task_rates, loop_rates))
    print(
        f"device={device} batch={args.batch_size} size={args.size} bands={args.bands} "
        f"timed steps={args.steps - args.warmup} repeats={args.repeats}"
    )
    runs = {"loop": loop_rates, "task": task_rates}
    for label, rate, key in (("plain PyTorch loop", loop, "loop"), ("task + Trainer.fit", task, "task")):
        print(f"{label:20s}: {rate:8.1f} samples/s  (runs: {', '.join(f'{r:.1f}' for r in runs[key])})")
    print(f"{'ratio of medians':20s}: {task / loop:.3f}")
    print(f"{'median pair ratio':20s}: {pair_ratio:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
