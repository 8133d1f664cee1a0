"""Helpers the reference exposes as ``terratorch.utils``: dataloader statistics and small model tools.

``InvalidModelError`` is re-exported from :mod:`terratorch.registry.registry`. torch, numpy and tqdm
are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from terratorch.registry.registry import InvalidModelError

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "InvalidModelError",
    "compute_float_mask_statistics",
    "compute_int_mask_statistics",
    "compute_mask_statistics",
    "compute_statistics",
    "remove_unexpected_prefix",
    "view_api",
]


def _batches(dataloader: Iterable[Any], desc: str) -> Iterable[Any]:
    """Iterate ``dataloader`` with a progress bar when tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional here
        return dataloader
    return tqdm(dataloader, desc=desc)


def compute_statistics(dataloader: Any) -> dict[str, list[float]]:
    """Per-band mean and standard deviation of the ``"image"`` tensors of a dataloader.

    Two passes (mean, then squared deviations) in float64, ignoring NaN pixels, so values match a
    direct computation over the whole dataset. The population standard deviation is returned.

    Args:
        dataloader: Yields dicts with an ``"image"`` tensor of shape ``(batch, bands, ...)``; its
            ``dataset[0]["image"]`` gives the number of bands.

    Returns:
        ``{"means": [...], "stds": [...]}``, one float per band.
    """
    import torch

    n_bands = dataloader.dataset[0]["image"].shape[0]

    def per_band(batch: Mapping[str, Any]) -> torch.Tensor:
        return batch["image"].transpose(0, 1).reshape(n_bands, -1).double()

    count = torch.zeros(n_bands, dtype=torch.int64)
    total = torch.zeros(n_bands, dtype=torch.float64)
    for batch in _batches(dataloader, "Compute mean"):
        samples = per_band(batch)
        total += samples.nansum(dim=1)
        count += (~samples.isnan()).sum(dim=1)
    mean = total / count

    squared = torch.zeros(n_bands, dtype=torch.float64)
    for batch in _batches(dataloader, "Compute variance"):
        squared += ((per_band(batch) - mean[:, None]) ** 2).nansum(dim=1)
    std = torch.sqrt(squared / count)
    return {"means": mean.tolist(), "stds": std.tolist()}


def compute_mask_statistics(dataloader: Any) -> dict[int, dict[str, int | float]] | dict[str, float]:
    """Label statistics: class counts for integer masks, mean/std for floating-point (regression) masks."""
    import torch

    if torch.is_floating_point(dataloader.dataset[0]["mask"]):
        return compute_float_mask_statistics(dataloader)
    return compute_int_mask_statistics(dataloader)


def compute_int_mask_statistics(dataloader: Any) -> dict[int, dict[str, int | float]]:
    """Pixel count and share of every label value in the ``"mask"`` tensors.

    Returns:
        ``{label: {"count": n, "percentage": n / total}}`` (``percentage`` is a fraction in [0, 1]).
    """
    counter: Counter[int] = Counter()
    for batch in _batches(dataloader, "Compute counts"):
        counter.update(batch["mask"].flatten().tolist())
    total = sum(counter.values())
    return {label: {"count": n, "percentage": n / total} for label, n in counter.items()}


def compute_float_mask_statistics(dataloader: Any) -> dict[str, float]:
    """Mean and population standard deviation over all pixels of floating-point ``"mask"`` tensors."""
    count = 0
    total = 0.0
    for batch in _batches(dataloader, "Compute mask mean"):
        masks = batch["mask"]
        total += masks.sum().item()
        count += masks.numel()
    mean = total / count

    squared = 0.0
    for batch in _batches(dataloader, "Compute mask variance"):
        squared += ((batch["mask"] - mean) ** 2).sum().item()
    return {"mean": mean, "std": math.sqrt(squared / count)}


def remove_unexpected_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``_timm_module`` component from state-dict keys (checkpoints of older timm wrappers).

    ``"encoder._timm_module.conv1.weight"`` becomes ``"encoder.conv1.weight"``; other keys are kept.
    Only the first occurrence in a key is removed.
    """
    cleaned: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if "_timm_module" in parts:
            parts.remove("_timm_module")
        cleaned[".".join(parts)] = value
    return cleaned


def view_api(
    module: torch.nn.Module | None = None,
    input_data: torch.Tensor | np.ndarray | Any = None,
    config: dict[str, Any] | None = None,
    save_dir: str | None = None,
) -> Any:
    """Draw the computation graph of ``module`` on ``input_data`` with torchview.

    The module is wrapped so torchview's ``train()``/``eval()`` calls do not change its mode and
    keyword arguments torchview passes to ``forward`` are dropped.

    Args:
        module: The model to draw.
        input_data: Example input passed positionally to ``module``.
        config: Extra keyword arguments for ``torchview.draw_graph`` (``None`` means none).
        save_dir: Directory torchview writes the rendered graph into.

    Returns:
        torchview's ``visual_graph`` (a graphviz ``Digraph``).

    Raises:
        ImportError: torchview (and graphviz) are not installed.
    """
    import torch

    try:
        from torchview import draw_graph
    except ImportError as err:
        raise ImportError("view_api needs torchview and graphviz: pip install torchview graphviz") from err

    class _Frozen(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module | None) -> None:
            super().__init__()
            self.module = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.module(*args)

        def train(self, mode: bool = True) -> _Frozen:
            return self

        def eval(self) -> _Frozen:
            return self

    graph = draw_graph(_Frozen(module), input_data=input_data, directory=save_dir, **(config or {}))
    return graph.visual_graph
