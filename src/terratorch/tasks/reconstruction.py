"""Masked-autoencoder continued pretraining on the user's own imagery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from terratorch.models.model import ModelOutput
from terratorch.tasks.base import TerraTorchTask
from terratorch.tasks.metrics import TaskMetrics

__all__ = ["ReconstructionTask"]


def unpack_mae_output(out: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Read ``(loss, reconstruction, mask)`` from what a masked autoencoder returns.

    Accepts a ``(loss, reconstruction, mask)`` tuple, a ``ModelOutput`` wrapping such a tuple, or a
    dict with ``loss`` (and ``reconstruction``/``pred``, ``mask``).

    Raises:
        TypeError: Anything else (the message says what was returned).
    """
    if isinstance(out, ModelOutput):
        out = out.output
    if isinstance(out, Mapping) and "loss" in out:
        return out["loss"], out.get("reconstruction", out.get("pred")), out.get("mask")
    if isinstance(out, (tuple, list)) and len(out) == 3:
        return out[0], out[1], out[2]
    raise TypeError(
        "A ReconstructionTask model must return (loss, reconstruction, mask) (optionally inside a "
        f"ModelOutput) or a dict with 'loss'; got {type(out).__name__}."
    )


class ReconstructionTask(TerraTorchTask):
    """Continue masked-autoencoder pretraining (e.g. a Prithvi MAE) on unlabelled imagery.

    The model (by default built by ``FullModelFactory`` from ``FULL_MODEL_REGISTRY``, e.g.
    ``model_args: {model: prithvi_eo_v2_tiny_tl_mae, ...}``) takes ``image`` ``(B, C, H, W)`` or
    ``(B, C, T, H, W)`` and returns ``(loss, reconstruction, mask)``; the model's own masked
    reconstruction loss is optimised. Batches need only ``image`` (other tensors such as
    ``temporal_coords`` reach the model). Logs ``train/loss``, ``val/loss``, ``test/loss``.
    ``predict_step`` returns ``prediction`` (the reconstruction) and ``mask``.

    The parameter order and names are the reference's (``model_factory`` first). Differences: the
    loss is the model's own masked MSE (``loss="mse"``/``masked_metric=True`` are the only values),
    ``ignore_index`` is stored but pixels are not excluded, no validation plots are drawn
    (``plot_on_val`` is accepted), and tiled inference / ``modalities`` are rejected.

    Args:
        model_factory: Factory name (default ``"FullModelFactory"``).
        model_args: ``build_model`` kwargs of the factory (``model``, ``pretrained``, ``ckpt_path``, ...).
        loss, ignore_index, masked_metric, plot_on_val, tiled_inference_parameters, modalities: The
            reference's parameters (see above).
        freeze_encoder: The reference's name of ``freeze_backbone``.
        model: A ready masked autoencoder instead of factory + args.
        mask_ratio: Fraction of patches masked; passed to the model's forward when set.
        lr, optimizer, optimizer_hparams, scheduler, scheduler_hparams, lr_overrides: As in
            :class:`~terratorch.tasks.base.TerraTorchTask` (default ``lr`` 0.001 and ``Adam``, as the
            reference).
        freeze_backbone: Call ``model.freeze_encoder()`` (train the decoder only).
        freeze_decoder: Call ``model.freeze_decoder()``.
        test_dataloaders_names: Names of several test dataloaders (``test/<name>/loss``).
    """

    task_type = "reconstruction"
    model_task = "reconstruction"
    target_key = "image"
    loss_kind = "regression"
    default_loss = "mse"
    has_classes = False
    pixel_wise = False

    def __init__(
        self,
        model_factory: str | None = "FullModelFactory",
        model_args: dict[str, Any] | None = None,
        loss: str = "mse",
        ignore_index: float | None = float("nan"),
        masked_metric: bool = True,
        lr: float = 0.001,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_encoder: bool = False,
        freeze_decoder: bool = False,
        plot_on_val: bool | int = 10,
        tiled_inference_parameters: dict[str, Any] | None = None,
        modalities: list[str] | None = None,
        model: nn.Module | None = None,
        mask_ratio: float | None = None,
        lr_overrides: dict[str, float] | None = None,
        freeze_backbone: bool = False,
        test_dataloaders_names: list[str] | None = None,
    ) -> None:
        if mask_ratio is not None and not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}.")
        if loss != "mse" or not masked_metric:
            raise ValueError(
                "ReconstructionTask optimises the masked autoencoder's own loss (MSE on the masked "
                f"patches): loss='mse' with masked_metric=True is the only setting, got loss={loss!r}, "
                f"masked_metric={masked_metric!r}."
            )
        if tiled_inference_parameters is not None:
            raise ValueError(
                "ReconstructionTask does not run tiled inference; drop tiled_inference_parameters "
                "(reconstruct chips of the model's input size)."
            )
        if modalities is not None:
            raise ValueError(
                "ReconstructionTask takes single-modality image batches; multimodal reconstruction "
                f"(modalities={modalities!r}) is not supported."
            )
        super().__init__(
            model_args=model_args,
            model_factory=None if model is not None else model_factory,
            model=model,
            lr=lr,
            optimizer=optimizer,
            optimizer_hparams=optimizer_hparams,
            scheduler=scheduler,
            scheduler_hparams=scheduler_hparams,
            lr_overrides=lr_overrides,
            freeze_backbone=freeze_backbone or freeze_encoder,
            freeze_decoder=freeze_decoder,
            plot_on_val=False,
            test_dataloaders_names=test_dataloaders_names,
        )
        self.mask_ratio = mask_ratio
        self.ignore_index = ignore_index

    def configure_loss(self, loss: Any, class_weights: Any) -> nn.Module:
        """The masked autoencoder computes its own loss; nothing to build."""
        return nn.Identity()

    def _reconstruct(
        self, image: Tensor, extra: dict[str, Any]
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        kwargs = dict(extra)
        if self.mask_ratio is not None:
            kwargs["mask_ratio"] = self.mask_ratio
        return unpack_mae_output(self.model(image, **kwargs))

    def _step(
        self, batch: Mapping[str, Any], batch_idx: int, stage: str, metrics: TaskMetrics, tiled: bool = False
    ) -> tuple[Tensor, ModelOutput]:
        image, _, extra = self._unpack(batch, need_target=False)
        loss, reconstruction, _ = self._reconstruct(image, extra)
        self._check_finite(loss, stage, batch_idx, batch)
        self.log_loss(f"{metrics.prefix}loss", loss, stage, batch_size=image.shape[0])
        return loss, ModelOutput(output=reconstruction)

    def predict_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """``{"prediction": reconstruction, "mask": mask, "filename": [...]}``."""
        image, _, extra = self._unpack(batch, need_target=False)
        _, reconstruction, mask = self._reconstruct(image, extra)
        return {"prediction": reconstruction, "mask": mask, "filename": batch.get("filename")}
