"""Inference efficiency of a model: parameters, GFLOPs, throughput and peak memory.

The benchmark runner calls :func:`measure_efficiency` once per benchmark (on the first task's best
model) and logs the result as ``efficiency/<key>`` metrics on the benchmark run; the summary shows
one efficiency row per backbone next to its scores.
"""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(total, trainable)`` parameter counts; shared (tied) parameters count once."""
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    return total, trainable


def _validate_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise ValueError(
            f"input_shape must be a batch shape like (B, C, H, W) or (B, C, T, H, W) with positive sizes; "
            f"got {tuple(input_shape)!r}."
        )
    return shape


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _forward(model: nn.Module, batch: torch.Tensor, model_kwargs: Mapping[str, Any]) -> Any:
    return model(batch, **model_kwargs)


def count_flops(model: nn.Module, batch: torch.Tensor, model_kwargs: Mapping[str, Any] | None = None) -> int:
    """Count the floating-point operations of one forward pass over ``batch``.

    Uses :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a multiply-accumulate as
    two operations and covers matmuls, convolutions and attention (ops it does not know, such as
    element-wise activations, count as zero).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _forward(model, batch, model_kwargs or {})
    return int(counter.get_total_flops())


def _read_status_kib(field: str) -> int | None:
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux ``clear_refs`` value 5)."""
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _release_free_heap() -> None:
    """Return free malloc memory to the OS (glibc ``malloc_trim``), where available.

    Without this, a pass can be served from heap pages that earlier work freed but that are still
    resident, so resident memory would not rise and the peak would be under-reported.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _cpu_peak_tracker(result: dict[str, float]) -> Iterator[None]:
    """Record in ``result["delta_mb"]`` how far resident memory rose above its level at entry.

    On Linux the high-water mark (``VmHWM``) is reset first, so the figure is exact for this block.
    Elsewhere ``ru_maxrss`` is used, which only moves when the process exceeds its lifetime peak,
    so it can under-report (it is then a lower bound).
    """
    _release_free_heap()
    start_kib = _read_status_kib("VmRSS")
    exact = start_kib is not None and _reset_rss_peak()
    start_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    if exact:
        peak_kib = _read_status_kib("VmHWM") or start_kib
        result["delta_mb"] = max(0, peak_kib - start_kib) / 1024
    else:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
        delta = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_maxrss)
        result["delta_mb"] = delta * scale / 2**20


def _tensor_mb(model: nn.Module, batch: torch.Tensor) -> float:
    unique = {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
    total = sum(t.numel() * t.element_size() for t in unique) + batch.numel() * batch.element_size()
    return total / 2**20


def _timed_passes(
    model: nn.Module, batch: torch.Tensor, model_kwargs: Mapping[str, Any], warmup: int, iters: int
) -> float:
    """Run ``warmup`` untimed then ``iters`` timed forward passes; return the timed seconds."""
    sync = torch.cuda.synchronize if batch.device.type == "cuda" else (lambda *_: None)
    for _ in range(warmup):
        _forward(model, batch, model_kwargs)
    sync(batch.device)
    start = time.perf_counter()
    for _ in range(iters):
        _forward(model, batch, model_kwargs)
    sync(batch.device)
    return time.perf_counter() - start


def _run_cuda(model, batch, model_kwargs, warmup, iters) -> tuple[float, float]:
    torch.cuda.synchronize(batch.device)
    torch.cuda.reset_peak_memory_stats(batch.device)
    seconds = _timed_passes(model, batch, model_kwargs, warmup, iters)
    return seconds, torch.cuda.max_memory_allocated(batch.device) / 2**20


def _run_cpu(model, batch, model_kwargs, warmup, iters) -> tuple[float, float]:
    peak: dict[str, float] = {}
    with _cpu_peak_tracker(peak):
        seconds = _timed_passes(model, batch, model_kwargs, warmup, iters)
    return seconds, _tensor_mb(model, batch) + peak.get("delta_mb", math.nan)


def measure_efficiency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    warmup: int = 2,
    iters: int = 5,
    model_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Measure the inference cost of ``model`` on a random batch of ``input_shape``.

    The model runs in eval mode under ``torch.inference_mode`` on ``device``; its original device
    and train/eval mode are restored afterwards, so callers can pass a model they keep using.

    Args:
        model: Module called as ``model(x, **model_kwargs)``; any output type is accepted.
        input_shape: Batch shape including the batch dimension, e.g. ``(B, C, H, W)`` or
            ``(B, C, T, H, W)``; the input is standard-normal noise in the model's dtype.
        device: Where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        warmup: Untimed passes before timing (first-call allocations, cuDNN autotuning).
        iters: Timed passes.
        model_kwargs: Extra keyword arguments for every forward call.

    Returns:
        ``params`` (total parameters), ``trainable_params``, ``gflops`` (GFLOPs **per sample**,
        multiply and add counted separately, from ``FlopCounterMode``), ``samples_per_s``
        (inference throughput over the timed passes), ``latency_ms`` (mean time per batch),
        ``peak_mem_mb`` and ``batch_size``. ``peak_mem_mb`` is, on CUDA, the allocator's
        ``max_memory_allocated`` during the passes (weights, input and activations); on CPU it is
        the bytes of weights and input plus the rise of the process's resident memory during the
        passes (Linux: exact high-water mark after resetting it; elsewhere a lower bound, NaN if
        unavailable). CPU figures include allocator slack and are comparable between models
        measured the same way, not with the CUDA figure.

    Raises:
        ValueError: ``input_shape`` is not a batch shape, or ``iters < 1`` / ``warmup < 0``.
    """
    shape = _validate_shape(input_shape)
    if iters < 1 or warmup < 0:
        raise ValueError(f"Need iters >= 1 and warmup >= 0; got iters={iters}, warmup={warmup}.")
    target = torch.device(device)
    original_device, dtype = _model_device_dtype(model)
    was_training = model.training
    kwargs = dict(model_kwargs or {})
    total, trainable = count_parameters(model)
    try:
        model.to(target).eval()
        batch = torch.randn(shape, dtype=dtype, device=target)
        flops = count_flops(model, batch, kwargs)
        with torch.inference_mode():
            runner = _run_cuda if target.type == "cuda" else _run_cpu
            seconds, peak_mb = runner(model, batch, kwargs, warmup, iters)
    finally:
        model.to(original_device).train(was_training)
    samples = shape[0] * iters
    return {
        "params": float(total),
        "trainable_params": float(trainable),
        "gflops": flops / shape[0] / 1e9,
        "samples_per_s": samples / seconds if seconds > 0 else math.inf,
        "latency_ms": seconds / iters * 1e3,
        "peak_mem_mb": float(peak_mb),
        "batch_size": float(shape[0]),
    }
