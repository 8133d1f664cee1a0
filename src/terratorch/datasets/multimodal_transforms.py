"""Transforms for multimodal samples: one albumentations pipeline shared by every image modality.

A multimodal sample is a dict ``{modality: array, "mask": array, ...}`` with images channels-last
``(H, W, C)``. :class:`MultimodalTransforms` runs ONE ``albumentations.Compose`` whose
``additional_targets`` name each image modality as an ``image`` target, so a random flip or crop is
drawn once and applied to every modality and the mask alike; non-image modalities (tabular values)
are only converted to tensors. albumentations is imported only when a pipeline is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "MultimodalToTensor",
    "MultimodalTransforms",
    "albumentations_to_callable_with_dict",
    "compose_multimodal",
    "default_non_image_transform",
]


def default_non_image_transform(array: Any) -> Any:
    """Numeric arrays of a non-image modality become tensors; anything else is returned unchanged."""
    if isinstance(array, np.ndarray) and (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        return torch.from_numpy(np.ascontiguousarray(array))
    return array


def albumentations_to_callable_with_dict(
    albumentation: Sequence[Any] | None = None,
) -> Callable[[dict], dict]:
    """Wrap a list of albumentations transforms as ``fn(sample_dict) -> dict`` (identity for None)."""
    if albumentation is None:
        return lambda data: data
    import albumentations as A

    compose = A.Compose(list(albumentation))

    def apply(data: dict[str, Any]) -> dict[str, Any]:
        return compose(**data)

    return apply


def compose_multimodal(
    transforms: Any,
    image_modalities: Sequence[str] | None = None,
    non_image_modalities: Sequence[str] | None = None,
) -> Any:
    """Compose a transform list into one pipeline whose extra targets are the given modalities.

    Image modalities become ``image`` targets (same random parameters as the mask), non-image
    modalities ``global_label`` targets (albumentations leaves them alone). Shapes are not
    checked across targets, as multi-temporal modalities carry more channels. A ``Compose`` or any
    non-list value is returned unchanged.

    Raises:
        ValueError: an item of the list is not an albumentations transform.
    """
    if transforms is None or not isinstance(transforms, Iterable) or isinstance(transforms, str | Mapping):
        return transforms
    import albumentations as A

    if isinstance(transforms, A.Compose):
        return transforms
    targets = {m: "image" for m in image_modalities or ()}
    targets.update({m: "global_label" for m in non_image_modalities or ()})
    items = list(transforms)
    for position, item in enumerate(items):
        if not isinstance(item, A.BasicTransform | A.BaseCompose):
            raise ValueError(
                f"transform #{position} is {item!r}, not an albumentations transform; list albumentations "
                "objects (e.g. '- class_path: albumentations.HorizontalFlip') ending with ToTensorV2"
            )
    return A.Compose(items, is_check_shapes=False, additional_targets=targets)


def _channels_first(value: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` -> ``(C, H, W)``, ``(T, H, W, C)`` -> ``(C, T, H, W)`` ... (last axis to front)."""
    if value.ndim <= 4:
        return np.moveaxis(value, -1, 0)
    if value.ndim == 5:  # (B, T, H, W, C) -> (B, C, T, H, W)
        return np.moveaxis(value, -1, 1)
    raise ValueError(f"unexpected image shape {value.shape}: expected 3 to 5 dimensions, channels last")


class MultimodalToTensor:
    """Convert a sample's arrays to tensors; raster modalities (3+ dims) go channels-first.

    Args:
        modalities: the raster modalities (their channels-last arrays are moved channels-first);
            other arrays (masks, tabular values) are converted as they are.
    """

    def __init__(self, modalities: Sequence[str]) -> None:
        self.modalities = list(modalities)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new dict with every NumPy array turned into a tensor."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(value, np.ndarray):
                out[key] = value
                continue
            if key in self.modalities and value.ndim >= 3:
                value = _channels_first(value)
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        return out


class MultimodalTransforms:
    """Apply albumentations transforms to a multimodal sample dict.

    Args:
        transforms: one ``albumentations.Compose`` built with ``additional_targets`` naming the
            image modalities (``shared=True``), or ``{modality: transform}`` applied separately
            (``shared=False``: every modality draws its own random parameters).
        shared: see ``transforms``.
        non_image_modalities: keys that are not images (passed through albumentations untouched,
            then through ``non_image_transform``).
        non_image_transform: conversion of non-image values (default: numeric arrays to tensors).
    """

    def __init__(
        self,
        transforms: Any,
        shared: bool = True,
        non_image_modalities: Sequence[str] | None = None,
        non_image_transform: Callable[[Any], Any] | None = None,
    ) -> None:
        self.transforms = transforms
        self.shared = shared
        self.non_image_modalities = list(non_image_modalities or [])
        self.non_image_transform = non_image_transform or default_non_image_transform

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        """Transform ``data`` (channels-last arrays) and return the transformed dict."""
        data = dict(data)
        if not self.shared:
            for key, value in list(data.items()):
                if key in self.transforms:
                    if key in self.non_image_modalities:
                        raise NotImplementedError(
                            f"per-modality transforms of non-image modality {key!r} are not supported"
                        )
                    data[key] = self.transforms[key](image=value)["image"]
            return data
        skip = {*self.non_image_modalities, "mask"}
        images = [key for key in data if key not in skip]
        if not images:
            raise ValueError(f"the sample holds no image modality to transform (keys: {sorted(data)})")
        # albumentations needs an 'image' target; the first image modality plays it.
        first = images[0]
        data["image"] = data.pop(first)
        data = self.transforms(**data)
        data[first] = data.pop("image")
        for key in self.non_image_modalities:
            if key in data:
                data[key] = self.non_image_transform(data[key])
        return data
