"""GEO-Bench-2 datamodules from configs: classification, segmentation and object-detection wrappers.

GEO-Bench-2 (``pip install 'terratorch[geobenchv2]'``) ships torchgeo-style datamodules whose
augmentations are kornia callables passed through keyword arguments. These wrappers take
``train_augmentations``/``eval_augmentations`` as typed lists (or GEO-Bench-2's ``"default"`` /
``"multi_temporal_default"``), build the GEO-Bench-2 datamodule (a class, or its name in
``geobench_v2.datamodules``) and forward everything else to it. ``geobench_v2`` is imported only
when a wrapper is built from a name or needs its augmentation helpers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from terratorch.datamodules.torchgeo_data_module import (
    _TorchGeoProxy,
    kornia_dict_transform,
    resolve_datamodule_class,
    to_terratorch_batch,
)

GEOBENCH_V2_MODULE = "geobench_v2.datamodules"
_NAMED_AUGMENTATIONS = ("default", "multi_temporal_default")
_PREDICT_LOADERS = ("train", "val", "test")


def geobench_v2_attribute(name: str) -> Any:
    """``geobench_v2.datamodules.<name>``.

    Raises:
        ImportError: GEO-Bench-2 is not installed (names the extra to install).
    """
    try:
        module = importlib.import_module(GEOBENCH_V2_MODULE)
    except ImportError as error:
        raise ImportError(
            f"GEO-Bench-2 is not installed ({error}); install it with: pip install 'terratorch[geobenchv2]'"
        ) from error
    return getattr(module, name)


def _check_named(value: Any, key: str) -> None:
    if isinstance(value, str) and value not in _NAMED_AUGMENTATIONS:
        raise ValueError(
            f"{key} given as a string must be one of {list(_NAMED_AUGMENTATIONS)}, got {value!r}"
        )


def _as_callable(augmentations: Any) -> Any:
    """Kornia lists become one dict-to-dict callable; None and the named defaults pass through."""
    if augmentations is None or isinstance(augmentations, str) or callable(augmentations):
        return augmentations
    return kornia_dict_transform(augmentations)


def merge_band_order(band_order: Any) -> Any:
    """A list of ``{modality: bands}`` dicts (YAML-friendly) becomes one dict; anything else is kept."""
    if isinstance(band_order, list) and band_order and isinstance(band_order[0], dict):
        merged: dict[str, Any] = {}
        for modality in band_order:
            merged.update(modality)
        return merged
    return band_order


class _GeoBenchV2Proxy(_TorchGeoProxy):
    """Shared construction: augmentations, band order, predict split; then forward to the datamodule."""

    def _build(
        self,
        cls: type | str,
        num_workers: int,
        predict_loader: str,
        kwargs: dict[str, Any],
    ) -> None:
        if predict_loader not in _PREDICT_LOADERS:
            raise ValueError(
                f"predict_loader must be one of {list(_PREDICT_LOADERS)}, got {predict_loader!r}"
            )
        # LightningDataModule.__init__ only; _TorchGeoProxy.__init__ would treat kwargs as torchgeo's.
        super(_TorchGeoProxy, self).__init__()
        datamodule_class = resolve_datamodule_class(cls, module=GEOBENCH_V2_MODULE)
        self._proxy = datamodule_class(num_workers=num_workers, **kwargs)
        self.predict_loader = predict_loader

    def predict_dataloader(self) -> Any:
        """The loader of the split chosen by ``predict_loader`` (train, val or test)."""
        return getattr(self._proxy, f"{self.predict_loader}_dataloader")()

    def _valid_attribute(self, *args: str) -> Any:
        return self._proxy._valid_attribute(*args)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The GEO-Bench-2 datamodule's own device-side augmentation/normalisation, then our batch format."""
        self._proxy.trainer = self.trainer
        return to_terratorch_batch(self._proxy.on_after_batch_transfer(batch, dataloader_idx))


class GeoBenchV2ClassificationDataModule(_GeoBenchV2Proxy):
    """Wrap a GEO-Bench-2 classification datamodule.

    Args:
        cls: the GEO-Bench-2 datamodule class or its name in ``geobench_v2.datamodules``.
        img_size: image size the datamodule resizes to.
        band_order: bands (list) or ``{modality: bands}`` (a dict, or a list of one-key dicts).
        batch_size: passed on when given.
        num_workers: DataLoader workers.
        train_augmentations, eval_augmentations: kornia augmentations, None, or GEO-Bench-2's
            ``"default"``/``"multi_temporal_default"``.
        predict_loader: split used for prediction: ``train``, ``val`` or ``test``.
        kwargs: the datamodule's own arguments (``root``...).
    """

    def __init__(
        self,
        cls: type | str,
        img_size: int,
        band_order: list | dict,
        batch_size: int | None = None,
        num_workers: int = 0,
        train_augmentations: list[Any] | str | None = "default",
        eval_augmentations: list[Any] | str | None = "default",
        predict_loader: str = "test",
        **kwargs: Any,
    ) -> None:
        _check_named(train_augmentations, "train_augmentations")
        _check_named(eval_augmentations, "eval_augmentations")
        kwargs.update(
            img_size=img_size,
            band_order=merge_band_order(band_order),
            train_augmentations=_as_callable(train_augmentations),
            eval_augmentations=_as_callable(eval_augmentations),
        )
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        self._build(cls, num_workers, predict_loader, kwargs)

    def plot(self, batch: Any = None, split: str = "val") -> Any:
        """The GEO-Bench-2 datamodule's ``visualize_batch``."""
        return self._proxy.visualize_batch(batch=batch, split=split)


class GeoBenchV2SegmentationDataModule(_GeoBenchV2Proxy):
    """Wrap a GEO-Bench-2 segmentation datamodule.

    Args are those of :class:`GeoBenchV2ClassificationDataModule`, plus ``collate_fn`` (replaces
    the datamodule's). With ``rename_modalities`` in ``kwargs`` (multi-modal data) augmentations
    run through GEO-Bench-2's ``MultiModalSegmentationAugmentation`` (named defaults: flips for
    training, identity for evaluation); a list starting with ``kornia.augmentation.VideoSequential``
    runs per frame through ``MultiTemporalSegmentationAugmentation``.
    """

    def __init__(
        self,
        cls: type | str,
        img_size: int,
        band_order: list | dict,
        batch_size: int | None = None,
        num_workers: int = 0,
        train_augmentations: list[Any] | str | None = "default",
        eval_augmentations: list[Any] | str | None = "default",
        collate_fn: Callable | None = None,
        predict_loader: str = "test",
        **kwargs: Any,
    ) -> None:
        _check_named(train_augmentations, "train_augmentations")
        _check_named(eval_augmentations, "eval_augmentations")
        if "rename_modalities" in kwargs:
            train, evaluation = self._multimodal(train_augmentations, eval_augmentations)
        else:
            train, evaluation = self._temporal(train_augmentations), self._temporal(eval_augmentations)
        kwargs.update(
            img_size=img_size,
            band_order=merge_band_order(band_order),
            train_augmentations=train,
            eval_augmentations=evaluation,
        )
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        self._build(cls, num_workers, predict_loader, kwargs)
        if collate_fn is not None:
            self.collate_fn = collate_fn

    @staticmethod
    def _temporal(augmentations: Any) -> Any:
        if augmentations is None or isinstance(augmentations, str) or callable(augmentations):
            return augmentations
        import kornia.augmentation as K

        callable_augmentations = kornia_dict_transform(augmentations)
        if augmentations and isinstance(augmentations[0], K.VideoSequential):
            return geobench_v2_attribute("MultiTemporalSegmentationAugmentation")(
                transforms=callable_augmentations
            )
        return callable_augmentations

    @staticmethod
    def _multimodal(train: Any, evaluation: Any) -> tuple[Any, Any]:
        import kornia.augmentation as K
        from torch import nn

        flips = [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
        named_train = {"default": flips, "multi_temporal_default": [K.VideoSequential(), *flips]}
        named_eval = {
            "default": [nn.Identity()],
            "multi_temporal_default": [K.VideoSequential(), nn.Identity()],
        }
        train_list = (
            [nn.Identity()] if train is None else named_train[train] if isinstance(train, str) else train
        )
        eval_list = (
            [nn.Identity()]
            if evaluation is None
            else named_eval[evaluation]
            if isinstance(evaluation, str)
            else evaluation
        )
        wrapper = geobench_v2_attribute("MultiModalSegmentationAugmentation")
        return (
            wrapper(transforms=kornia_dict_transform(train_list)),
            wrapper(transforms=kornia_dict_transform(eval_list)),
        )

    @property
    def val_dataset(self) -> Any:
        """The wrapped datamodule's validation dataset."""
        return self._proxy.val_dataset

    def plot(self, batch: dict[str, Any] | None = None, split: str = "train") -> Any:
        """Figure of up to three samples: RGB (first three bands), mask and, if present, prediction."""
        import matplotlib.pyplot as plt
        import numpy as np

        if batch is None:
            loader = {"train": self.train_dataloader, "validation": self.val_dataloader}.get(
                split, self.test_dataloader
            )
            batch = next(iter(loader()))
        normalizer = getattr(self._proxy, "data_normalizer", None)
        if hasattr(normalizer, "unnormalize"):
            batch = normalizer.unnormalize(batch)
        images = batch["image"]
        if isinstance(images, dict):
            images = next(iter(images.values()))
        if images.dim() == 5:  # (B, C, T, H, W): first time step
            images = images[:, :, 0]
        columns = ["image", "mask"] + (["prediction"] if "prediction" in batch else [])
        count = min(3, images.shape[0])
        figure, axes = plt.subplots(count, len(columns), figsize=(4 * len(columns), 4 * count), squeeze=False)
        for row in range(count):
            rgb = images[row, :3].permute(1, 2, 0).float().cpu().numpy()
            low, high = np.percentile(rgb, (2, 98))
            axes[row, 0].imshow(np.clip((rgb - low) / max(high - low, 1e-6), 0, 1))
            for column, key in enumerate(columns[1:], start=1):
                axes[row, column].imshow(batch[key][row].cpu().numpy())
            for column, key in enumerate(columns):
                axes[row, column].set_title(key if row == 0 else "")
                axes[row, column].axis("off")
        figure.tight_layout()
        return figure


class GeoBenchV2ObjectDetectionDataModule(_GeoBenchV2Proxy):
    """Wrap a GEO-Bench-2 object-detection datamodule.

    Args:
        cls, img_size, band_order, batch_size, num_workers, train_augmentations,
            eval_augmentations, predict_loader: as for :class:`GeoBenchV2ClassificationDataModule`.
        root: dataset directory.
        categories: class names (kept as ``self.categories`` for plots and tasks).
        eval_batch_size: evaluation batch size, passed on when given.
        plot_indexes: band positions shown as RGB.
        collate_fn: replaces the datamodule's collate function when given.
    """

    def __init__(
        self,
        cls: type | str,
        root: str,
        img_size: int,
        band_order: Any,
        categories: list,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        train_augmentations: list[Any] | str | None = "default",
        eval_augmentations: list[Any] | str | None = "default",
        plot_indexes: list | None = None,
        collate_fn: Callable | None = None,
        predict_loader: str = "test",
        **kwargs: Any,
    ) -> None:
        _check_named(train_augmentations, "train_augmentations")
        _check_named(eval_augmentations, "eval_augmentations")
        kwargs.update(
            root=root,
            img_size=img_size,
            band_order=merge_band_order(band_order),
            train_augmentations=_as_callable(train_augmentations),
            eval_augmentations=_as_callable(eval_augmentations),
        )
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        if eval_batch_size is not None:
            kwargs["eval_batch_size"] = eval_batch_size
        self._build(cls, num_workers, predict_loader, kwargs)
        if collate_fn is not None:
            self.collate_fn = collate_fn
        self.plot_indexes = [0, 1, 2] if plot_indexes is None else list(plot_indexes)
        self.categories = categories

    def plot(self, batch: Any = None, split: str = "train") -> Any:
        """The GEO-Bench-2 datamodule's ``visualize_batch``."""
        return self._proxy.visualize_batch(batch=batch, split=split)
