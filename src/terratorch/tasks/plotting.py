"""Figures of one validation sample (image, target, prediction) for ``plot_on_val``.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global state,
works headless) and logged by the task to TensorBoard (``add_figure``) or MLflow (``log_figure``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["plot_sample", "rgb_composite"]


def rgb_composite(image: Tensor, rgb_indices: Sequence[int] | None = None) -> np.ndarray:
    """Turn a ``(C, H, W)`` or ``(C, T, H, W)`` image into an ``(H, W, 3)`` array in ``[0, 1]``.

    Uses bands ``rgb_indices`` (default: the first three, or the first band as grey when there are
    fewer), the last time step of temporal inputs, and a 2-98 percentile stretch per band, so
    normalised or raw reflectances both look sensible.
    """
    array = image.detach().float().cpu().numpy()
    if array.ndim == 4:
        array = array[:, -1]
    if rgb_indices is None:
        rgb_indices = [0, 1, 2] if array.shape[0] >= 3 else [0, 0, 0]
    rgb = np.stack([array[i] for i in rgb_indices], axis=-1)
    low = np.nanpercentile(rgb, 2, axis=(0, 1))
    high = np.nanpercentile(rgb, 98, axis=(0, 1))
    stretched = (rgb - low) / np.maximum(high - low, 1e-6)
    return np.clip(np.nan_to_num(stretched), 0.0, 1.0)


def _class_map(values: Tensor, ignore_index: int | None) -> np.ma.MaskedArray:
    array = values.detach().cpu().numpy()
    mask = array == ignore_index if ignore_index is not None else np.zeros_like(array, dtype=bool)
    return np.ma.masked_array(array, mask=mask)


def _show_classes(
    axes: Any, figure: Any, maps: list[tuple[str, Any]], num_classes: int, names: list[str]
) -> None:
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    base = colormaps["tab20"]
    cmap = ListedColormap([base(i % 20) for i in range(num_classes)])
    norm = BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)
    for ax, (title, data) in zip(axes, maps):
        ax.imshow(data, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(title)
    handles = [Patch(color=cmap(i), label=names[i]) for i in range(num_classes)]
    figure.legend(handles=handles, loc="lower center", ncol=min(num_classes, 6), fontsize="small")


def _show_values(axes: Any, figure: Any, maps: list[tuple[str, np.ndarray]]) -> None:
    finite = np.concatenate([m[np.isfinite(m)].ravel() for _, m in maps])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = None
    for ax, (title, data) in zip(axes, maps):
        image = ax.imshow(data, cmap="viridis", vmin=low, vmax=high)
        ax.set_title(title)
    figure.colorbar(image, ax=list(axes), shrink=0.8)


def _label_text(values: Tensor, names: list[str] | None) -> str:
    flat = values.detach().cpu().reshape(-1)
    if flat.is_floating_point() and flat.numel() == 1:
        return f"{flat.item():.3g}"
    if flat.numel() == 1:
        index = int(flat.item())
        return names[index] if names and index < len(names) else str(index)
    active = [i for i, v in enumerate(flat.tolist()) if v == 1]
    return ", ".join(names[i] if names and i < len(names) else str(i) for i in active) or "none"


def plot_sample(
    image: Tensor,
    target: Tensor | None,
    prediction: Tensor,
    task_type: str,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    rgb_indices: Sequence[int] | None = None,
    title: str | None = None,
) -> Any:
    """Build a figure of one sample.

    Args:
        image: ``(C, H, W)`` or ``(C, T, H, W)``.
        target: Pixel-wise ``(H, W)`` mask/values, or a per-image label (scalar or ``(num_classes,)``).
        prediction: Same layout as ``target`` (class indices for segmentation).
        task_type: Task type (``segmentation``, ``regression``, ``classification``, ...).
        class_names: Names for the legend / labels.
        num_classes: Number of classes (segmentation colour map).
        ignore_index: Target pixels shown blank.
        rgb_indices: Bands shown as red, green, blue.
        title: Figure title.

    Returns:
        A :class:`matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    pixel_wise = task_type in ("segmentation", "regression")
    panels = 3 if pixel_wise and target is not None else (2 if pixel_wise else 1)
    figure = Figure(figsize=(4 * panels, 4.6), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    for ax in axes:
        ax.set_axis_off()
    axes[0].imshow(rgb_composite(image, rgb_indices))
    names = list(class_names) if class_names is not None else None
    if not pixel_wise:
        truth = f"true: {_label_text(target, names)} | " if target is not None else ""
        axes[0].set_title(f"{truth}predicted: {_label_text(prediction, names)}", fontsize="small")
    elif task_type == "segmentation":
        classes = num_classes or int(prediction.max().item()) + 1
        labels = names or [str(i) for i in range(classes)]
        maps = [("target", _class_map(target, ignore_index))] if target is not None else []
        maps.append(("prediction", _class_map(prediction, None)))
        _show_classes(axes[1:], figure, maps, classes, labels)
    else:
        maps = []
        if target is not None:
            truth = target.detach().float().cpu().numpy().copy()
            if ignore_index is not None:
                truth[truth == ignore_index] = np.nan
            maps.append(("target", truth))
        maps.append(("prediction", prediction.detach().float().cpu().numpy()))
        _show_values(axes[1:], figure, maps)
    axes[0].set_title(axes[0].get_title() or "image")
    if title:
        figure.suptitle(title)
    return figure
