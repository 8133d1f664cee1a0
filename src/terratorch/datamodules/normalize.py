"""Per-band normalisation, applied once on the device after the batch is transferred."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from terratorch.datasets.utils import Band, load_float_list


def align_band_statistics(
    values: Sequence[float] | str | None,
    *,
    key: str,
    dataset_bands: Sequence[Band] | None,
    output_bands: Sequence[Band] | None,
) -> list[float] | None:
    """Load ``means``/``stds`` (list or file) and align them with ``output_bands``.

    Statistics are expected one per output band. When their length equals ``dataset_bands``
    instead, the output bands' values are picked from them (convenient when one statistics file
    serves several band selections).

    Raises:
        ValueError: the length fits neither band list (shows the lengths and both lists).
    """
    loaded = load_float_list(values, key=key)
    if loaded is None or output_bands is None:
        return loaded
    if len(loaded) == len(output_bands):
        return loaded
    if dataset_bands is not None and len(loaded) == len(dataset_bands):
        positions = {band: i for i, band in enumerate(dataset_bands)}
        return [loaded[positions[band]] for band in output_bands]
    raise ValueError(
        f"{key} has {len(loaded)} values but output_bands has {len(output_bands)} "
        f"({list(output_bands)}) and dataset_bands has {len(dataset_bands or [])}; "
        "give one value per output band"
    )


class Normalize:
    """``(image - mean) / std`` per band, for images ``(C, H, W)``/``(B, C, H, W)`` or, multi-temporal,
    ``(C, T, H, W)``/``(B, C, T, H, W)``.

    Args:
        means, stds: one value per band (channel axis ``C``).
        temporal: whether images carry a time axis after the channel axis.
    """

    def __init__(self, means: Sequence[float], stds: Sequence[float], *, temporal: bool = False) -> None:
        if len(means) != len(stds):
            raise ValueError(f"means has {len(means)} values but stds has {len(stds)}; give one per band")
        zero = [i for i, s in enumerate(stds) if s <= 0]
        if zero:
            raise ValueError(f"stds must be > 0; band position(s) {zero} have {[stds[i] for i in zero]}")
        self.means = torch.tensor(list(means), dtype=torch.float32)
        self.stds = torch.tensor(list(stds), dtype=torch.float32)
        self.temporal = temporal

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise ``image`` (see class docstring for the shapes); returns a new float tensor."""
        unbatched = 4 if self.temporal else 3
        if image.ndim not in (unbatched, unbatched + 1):
            layout = "(B, C, T, H, W)" if self.temporal else "(B, C, H, W)"
            raise ValueError(
                f"normalize expects an image {layout} with or without B, got shape {tuple(image.shape)}"
            )
        axis = 1 if image.ndim == unbatched + 1 else 0
        channels = image.shape[axis]
        if channels != len(self.means):
            raise ValueError(
                f"image has {channels} bands (shape {tuple(image.shape)}) but means/stds have "
                f"{len(self.means)} values; they must match output_bands"
            )
        shape = [1] * image.ndim
        shape[axis] = channels
        dtype = image.dtype if image.is_floating_point() else torch.float32
        mean = self.means.to(device=image.device, dtype=dtype).view(shape)
        std = self.stds.to(device=image.device, dtype=dtype).view(shape)
        return (image.to(dtype) - mean) / std
