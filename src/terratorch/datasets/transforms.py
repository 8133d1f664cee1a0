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
