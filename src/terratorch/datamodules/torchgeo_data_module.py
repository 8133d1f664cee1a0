"""Use any torchgeo datamodule from a config: ``TorchNonGeoDataModule`` / ``TorchGeoDataModule``.

torchgeo datamodules take their dataset transforms through ``**kwargs``, which LightningCLI cannot
type-check or instantiate. These wrappers take ``transforms`` as a typed list (albumentations or
kornia augmentations), turn it into the dict-to-dict callable torchgeo datasets expect, build the
torchgeo datamodule (a class, a ``torchgeo.datamodules`` name such as ``"EuroSATDataModule"``, or a
dotted path) and forward every other attribute to it. torchgeo is imported only when one is built.

Batches keep torchgeo's keys (``image``, ``mask``, ``label``...); masks are returned ``(B, H, W)``
long as our tasks expect, and the wrapped datamodule's own device-side ``aug`` is applied.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule

DictTransform = Callable[[dict[str, Any]], dict[str, Any]]


def resolve_datamodule_class(cls: type | str, module: str = "torchgeo.datamodules") -> type:
    """A datamodule class from a class, a name in ``module`` or a dotted ``package.module.Class`` path.

    Raises:
        ImportError: the module cannot be imported (names the package to install).
        ValueError: no such class; lists close matches among ``module``'s datamodules.
        TypeError: ``cls`` is neither a class nor a string.
    """
    if isinstance(cls, type):
        return cls
    if not isinstance(cls, str):
        raise TypeError(f"cls must be a datamodule class or its name, got {cls!r}")
    module_name, _, name = cls.rpartition(".")
    module_name = module_name or module
    try:
        namespace = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.split(".")[0]
        raise ImportError(
            f"cannot import {module_name!r} to find {name!r}: install {package!r} ({error})"
        ) from error
    found = getattr(namespace, name, None)
    if isinstance(found, type):
        return found
    candidates = [item for item in dir(namespace) if item.endswith("DataModule")]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean {close}?" if close else f"; it has {candidates[:40]}"
    raise ValueError(f"no datamodule {name!r} in {module_name}{hint}")


def _is_kornia(transform: Any) -> bool:
    return type(transform).__module__.startswith("kornia")


def kornia_dict_transform(augmentations: Sequence[Any]) -> DictTransform:
    """Apply kornia augmentations to a sample dict of tensors (``keepdim``: shapes are kept).

    A leading ``kornia.augmentation.VideoSequential`` marks multi-temporal ``(C, T, H, W)`` data:
    the following augmentations then run per frame with the same parameters.
    """
    import kornia.augmentation as K

    items = list(augmentations)
    if items and isinstance(items[0], K.VideoSequential):
        pipeline = K.AugmentationSequential(
            K.VideoSequential(*items[1:], data_format="BCTHW", same_on_frame=True),
            data_keys=None,
            keepdim=True,
        )
    else:
        pipeline = K.AugmentationSequential(*items, data_keys=None, keepdim=True)

    def apply(sample: dict[str, Any]) -> dict[str, Any]:
        return pipeline(sample)

    return apply


def albumentations_dict_transform(transforms: Sequence[Any] | Any) -> DictTransform:
    """Apply albumentations to a torchgeo sample dict: ``(C, H, W)`` tensors in, tensors out.

    The image goes channels-last to numpy for albumentations and comes back ``(C, H, W)``; a mask
    ``(H, W)`` (or ``(1, H, W)``) follows the same geometry; other keys are passed through.
    """
    from terratorch.datasets.transforms import compose_transforms, to_tensor_sample

    pipeline = compose_transforms(transforms)

    def apply(sample: dict[str, Any]) -> dict[str, Any]:
        if pipeline is None:
            return sample
        arguments = {"image": np.moveaxis(np.asarray(sample["image"]), 0, -1)}
        mask = sample.get("mask")
        mask_dtype = mask.dtype if isinstance(mask, torch.Tensor) else None
        if mask is not None:
            mask = np.asarray(mask)
            arguments["mask"] = mask[0] if mask.ndim == 3 and mask.shape[0] == 1 else mask
        result = pipeline(**arguments)
        image, new_mask = to_tensor_sample(result["image"], result.get("mask"))
        output = dict(sample)
        output["image"] = image
        if new_mask is not None:
            output["mask"] = new_mask.to(mask_dtype) if mask_dtype is not None else new_mask
        return output

    return apply


def build_dict_transform(transforms: Sequence[Any] | Any | None) -> DictTransform | None:
    """The dict-to-dict callable for ``transforms``: kornia augmentations or albumentations (or None).

    Raises:
        TypeError: kornia and albumentations objects are mixed in one list.
    """
    if transforms is None:
        return None
    items = list(transforms.transforms) if hasattr(transforms, "available_keys") else transforms
    items = list(items) if isinstance(items, Sequence) else [items]
    kinds = {_is_kornia(item) for item in items}
    if len(kinds) > 1:
        raise TypeError(
            "transforms mixes kornia and albumentations objects; give one kind: "
            f"{[type(item).__module__ + '.' + type(item).__name__ for item in items]}"
        )
    return kornia_dict_transform(items) if kinds == {True} else albumentations_dict_transform(items)


def to_terratorch_batch(batch: Any) -> Any:
    """Masks ``(B, 1, H, W)`` become ``(B, H, W)`` long (what our segmentation tasks take)."""
    if isinstance(batch, dict) and isinstance(batch.get("mask"), torch.Tensor):
        mask = batch["mask"]
        if mask.ndim == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.is_floating_point():
            mask = mask.round()
        batch = {**batch, "mask": mask.long()}
    return batch


class _TorchGeoProxy(LightningDataModule):
    """Build a torchgeo datamodule and forward Lightning's calls and any attribute to it."""

    def __init__(
        self,
        cls: type | str,
        batch_size: int | None = None,
        num_workers: int = 0,
        transforms: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        transform = build_dict_transform(transforms)
        if transform is not None:
            kwargs["transforms"] = transform
        datamodule_class = resolve_datamodule_class(cls)
        self._proxy = datamodule_class(num_workers=num_workers, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_proxy":
            raise AttributeError(name)
        proxy = self.__dict__.get("_proxy")
        if proxy is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(proxy, name)

    @property
    def collate_fn(self) -> Any:
        """The wrapped datamodule's collate function."""
        return self._proxy.collate_fn

    @collate_fn.setter
    def collate_fn(self, value: Any) -> None:
        self._proxy.collate_fn = value

    def prepare_data(self) -> None:
        """Forwarded (downloads when the wrapped datamodule was given ``download=True``)."""
        self._proxy.prepare_data()

    def setup(self, stage: str) -> None:
        """Forwarded: the wrapped datamodule builds its datasets (and samplers)."""
        self._proxy.setup(stage)

    def train_dataloader(self) -> Any:
        """The wrapped datamodule's training loader."""
        return self._proxy.train_dataloader()

    def val_dataloader(self) -> Any:
        """The wrapped datamodule's validation loader."""
        return self._proxy.val_dataloader()

    def test_dataloader(self) -> Any:
        """The wrapped datamodule's test loader."""
        return self._proxy.test_dataloader()

    def predict_dataloader(self) -> Any:
        """The wrapped datamodule's prediction loader."""
        return self._proxy.predict_dataloader()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The wrapped datamodule's device-side ``aug`` (for the running stage), then our batch format.

        The reference applies torchgeo's default ``aug`` (divide by 255) of the wrapper instead of
        the wrapped datamodule's own normalisation; the wrapped one is used here.
        """
        self._proxy.trainer = self.trainer
        batch = self._proxy.on_after_batch_transfer(batch, dataloader_idx)
        return to_terratorch_batch(batch)


class TorchNonGeoDataModule(_TorchGeoProxy):
    """Wrap a torchgeo ``NonGeoDataModule`` so configs can give its ``transforms``.

    Args:
        cls: the torchgeo datamodule class, its name in ``torchgeo.datamodules`` or a dotted path.
        batch_size: passed on when given (else the datamodule's default).
        num_workers: DataLoader workers.
        transforms: albumentations transforms (ending with or without ``ToTensorV2``) or kornia
            augmentations, applied by the dataset to each sample.
        kwargs: the datamodule's own arguments (``root``, ``bands``, ``download``...).
    """


class TorchGeoDataModule(_TorchGeoProxy):
    """Wrap a torchgeo ``GeoDataModule`` (sampler-based) so configs can give its ``transforms``.

    Args are those of :class:`TorchNonGeoDataModule`; ``patch_size``/``length`` go to the
    datamodule through ``kwargs`` and are readable here as attributes.
    """

    @property
    def patch_size(self) -> Any:
        """The wrapped datamodule's sampler patch size."""
        return self._proxy.patch_size

    @property
    def length(self) -> Any:
        """The wrapped datamodule's number of samples per epoch (random samplers)."""
        return self._proxy.length
