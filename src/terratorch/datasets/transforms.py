"""Albumentations pipelines for multispectral chips: image and mask are transformed jointly.

Configs list transforms as ``class_path: albumentations.HorizontalFlip`` items that jsonargparse
instantiates; :func:`compose_transforms` turns such a list into one callable that always ends with
a conversion to torch tensors, whether or not the list already holds ``ToTensorV2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

# The reference's import path for the multimodal transforms (``terratorch.datasets.transforms``).
from terratorch.datasets.multimodal_transforms import (  # noqa: F401
    MultimodalToTensor,
    MultimodalTransforms,
    albumentations_to_callable_with_dict,
    default_non_image_transform,
)

Transform = Callable[..., dict[str, Any]]


def compose_transforms(transforms: Sequence[Any] | Any | None) -> Transform | None:
    """Compose a list of albumentations transforms (or one ``Compose``) and append ``ToTensorV2``.

    Args:
        transforms: None (no augmentation: the dataset converts arrays itself, which is faster),
            an ``albumentations.Compose``, a single transform, or a list of transforms.

    Returns:
        A callable taking ``image=(H, W, C) array, mask=(H, W) array`` and returning tensors, or
        None when there is nothing to apply.

    Raises:
        TypeError: when an item is not callable (e.g. a config gave a plain string).
    """
    if transforms is None:
        return None
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    if isinstance(transforms, A.Compose):
        items = list(transforms.transforms)
    elif isinstance(transforms, Sequence) and not isinstance(transforms, str):
        items = list(transforms)
    else:
        items = [transforms]
    for position, item in enumerate(items):
        if not callable(item):
            raise TypeError(
                f"transform #{position} is {item!r}, not a transform; give albumentations objects, e.g. "
                "'- class_path: albumentations.HorizontalFlip' in a config"
            )
    if not items:
        return None
    if not any(isinstance(item, ToTensorV2) for item in items):
        items.append(ToTensorV2())
    return A.Compose(items)


def to_tensor_sample(image: Any, mask: Any | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Make sure a transformed sample holds tensors: image ``(C, H, W)``, mask ``(H, W)``.

    ``ToTensorV2`` already did this when present; arrays left over (a custom transform after it,
    or no transforms at all) are converted here: ``(H, W, C)`` arrays become ``(C, H, W)``.
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    return image, mask


# ----------------------------------------------------------------------------- band/time reshaping
# Transforms the reference's configs name by short class path (``class_path: SelectBands``).
# albumentations is imported when one of them is first used, so importing this module stays light.


def _image_only_base() -> type:
    from albumentations import ImageOnlyTransform

    return ImageOnlyTransform


def _define_reshaping_transforms() -> dict[str, type]:
    base = _image_only_base()

    class FlattenTemporalIntoChannels(base):
        """``(T, H, W, C)`` -> ``(H, W, T*C)``: time steps stacked along the channels (time-major).

        Use before albumentations transforms, which expect ``(H, W, C)`` images.
        """

        def __init__(self) -> None:
            super().__init__(p=1.0)

        def apply(self, img: Any, **params: Any) -> Any:
            if img.ndim != 4:
                raise ValueError(
                    f"FlattenTemporalIntoChannels expects a (T, H, W, C) image, got shape {img.shape}"
                )
            steps, height, width, channels = img.shape
            return np.ascontiguousarray(np.moveaxis(img, 0, 2)).reshape(height, width, steps * channels)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ()

    class UnflattenTemporalFromChannels(base):
        """``(T*C, H, W)`` -> ``(C, T, H, W)`` (after ``ToTensorV2``); give ``n_timesteps`` or ``n_channels``.

        Raises:
            ValueError: neither is given, or the channel count is not a multiple of it.
        """

        def __init__(self, n_timesteps: int | None = None, n_channels: int | None = None) -> None:
            super().__init__(p=1.0)
            if n_timesteps is None and n_channels is None:
                raise ValueError("UnflattenTemporalFromChannels needs n_timesteps or n_channels")
            self.n_timesteps = n_timesteps
            self.n_channels = n_channels

        def apply(self, img: Any, **params: Any) -> Any:
            if img.ndim != 3:
                raise ValueError(
                    f"UnflattenTemporalFromChannels expects a (T*C, H, W) image, got shape {img.shape}"
                )
            total = img.shape[0]
            divisor = self.n_channels if self.n_channels else self.n_timesteps
            if total % divisor:
                raise ValueError(f"{total} channels are not a multiple of {divisor} (n_timesteps/n_channels)")
            channels = self.n_channels if self.n_channels else total // self.n_timesteps
            steps = total // channels
            out = img.reshape(steps, channels, *img.shape[1:])
            return out.transpose(0, 1) if isinstance(out, torch.Tensor) else np.swapaxes(out, 0, 1)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("n_timesteps", "n_channels")

    class SelectBands(base):
        """Keep the channels at ``band_indices`` (last axis), in that order."""

        def __init__(self, band_indices: list[int]) -> None:
            super().__init__(p=1.0)
            self.band_indices = list(band_indices)

        def apply(self, img: Any, **params: Any) -> Any:
            return img[..., self.band_indices]

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("band_indices",)

    class Rearrange(base):
        """Reshape the image with an einops pattern (needs the ``einops`` package).

        Args:
            rearrange: einops pattern, e.g. ``"t h w c -> h w (t c)"``.
            rearrange_args: sizes of the pattern's axes.
            always_apply, p: albumentations' application settings (``always_apply`` means p=1).
        """

        def __init__(
            self,
            rearrange: str,
            rearrange_args: dict[str, int] | None = None,
            always_apply: bool = True,
            p: float = 1.0,
        ) -> None:
            super().__init__(p=1.0 if always_apply else p)
            self.rearrange = rearrange
            self.rearrange_args = dict(rearrange_args or {})

        def apply(self, img: Any, **params: Any) -> Any:
            try:
                from einops import rearrange
            except ImportError as error:
                raise ImportError("Rearrange needs the einops package: pip install einops") from error
            return rearrange(img, self.rearrange, **self.rearrange_args)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("rearrange", "rearrange_args")

    classes = {
        "FlattenTemporalIntoChannels": FlattenTemporalIntoChannels,
        "UnflattenTemporalFromChannels": UnflattenTemporalFromChannels,
        "SelectBands": SelectBands,
        "Rearrange": Rearrange,
    }
    for name, cls in classes.items():
        cls.__module__ = __name__
        cls.__qualname__ = name
    return classes


_RESHAPING = ("FlattenTemporalIntoChannels", "UnflattenTemporalFromChannels", "SelectBands", "Rearrange")


def __getattr__(name: str) -> Any:
    """Define the reshaping transforms on first access (they subclass albumentations' base)."""
    if name in _RESHAPING:
        globals().update(_define_reshaping_transforms())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
