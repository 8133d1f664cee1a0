"""The shared Lightning logic of every TerraTorch task.

:class:`TerraTorchTask` builds the model (from a registered model factory or a ready module),
freezes parts of it, turns ``loss``/``aux_loss``/``class_weights``/``ignore_index`` into a criterion,
keeps one metric set per stage, configures optimizer and scheduler, cross-checks the model's bands
with the datamodule's, plots validation predictions and dispatches to tiled inference. The task
modules (``segmentation.py``, ``classification.py``, ...) only say which batch key holds the target,
how logits become predictions and which default loss to use.

Batches are dicts: ``image`` ``(B, C, H, W)`` or ``(B, C, T, H, W)``, or for multimodal models a
``{modality: tensor}`` dict (every modality on one grid); the target under ``mask``
(pixel-wise tasks) or ``label`` (per-image tasks); ``filename`` (list of str). Other tensor values
(``temporal_coords``, ``location_coords``, ...) are passed to the model as keyword arguments.
Normalisation is the datamodule's job; tasks never normalise.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from terratorch.models.model import AuxiliaryHead, ModelOutput
from terratorch.registry import MODEL_FACTORY_REGISTRY
from terratorch.tasks.losses import build_loss
from terratorch.tasks.metrics import TaskMetrics
from terratorch.tasks.optim import build_param_groups, check_optimizer_config, optimizer_factory

__all__ = [
    "TerraTorchTask",
    "batch_size_of",
    "check_bands",
    "check_channels",
    "check_image_dict",
    "model_channels",
    "task_arguments",
]

_TARGET_KEYS = ("image", "mask", "label")
#: Optimizer used when ``optimizer`` is None (the reference's choice).
DEFAULT_OPTIMIZER = "Adam"


class TerraTorchTask(LightningModule):
    """Base class of the fine-tuning tasks (not used directly).

    Args:
        model_args: Keyword arguments of the factory's ``build_model`` (``backbone``, ``decoder``,
            ``num_classes``, ``backbone_*``, ...).
        model_factory: Name of a factory in ``MODEL_FACTORY_REGISTRY`` (e.g. ``"EncoderDecoderFactory"``).
        model: A ready model instead of ``model_factory`` + ``model_args``: an ``nn.Module`` returning a
            :class:`~terratorch.models.model.ModelOutput` or a tensor.
        loss: Loss name, list of names, ``{name: weight}`` or ``nn.Module`` (see
            :mod:`terratorch.tasks.losses`); ``None`` uses the task's default.
        aux_heads: Auxiliary decoders the factory adds to the model.
        aux_loss: ``{aux head name: weight}``; each auxiliary output's loss (same criterion as the main
            output) is added to the main loss with that weight.
        class_weights: Per-class loss weights (``ce``, ``focal``, ``bce``).
        ignore_index: Target value excluded from losses and metrics (the datamodule's
            ``no_label_replace``).
        lr: Learning rate.
        optimizer: ``torch.optim`` class name or dotted path; ``None`` uses ``Adam`` (as the reference).
        optimizer_hparams: Extra optimizer kwargs.
        scheduler: ``torch.optim.lr_scheduler`` class name or dotted path (``None``: constant lr).
        scheduler_hparams: Scheduler kwargs plus ``interval``, ``frequency``, ``warmup_epochs`` /
            ``warmup_steps``, ``warmup_start_factor`` (see :mod:`terratorch.tasks.optim`).
        freeze_backbone: Call ``model.freeze_encoder()``.
        freeze_decoder: Call ``model.freeze_decoder()``.
        freeze_head: Call ``model.freeze_head()``.
        plot_on_val: Log a figure of the first validation batch every ``plot_on_val`` epochs
            (``True`` = every epoch, ``False``/``0`` = never) to TensorBoard/MLflow loggers.
        class_names: Class names, used in per-class metric names and plots.
        tiled_inference_parameters: Keyword arguments of
            :func:`terratorch.tasks.tiled_inference.tiled_inference` (``crop``, ``stride``,
            ``batch_size``, ``blend``, ...). When set, ``predict`` runs tiled; validation and test too
            if ``tiled_inference_on_validation`` / ``tiled_inference_on_testing``.
        test_dataloaders_names: One name per test dataloader; metrics are logged as
            ``test/<name>/<metric>``. Without names the first test dataloader logs ``test/<metric>`` and
            any further one ``test/dataloader_<i>/<metric>``.
        lr_overrides: ``{parameter-name substring: lr}`` parameter groups.
        num_classes: Number of classes (classifying tasks). Defaults to ``model_args["num_classes"]``
            or ``len(class_names)``; when given here it is also passed to the factory.
        tiled_inference_on_validation: Validate with tiled inference (needs
            ``tiled_inference_parameters``).
        tiled_inference_on_testing: Test with tiled inference (needs ``tiled_inference_parameters``).
        custom_loss: ``loss`` is the dotted path of a loss class, built with ``custom_loss_kwargs``.
        custom_loss_kwargs: Constructor kwargs of the ``custom_loss`` class.
        var_weights: Per-variable loss weights of multi-output regression (channel ``i`` of the
            output against channel ``i`` of the target, weighted mean).
        path_to_record_metrics: Directory; at the end of testing the test metrics are written to
            ``<dir>/metrics.csv`` (columns ``Metric``, ``Value``; one file per run, the last test
            dataloader's metrics last).
    """

    #: Metric/task type (see :mod:`terratorch.tasks.metrics`).
    task_type: ClassVar[str] = ""
    #: ``task`` passed to the model factory.
    model_task: ClassVar[str] = ""
    #: Batch key holding the target.
    target_key: ClassVar[str] = "mask"
    #: Loss family (``classification`` or ``regression``) and default loss.
    loss_kind: ClassVar[str] = "classification"
    default_loss: ClassVar[str] = "ce"
    #: Whether the task predicts classes (needs ``num_classes``).
    has_classes: ClassVar[bool] = True
    #: Whether the output is pixel-wise (tiled inference applies).
    pixel_wise: ClassVar[bool] = True

    def __init__(
        self,
        model_args: dict[str, Any] | None = None,
        model_factory: str | None = None,
        model: nn.Module | None = None,
        loss: str | list[str] | dict[str, float] | nn.Module | None = None,
        aux_heads: list[AuxiliaryHead] | None = None,
        aux_loss: dict[str, float] | None = None,
        class_weights: list[float] | None = None,
        ignore_index: int | None = None,
        lr: float = 0.001,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        freeze_head: bool = False,
        plot_on_val: bool | int = 10,
        class_names: list[str] | None = None,
        tiled_inference_parameters: dict[str, Any] | None = None,
        test_dataloaders_names: list[str] | None = None,
        lr_overrides: dict[str, float] | None = None,
        num_classes: int | None = None,
        tiled_inference_on_validation: bool = False,
        tiled_inference_on_testing: bool = False,
        custom_loss: bool = False,
        custom_loss_kwargs: dict[str, Any] | None = None,
        var_weights: list[float] | None = None,
        path_to_record_metrics: str | None = None,
    ) -> None:
        super().__init__()
        self.custom_loss = custom_loss
        self.custom_loss_kwargs = dict(custom_loss_kwargs or {})
        self.var_weights = list(var_weights) if var_weights is not None else None
        self.path_to_record_metrics = path_to_record_metrics
        self.save_hyperparameters(*self._hparam_names(loss))
        self.model_args = dict(model_args or {})
        self.ignore_index = ignore_index
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_hparams = dict(optimizer_hparams or {})
        self.scheduler = scheduler
        self.scheduler_hparams = dict(scheduler_hparams or {})
        self.lr_overrides = dict(lr_overrides or {})
        self.plot_on_val = int(plot_on_val)
        self.class_names = list(class_names) if class_names is not None else None
        self.tiled_inference_parameters = tiled_inference_parameters
        self.tiled_on_validation = tiled_inference_on_validation
        self.tiled_on_testing = tiled_inference_on_testing
        self.test_dataloaders_names = list(test_dataloaders_names or [])
        self.aux_loss = dict(aux_loss or {})
        check_optimizer_config(
            optimizer or DEFAULT_OPTIMIZER, self.optimizer_hparams, scheduler, self.scheduler_hparams
        )
        self._check_tiled_config()
        self.num_classes = self._resolve_num_classes(num_classes)
        self.model = self._build_model(model, model_factory, aux_heads)
        self._check_aux(aux_heads)
        self._freeze(freeze_backbone, freeze_decoder, freeze_head)
        self._loss_spec = loss
        self._class_weights = list(class_weights) if class_weights is not None else None
        self.configure_losses()
        self.configure_metrics()
        self._channels_checked = False

    # -- construction ------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, **kwargs: Any) -> Any:
        """Load weights, accepting the legacy ``_timm_module.`` key prefix of older checkpoints.

        A checkpoint that does not fit raises ``RuntimeError`` naming the first few mismatching keys
        and shapes (see :func:`terratorch.models.utils.load_state_dict_checked`).
        """
        from terratorch.models.utils import load_state_dict_checked

        return load_state_dict_checked(self, state_dict, strict=strict, **kwargs)

    def _hparam_names(self, loss: Any) -> list[str]:
        """Constructor arguments of the concrete class to save (not the ``model`` instance or a loss module).

        Restricting to the concrete signature keeps ``load_from_checkpoint`` working for subclasses
        with their own, shorter signature.
        """
        params = inspect.signature(type(self).__init__).parameters
        skip = {"self", "model"} | ({"loss"} if isinstance(loss, nn.Module) else set())
        return [n for n, p in params.items() if n not in skip and p.kind is p.POSITIONAL_OR_KEYWORD]

    def _check_tiled_config(self) -> None:
        wants_tiles = self.tiled_on_validation or self.tiled_on_testing
        if wants_tiles and self.tiled_inference_parameters is None:
            raise ValueError(
                "tiled_inference_on_validation/testing need tiled_inference_parameters "
                "(e.g. {crop: 224, stride: 192, batch_size: 16})."
            )
        if self.tiled_inference_parameters is not None and not self.pixel_wise:
            raise ValueError(
                f"{type(self).__name__} predicts one value per image; tiled_inference_parameters only apply "
                "to pixel-wise tasks (segmentation, pixel-wise regression)."
            )

    def _resolve_num_classes(self, num_classes: int | None) -> int | None:
        """Agree on the number of classes from the argument, ``model_args`` and ``class_names``."""
        sources = {
            "num_classes": num_classes,
            "model_args.num_classes": self.model_args.get("num_classes"),
            "len(class_names)": len(self.class_names) if self.class_names is not None else None,
        }
        given = {k: v for k, v in sources.items() if v is not None}
        if not self.has_classes:
            if num_classes is not None or self.class_names is not None:
                raise ValueError(
                    f"{type(self).__name__} predicts values; num_classes/class_names do not apply."
                )
            return None
        if len(set(given.values())) > 1:
            raise ValueError(f"Conflicting numbers of classes: {given}. Make them agree.")
        if not given:
            return None  # taken from the model after it is built
        resolved = int(next(iter(given.values())))
        if num_classes is not None or self.class_names is not None:
            self.model_args.setdefault("num_classes", resolved)
        return resolved

    def _build_model(
        self, model: nn.Module | None, model_factory: str | None, aux_heads: list[AuxiliaryHead] | None
    ) -> nn.Module:
        """Use ``model`` as is, or build it with the registered factory."""
        if model is not None:
            if model_factory is not None:
                raise ValueError("Give either model or model_factory (+ model_args), not both.")
            built = model
        elif model_factory is None:
            raise ValueError(
                f"{type(self).__name__} needs model_factory (e.g. 'EncoderDecoderFactory') with model_args, "
                "or a ready model."
            )
        else:
            built = self.build_from_factory(model_factory, aux_heads)
        if self.has_classes and self.num_classes is None:
            self.num_classes = getattr(built, "num_classes", None)
            if self.num_classes is None:
                raise ValueError(
                    f"{type(self).__name__} needs the number of classes: set num_classes, "
                    "model_args.num_classes or class_names."
                )
        return built

    def build_from_factory(self, model_factory: str, aux_heads: list[AuxiliaryHead] | None) -> nn.Module:
        """``MODEL_FACTORY_REGISTRY.build(model_factory).build_model(task=..., **model_args)``.

        ``aux_decoders`` is passed only when ``aux_heads`` is set, so minimal custom factories need
        not accept it.
        """
        factory = MODEL_FACTORY_REGISTRY.build(model_factory)
        kwargs = dict(self.model_args)
        if aux_heads:
            kwargs["aux_decoders"] = aux_heads
        return factory.build_model(task=self.model_task, **kwargs)

    def _check_aux(self, aux_heads: list[AuxiliaryHead] | None) -> None:
        names = [h.name if isinstance(h, AuxiliaryHead) else h.get("name") for h in aux_heads or []]
        unknown = [k for k in self.aux_loss if names and k not in names]
        if unknown:
            raise ValueError(
                f"aux_loss names {unknown} are not auxiliary heads; aux_heads are named {names}."
            )
        if names and not self.aux_loss:
            warnings.warn(
                f"aux_heads {names} are built but aux_loss is empty, so they are not trained; "
                "set aux_loss: {head name: weight}.",
                stacklevel=3,
            )

    def _freeze(self, backbone: bool, decoder: bool, head: bool) -> None:
        for flag, method in (
            (backbone, "freeze_encoder"),
            (decoder, "freeze_decoder"),
            (head, "freeze_head"),
        ):
            if not flag:
                continue
            freeze = getattr(self.model, method, None)
            if not callable(freeze):
                option = {"freeze_encoder": "freeze_backbone"}.get(method, method)
                raise ValueError(
                    f"{option}=True but the model ({type(self.model).__name__}) has no {method}()."
                )
            freeze()

    def configure_losses(self) -> None:
        """(Re)build ``self.criterion`` from the constructor's ``loss``, ``class_weights``, ``custom_loss``.

        The reference's name; the criterion itself comes from :meth:`configure_loss`.
        """
        self.criterion = self.configure_loss(self._loss_spec, self._class_weights)

    def instantiate_custom_loss(self, path: str, kwargs: Mapping[str, Any]) -> nn.Module:
        """Build the ``custom_loss=True`` loss named by the dotted class ``path`` (hook)."""
        from terratorch.tasks.utils import _instantiate_from_path

        return _instantiate_from_path(path, **kwargs)

    def configure_loss(self, loss: Any, class_weights: Sequence[float] | None) -> nn.Module:
        """Build the criterion (hook; the default uses :func:`~terratorch.tasks.losses.build_loss`)."""
        if (
            class_weights is not None
            and self.num_classes is not None
            and len(class_weights) != self.num_classes
        ):
            raise ValueError(
                f"class_weights has {len(class_weights)} entries for {self.num_classes} classes."
            )
        if isinstance(loss, nn.Module):
            # A loss module is used as given, seeing all output variables (as in the reference).
            return loss
        if self.custom_loss:
            criterion = self._custom_loss(loss)
        else:
            spec = self.default_loss if loss is None else loss
            criterion = build_loss(
                spec, self.loss_kind, ignore_index=self.ignore_index, class_weights=class_weights
            )
        if self.var_weights is not None:
            criterion = VariableWeightedLoss(criterion, self.var_weights)
        return criterion

    def _custom_loss(self, loss: Any) -> nn.Module:
        """``custom_loss=True``: build ``loss`` (dotted class path or class) with ``custom_loss_kwargs``."""
        if isinstance(loss, str):
            return self.instantiate_custom_loss(loss, self.custom_loss_kwargs)
        if isinstance(loss, type) or callable(loss):
            return loss(**self.custom_loss_kwargs)
        raise TypeError(f"custom_loss=True needs a loss class or its dotted path, got {type(loss).__name__}.")

    def configure_metrics(self, prefix: str | None = None) -> TaskMetrics | None:
        """Without ``prefix`` (the reference's call), (re)build ``train_metrics``, ``val_metrics`` and
        ``test_metrics``; with a ``prefix`` (``"val/"``, ``"test/<name>/"``, ...), return the metric set
        logged under it."""
        if prefix is None:
            self.train_metrics = self.configure_metrics("train/")
            self.val_metrics = self.configure_metrics("val/")
            self.extra_val_metrics = nn.ModuleList()  # further validation dataloaders, created on demand
            self.test_metrics = nn.ModuleList([self.configure_metrics(self._test_prefix(0))])
            return None
        return TaskMetrics(
            self.task_type,
            prefix=prefix,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            class_names=self.class_names,
        )

    def _test_prefix(self, dataloader_idx: int) -> str:
        if self.test_dataloaders_names:
            if dataloader_idx >= len(self.test_dataloaders_names):
                raise ValueError(
                    f"Test dataloader {dataloader_idx} has no name: test_dataloaders_names is "
                    f"{self.test_dataloaders_names} (one name per test dataloader)."
                )
            return f"test/{self.test_dataloaders_names[dataloader_idx]}/"
        return "test/" if dataloader_idx == 0 else f"test/dataloader_{dataloader_idx}/"

    def _val_metrics_for(self, dataloader_idx: int) -> TaskMetrics:
        """``val/`` metrics for the first validation dataloader, ``val/dataloader_<i>/`` for others."""
        if dataloader_idx == 0:
            return self.val_metrics
        while len(self.extra_val_metrics) < dataloader_idx:
            prefix = f"val/dataloader_{len(self.extra_val_metrics) + 1}/"
            self.extra_val_metrics.append(self.configure_metrics(prefix).to(self.device))
        return self.extra_val_metrics[dataloader_idx - 1]

    def _test_metrics_for(self, dataloader_idx: int) -> TaskMetrics:
        while len(self.test_metrics) <= dataloader_idx:
            new = self.configure_metrics(self._test_prefix(len(self.test_metrics)))
            self.test_metrics.append(new.to(self.device))
        return self.test_metrics[dataloader_idx]

    # -- forward -----------------------------------------------------------------------------------
    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """Run the model; a plain tensor output is wrapped in :class:`ModelOutput`."""
        out = self.model(x, **kwargs)
        return out if isinstance(out, ModelOutput) else ModelOutput(output=out)

    def _tiled_forward(self, image: Tensor, model_kwargs: dict[str, Any]) -> ModelOutput:
        """Tiled inference over ``image`` with ``tiled_inference_parameters`` (no auxiliary outputs)."""
        from terratorch.tasks.tiled_inference import tiled_inference

        def forward_crops(crops: Tensor, **kwargs: Any) -> Tensor:
            return self(crops, **kwargs).output

        params = dict(self.tiled_inference_parameters or {})
        output = tiled_inference(forward_crops, image, **params, **model_kwargs)
        return ModelOutput(output=output)

    def _unpack(
        self, batch: Mapping[str, Any], need_target: bool = True
    ) -> tuple[Tensor, Any, dict[str, Any]]:
        """Split a batch into image, target and the extra tensors passed to the model."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"Batches must be dicts ({{'image': ..., {self.target_key!r}: ...}}), "
                f"got {type(batch).__name__}."
            )
        if "image" not in batch:
            raise ValueError(f"Batches must be dicts with an 'image' key; got keys {sorted(batch)}.")
        target = batch.get(self.target_key)
        if need_target and target is None:
            raise ValueError(
                f"{type(self).__name__} expects the target under {self.target_key!r}; the batch has keys "
                f"{sorted(batch)}."
            )
        extra = {k: v for k, v in batch.items() if k not in _TARGET_KEYS and isinstance(v, Tensor)}
        image = batch["image"]
        if isinstance(image, Mapping):
            check_image_dict(image)
        return image, target, extra

    # -- checks ------------------------------------------------------------------------------------
    def check_target(self, target: Tensor, stage: str, batch_idx: int, batch: Mapping[str, Any]) -> None:
        """Reject class labels outside ``[0, num_classes)`` (other than ``ignore_index``) with a clear error.

        Without this check an out-of-range label ends in an opaque index error (or a CUDA assert).
        """
        if not self.has_classes:
            return
        if target.is_floating_point():
            raise TypeError(
                f"{stage} batch {batch_idx}: {self.target_key} must hold integer class indices (int64), got "
                f"{target.dtype}; files: {_filenames(batch)}. Make the dataset return int64 labels."
            )
        low, high = torch.aminmax(target)
        if bool((low >= 0) & (high < self.num_classes)):
            return  # fast path: one reduction, one sync
        invalid = (target < 0) | (target >= self.num_classes)
        if self.ignore_index is not None:
            invalid &= target != self.ignore_index
        if bool(invalid.any()):
            values = target[invalid].unique()[:10].tolist()
            raise ValueError(
                f"{stage} batch {batch_idx}: {self.target_key} values {values} are outside "
                f"[0, {self.num_classes - 1}] (num_classes={self.num_classes}, "
                f"ignore_index={self.ignore_index}); files: {_filenames(batch)}. "
                "Fix num_classes, or set ignore_index to the nodata label."
            )

    def _check_finite(self, loss: Tensor, stage: str, batch_idx: int, batch: Mapping[str, Any]) -> None:
        """Stop with a :class:`FloatingPointError` naming the step instead of training on NaN."""
        if bool(torch.isfinite(loss)):
            return
        images = batch["image"]
        images = images.values() if isinstance(images, Mapping) else [images]
        finite = all(bool(torch.isfinite(x).all()) for x in images if isinstance(x, Tensor))
        cause = (
            "The input image contains NaN/inf values: set no_data_replace on the datamodule."
            if not finite
            else "The inputs are finite: lower the learning rate, check the labels or clip gradients."
        )
        raise FloatingPointError(
            f"{stage} loss is {loss.item()} at epoch {self.current_epoch}, global step {self.global_step}, "
            f"batch {batch_idx} (files: {_filenames(batch)}). {cause}"
        )

    # -- loss and predictions (hooks for the task modules) -----------------------------------------
    def compute_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """Main loss plus ``aux_loss``-weighted losses of auxiliary outputs present in ``output``."""
        loss = self.criterion(output.output, target)
        aux_outputs = output.auxiliary_heads or {}
        for name, weight in self.aux_loss.items():
            if name in aux_outputs:
                loss = loss + weight * self.criterion(aux_outputs[name], target)
            elif aux_outputs:
                raise ValueError(
                    f"aux_loss names {name!r} but the model's auxiliary outputs are {sorted(aux_outputs)}."
                )
        return loss

    def to_metric_input(self, output: Tensor) -> Tensor:
        """Model output → what :class:`TaskMetrics` expects (class indices by default)."""
        return class_indices(output)

    def to_prediction(self, output: Tensor) -> dict[str, Tensor]:
        """Model output → ``predict_step`` entries (``prediction``, maybe ``probabilities``)."""
        return {"prediction": class_indices(output)}

    # -- steps -------------------------------------------------------------------------------------
    def _step(
        self, batch: Mapping[str, Any], batch_idx: int, stage: str, metrics: TaskMetrics, tiled: bool = False
    ) -> tuple[Tensor, ModelOutput]:
        image, target, extra = self._unpack(batch)
        self.check_target(target, stage, batch_idx, batch)
        self._check_channels_once(image)
        output = self._forward_checked(image, extra, tiled)
        loss = self.compute_loss(output, target)
        self._check_finite(loss, stage, batch_idx, batch)
        self.log_loss(f"{metrics.prefix}loss", loss, stage, batch_size=batch_size_of(image))
        metrics.update(self.to_metric_input(output.output.detach()), target)
        return loss, output

    def log_loss(self, name: str, loss: Tensor, stage: str, batch_size: int) -> None:
        """Log a loss: per step while training, as an epoch mean in validation/test."""
        on_step = stage == "train"
        self.log(
            name,
            loss,
            on_step=on_step,
            on_epoch=not on_step,
            prog_bar=True,
            batch_size=batch_size,
            add_dataloader_idx=False,
            sync_dist=not on_step,
        )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step; logs ``train/loss``."""
        loss, _ = self._step(batch, batch_idx, "train", self.train_metrics)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Logs ``val/loss`` (``val/dataloader_<i>/loss`` for further dataloaders); metrics are logged
        at epoch end. Plots the first batch of the first dataloader if configured."""
        metrics = self._val_metrics_for(dataloader_idx)
        loss, output = self._step(batch, batch_idx, "val", metrics, tiled=self.tiled_on_validation)
        if batch_idx == 0 and dataloader_idx == 0 and self._should_plot():
            self._plot_batch(batch, output.output)
        return loss

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Logs ``test/loss`` (or ``test/<dataloader name>/loss``)."""
        metrics = self._test_metrics_for(dataloader_idx)
        loss, _ = self._step(batch, batch_idx, "test", metrics, tiled=self.tiled_on_testing)
        return loss

    def predict_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Predict a batch (tiled when ``tiled_inference_parameters`` is set).

        Returns:
            ``{"prediction": Tensor, "filename": list[str] | None}`` plus task-specific entries
            (e.g. ``probabilities`` for classification).
        """
        image, _, extra = self._unpack(batch, need_target=False)
        tiled = self.tiled_inference_parameters is not None
        self._check_channels_once(image)
        output = self._forward_checked(image, extra, tiled)
        result: dict[str, Any] = self.to_prediction(output.output)
        result["filename"] = batch.get("filename")
        return result

    # -- epoch ends --------------------------------------------------------------------------------
    def _log_metrics(self, metrics: TaskMetrics) -> None:
        values = metrics.compute()
        if values:
            self.log_dict(values, add_dataloader_idx=False)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training metrics."""
        self._log_metrics(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's validation metrics (of every validation dataloader)."""
        for metrics in [self.val_metrics, *self.extra_val_metrics]:
            self._log_metrics(metrics)

    def on_test_epoch_end(self) -> None:
        """Log the test metrics of every test dataloader (and record them if ``path_to_record_metrics``)."""
        records: list[tuple[str, float]] = []
        for metrics in self.test_metrics:
            values = metrics.compute()
            if values:
                self.log_dict(values, add_dataloader_idx=False)
                records.extend(
                    (name, float(value))
                    for name, value in values.items()
                    if torch.as_tensor(value).numel() == 1
                )
            metrics.reset()
        if self.path_to_record_metrics and records:
            _record_metrics(self.path_to_record_metrics, records)

    # -- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """Optimizer (+ scheduler) from the task arguments; see :mod:`terratorch.tasks.optim`.

        A LightningCLI ``optimizer:``/``lr_scheduler:`` section replaces this method.
        """
        groups = build_param_groups(self.named_parameters(), self.lr, self.lr_overrides)
        if not groups:
            raise ValueError("No trainable parameters: freeze_backbone/decoder/head froze the whole model.")
        return optimizer_factory(
            self.optimizer or DEFAULT_OPTIMIZER,
            self.lr,
            groups,
            optimizer_hparams=self.optimizer_hparams,
            scheduler=self.scheduler,
            monitor="val/loss",
            scheduler_hparams=self.scheduler_hparams,
        )

    # -- setup: band cross-check -------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Check that the model's bands equal the datamodule's ``output_bands`` (order matters), and
        that its input channels (``model_args.backbone_in_chans``, ...) match their number."""
        datamodule = self._datamodule()
        if isinstance(getattr(datamodule, "output_bands", None), Mapping):
            return  # multimodal: bands are per modality, the model checks them per modality
        check_bands(self.model_args, datamodule)
        check_channels(self.model_args, getattr(datamodule, "output_bands", None))

    def _datamodule(self) -> Any:
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    def _data_bands(self) -> list[Any] | None:
        bands = getattr(self._datamodule(), "output_bands", None)
        if isinstance(bands, Mapping):
            return None  # per modality (multimodal data)
        return list(bands) if bands else None

    def _forward_checked(self, image: Tensor, extra: dict[str, Any], tiled: bool) -> ModelOutput:
        """Forward (tiled or not); a convolution channel error is re-raised naming the config keys."""
        try:
            return self._tiled_forward(image, extra) if tiled else self(image, **extra)
        except RuntimeError as error:
            explained = explain_channel_error(error, self.model_args, self._data_bands())
            if explained is None:
                raise
            raise explained from error

    def _check_channels_once(self, image: Tensor) -> None:
        """At the first batch, compare the image's channels (dim 1) with the model's declared count."""
        if self._channels_checked:
            return
        self._channels_checked = True
        if isinstance(image, Tensor) and image.dim() >= 4:
            check_channels(self.model_args, self._data_bands(), data_channels=int(image.shape[1]))

    # -- plotting ----------------------------------------------------------------------------------
    def _should_plot(self) -> bool:
        if self.plot_on_val <= 0 or self._trainer is None or self.trainer.sanity_checking:
            return False
        if self.current_epoch % self.plot_on_val != 0:
            return False
        return any(_figure_logger_kind(logger) for logger in self.loggers)

    def _plot_batch(self, batch: Mapping[str, Any], output: Tensor) -> None:
        """Log a figure (image, target, prediction) of the first sample to TensorBoard/MLflow."""
        from terratorch.tasks.plotting import plot_sample

        preds = self.to_prediction(output.detach())["prediction"]
        datamodule = getattr(self.trainer, "datamodule", None)
        image, rgb_indices = plot_image(batch["image"], datamodule)
        if image is None:
            return  # no modality to show (e.g. only non-image modalities)
        figure = plot_sample(
            image=image,
            target=batch.get(self.target_key)[0] if batch.get(self.target_key) is not None else None,
            prediction=preds[0],
            task_type=self.task_type,
            class_names=self.class_names,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            rgb_indices=rgb_indices,
            title=f"epoch {self.current_epoch}",
        )
        self._log_figure(figure, "val/prediction")

    def _log_figure(self, figure: Any, tag: str) -> None:
        for logger in self.loggers:
            kind = _figure_logger_kind(logger)
            if kind == "tensorboard":
                logger.experiment.add_figure(tag, figure, global_step=self.global_step, close=False)
            elif kind == "mlflow":
                name = f"{tag}_epoch_{self.current_epoch:04d}.png"
                logger.experiment.log_figure(logger.run_id, figure, name)


def batch_size_of(image: Tensor | Mapping[str, Tensor]) -> int:
    """Number of samples of an image batch: a tensor's first dim, or that of a dict's first tensor."""
    if isinstance(image, Mapping):
        for value in image.values():
            if isinstance(value, Tensor):
                return int(value.shape[0])
        raise ValueError(f"the image dict holds no tensor (modalities: {list(image)})")
    return int(image.shape[0])


def check_image_dict(image: Mapping[str, Any]) -> None:
    """Check a ``{modality: tensor}`` batch: at least one tensor, all image modalities on one grid.

    Image modalities are the tensors with 4 or 5 dims (``(B, C, H, W)``, ``(B, C, T, H, W)``);
    others (per-sample values) are not compared.

    Raises:
        ValueError: the dict is empty, or image modalities differ in ``(H, W)`` (names each
            modality with its shape).
    """
    tensors = {m: v for m, v in image.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(
            f"batch['image'] is a dict without tensors (keys {list(image)}); it must map each modality "
            "to a (B, C, H, W) tensor"
        )
    grids = {m: tuple(v.shape[-2:]) for m, v in tensors.items() if v.dim() in (4, 5)}
    if len(set(grids.values())) > 1:
        shapes = ", ".join(f"{m}: {tuple(tensors[m].shape)}" for m in grids)
        raise ValueError(
            f"the modalities of batch['image'] have different spatial sizes ({shapes}); every modality "
            "must cover the same pixels: resample them to one grid, or use the same crop for all"
        )


def plot_image(
    image: Tensor | Mapping[str, Tensor], datamodule: Any
) -> tuple[Tensor | None, list[int] | None]:
    """The first sample's image to plot and its RGB band positions.

    For a dict batch the modality is the first key of the datamodule's ``rgb_indices``
    (``{modality: [r, g, b]}``) present in the batch, else the first image modality; None when
    no modality is an image.
    """
    if not isinstance(image, Mapping):
        return image[0], _rgb_indices(datamodule)
    explicit = getattr(datamodule, "rgb_indices", None)
    if isinstance(explicit, Mapping):
        for modality, indices in explicit.items():
            value = image.get(modality)
            if isinstance(value, Tensor) and value.dim() in (4, 5):
                return value[0], list(indices) if len(indices) == 3 else [indices[0]] * 3
    for value in image.values():
        if isinstance(value, Tensor) and value.dim() in (4, 5):
            return value[0], None
    return None, None


def class_indices(logits: Tensor) -> Tensor:
    """Index of the largest logit along dim 1, ``(B, C, ...)`` → ``(B, ...)`` int64.

    Same result as ``argmax(dim=1)`` (first maximum wins) but ``max(dim=1).indices`` is several
    times faster on CPU for channel-first maps.
    """
    return logits.max(dim=1).indices


def _figure_logger_kind(logger: Any) -> str | None:
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        return "tensorboard"
    if isinstance(logger, MLFlowLogger):
        return "mlflow"
    return None


def _filenames(batch: Mapping[str, Any], limit: int = 4) -> list[str] | str:
    names = batch.get("filename")
    if not names:
        return "(unknown)"
    names = [str(n) for n in names]
    return names[:limit] + ([f"... {len(names) - limit} more"] if len(names) > limit else [])


def _band_name(band: Any) -> Any:
    if isinstance(band, Enum):
        return band.value
    return band


def check_bands(model_args: Mapping[str, Any], datamodule: Any) -> None:
    """Raise when the model's bands differ from ``datamodule.output_bands``.

    The model's bands are ``model_args["bands"]`` or ``model_args["backbone_bands"]``. Named bands
    must match exactly and in order; when either side lists band indices instead of names only the
    number of bands is compared (indices say nothing about which band the model expects).

    Raises:
        ValueError: Showing both lists.
    """
    model_bands = model_args.get("bands") or model_args.get("backbone_bands")
    data_bands = getattr(datamodule, "output_bands", None) if datamodule is not None else None
    if not model_bands or not data_bands:
        return
    model_list = [_band_name(b) for b in model_bands]
    data_list = [_band_name(b) for b in data_bands]
    named = all(isinstance(b, str) for b in model_list + data_list)
    if (named and model_list != data_list) or len(model_list) != len(data_list):
        raise ValueError(
            "The model's bands differ from the datamodule's output_bands (order matters):\n"
            f"  model bands:             {model_list}\n"
            f"  datamodule output_bands: {data_list}\n"
            "Make model_args.bands (or backbone_bands) and the datamodule's output_bands the same list."
        )


#: ``model_args`` keys that state the model's number of input channels, in the order they are read.
CHANNEL_KEYS = (
    "backbone_in_chans",
    "in_channels",
    "in_chans",
    "backbone_in_channels",
    "backbone_kwargs.in_chans",
    "backbone_kwargs.in_channels",
)
#: ``model_args`` keys whose band list sets the model's number of input channels.
BAND_KEYS = ("backbone_bands", "bands", "backbone_model_bands", "backbone_kwargs.bands")


def _lookup(model_args: Mapping[str, Any], dotted: str) -> Any:
    node: Any = model_args
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def model_channels(model_args: Mapping[str, Any]) -> tuple[str, int] | None:
    """The model's input channels as ``(config key, count)``, from ``model_args``; None if unstated.

    An explicit channel count (``backbone_in_chans``, ``in_channels``, ...) wins over the length of a
    band list (``backbone_bands``, ``bands``), as in the factories.
    """
    for key in CHANNEL_KEYS:
        value = _lookup(model_args, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return f"model_args.{key}", value
    for key in BAND_KEYS:
        value = _lookup(model_args, key)
        if isinstance(value, Sequence) and not isinstance(value, str) and value:
            return f"model_args.{key}", len(value)
    return None


def check_channels(
    model_args: Mapping[str, Any], data_bands: Sequence[Any] | None, data_channels: int | None = None
) -> None:
    """Raise when the model's input channels differ from the data's (before a conv shape error would).

    Args:
        model_args: the task's ``model_args`` (see :func:`model_channels`).
        data_bands: the datamodule's ``output_bands`` (None: unknown).
        data_channels: channels of an actual batch (dim 1); defaults to ``len(data_bands)``.

    Raises:
        ValueError: naming the config key, the model's channel count and the data's bands.
    """
    declared = model_channels(model_args)
    if data_channels is None and data_bands:
        data_channels = len(data_bands)
    if declared is None or data_channels is None or declared[1] == data_channels:
        return
    key, count = declared
    shown = f"output_bands {[_band_name(b) for b in data_bands]}" if data_bands else "its images"
    raise ValueError(
        f"{key} is {count} but the data has {data_channels} channels ({shown}). Make them agree: set "
        f"{key} to {data_channels}, or choose {count} output_bands on the datamodule."
    )


_CONV_CHANNELS = re.compile(r"expected input\[([^\]]*)\] to have (\d+) channels, but got (\d+) channels")


def explain_channel_error(
    error: RuntimeError, model_args: Mapping[str, Any], data_bands: Sequence[Any] | None
) -> ValueError | None:
    """A ValueError naming the config keys to fix for torch's convolution channel error (else None)."""
    found = _CONV_CHANNELS.search(str(error))
    if found is None:
        return None
    expected, got = int(found.group(2)), int(found.group(3))
    declared = model_channels(model_args)
    keys = declared[0] if declared else "model_args.backbone_in_chans (or backbone_bands / bands)"
    shown = f" (output_bands {[_band_name(b) for b in data_bands]})" if data_bands else ""
    return ValueError(
        f"the model expects {expected} input channels but the data has {got}{shown}; set {keys} to {got} "
        f"or select {expected} bands with the datamodule's output_bands. Torch said: {found.group(0)}"
    )


def _rgb_indices(datamodule: Any) -> list[int] | None:
    """Indices of red, green, blue in the datamodule's bands (``rgb_indices`` attribute or band names)."""
    if datamodule is None:
        return None
    explicit = getattr(datamodule, "rgb_indices", None)
    if isinstance(explicit, Mapping):
        return None  # per modality: see plot_image
    if explicit is not None:
        return list(explicit)
    bands = [str(_band_name(b)).upper() for b in getattr(datamodule, "output_bands", None) or []]
    if all(name in bands for name in ("RED", "GREEN", "BLUE")):
        return [bands.index("RED"), bands.index("GREEN"), bands.index("BLUE")]
    return None


class VariableWeightedLoss(nn.Module):
    """Weighted mean over output variables of a regression loss (the task's ``var_weights``).

    Variable ``i`` is channel ``i`` of the output and of the target; with an unmasked mean loss this
    equals weighting every element by its variable's weight, as the reference does.
    """

    def __init__(self, criterion: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        self.criterion = criterion
        self.register_buffer("weights", torch.as_tensor(list(weights), dtype=torch.float32))

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if output.dim() < 2 or output.shape[1] != len(self.weights):
            raise ValueError(
                f"var_weights has {len(self.weights)} entries but the output has shape {tuple(output.shape)} "
                "(variables on dimension 1)."
            )
        losses = torch.stack([self.criterion(output[:, i], target[:, i]) for i in range(len(self.weights))])
        weights = self.weights.to(losses.dtype)
        return (losses * weights).sum() / weights.sum()


def _record_metrics(directory: str, records: Sequence[tuple[str, float]]) -> None:
    """Write ``<directory>/metrics.csv`` with one ``Metric,Value`` row per metric."""
    import csv
    from pathlib import Path

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "Metric", "Value"])
        for index, (name, value) in enumerate(records):
            writer.writerow([index, name, value])


def task_arguments(frame_locals: Mapping[str, Any]) -> dict[str, Any]:
    """A task ``__init__``'s ``locals()`` as keyword arguments for :class:`TerraTorchTask` (``self`` dropped).

    The task modules declare the reference's parameter order and defaults and forward them with this.
    """
    return {k: v for k, v in frame_locals.items() if k not in {"self", "__class__"}}
