"""Object detection (and instance segmentation): boxes with class labels and scores per image.

Batches follow the reference's detection datamodules: ``image`` ``(B, C, H, W)`` (or a list of
``(C, H, W)``), ``boxes`` a list of ``(N_i, 4)`` float ``xyxy`` pixel boxes, ``labels`` a list of
``(N_i,)`` int64 (``0`` is torchvision's background, objects are ``1..num_classes-1``), for
Mask R-CNN ``masks`` a list of ``(N_i, H, W)``; ``filename`` names each image's file for predict.
The model (:class:`~terratorch.models.object_detection_model_factory.ObjectDetectionModelFactory`)
wraps a torchvision detector: ``model(image, targets)`` gives the loss dict while training and
``model(image)`` one ``{boxes, labels, scores[, masks]}`` per image otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from terratorch.models.model import ModelOutput
from terratorch.tasks.base import DEFAULT_OPTIMIZER, TerraTorchTask, batch_size_of
from terratorch.tasks.optim import build_param_groups, optimizer_factory

__all__ = ["ObjectDetectionTask"]

_MASK_FRAMEWORKS = ("mask-rcnn",)


class ObjectDetectionTask(TerraTorchTask):
    """Train, evaluate and run a detector; the reference's ``ObjectDetectionTask`` interface.

    Logs while training every loss of the detector as ``train/<name>`` (``train/loss_classifier``,
    ``train/loss_box_reg``, ``train/loss_objectness``, ``train/loss_rpn_box_reg`` for Faster R-CNN)
    and their sum as ``train/loss``; at the end of validation/test the COCO metrics of
    :class:`~terratorch.tasks.detection_metrics.DetectionMetrics` (``val/mAP``, ``val/mAP_50``,
    ``val/mAP_75``, ..., plus ``segm_*`` for mask models). The reference logs the same values as
    ``val_map``, ``val_map_50``; those names are accepted where a metric is configured.
    ``predict_step`` returns ``prediction``, one ``{boxes, labels, scores[, masks]}`` per image after
    the score filter and NMS; ``terratorch predict`` writes them as GeoJSON
    (:class:`~terratorch.cli.detection_writer.GeoJSONDetectionWriter`).

    Args:
        model_factory: Registered factory name, normally ``ObjectDetectionModelFactory``.
        model_args: Its ``build_model`` arguments (``backbone``, ``framework`` (``faster-rcnn``,
            ``fcos``, ``retinanet``, ``mask-rcnn``), ``num_classes`` including background,
            ``necks``, ``backbone_*``, ``framework_*``).
        lr: Learning rate; ``optimizer_hparams["lr"]`` replaces it (as in the reference).
        optimizer: ``torch.optim`` class name (``None``: Adam).
        optimizer_hparams: Extra optimizer arguments.
        scheduler: ``torch.optim.lr_scheduler`` class name; plateau schedulers watch ``val/mAP``.
        scheduler_hparams: Scheduler arguments (see :mod:`terratorch.tasks.optim`).
        freeze_backbone: Call ``model.freeze_encoder()``.
        freeze_decoder: Call ``model.freeze_decoder()`` (RPN and box heads).
        class_names: Object class names: ``num_classes - 1`` names for labels ``1..`` (background
            unnamed) or ``num_classes`` names indexed by label. Used in GeoJSON properties.
        iou_threshold: IoU above which NMS drops the lower-scored of two predicted boxes.
        score_threshold: Predictions scoring at most this are dropped before NMS (validation, test,
            predict).
        boxes_field: Batch key of the boxes.
        labels_field: Batch key of the labels.
        masks_field: Batch key of the instance masks.
        ignore_index: Label of objects removed from the targets before loss and metrics (``-1``: none,
            the reference's convention).
        tiled_inference_parameters: Predict large scenes tile by tile with these arguments of
            :func:`terratorch.tasks.detection_tiling.tiled_detection` (``crop``, ``stride``,
            ``batch_size``, ...); boxes are merged over the scene.
        lr_overrides: ``{parameter-name substring: lr}`` parameter groups.
        model: A ready detector module instead of ``model_factory`` + ``model_args``.
    """

    task_type: ClassVar[str] = "object_detection"
    model_task: ClassVar[str] = "object_detection"
    target_key: ClassVar[str] = "boxes"
    has_classes: ClassVar[bool] = False
    pixel_wise: ClassVar[bool] = False
    #: Metric the default checkpoint and plateau schedulers watch (``val/segm_mAP`` for mask models).
    monitor: str = "val/mAP"
    monitor_mode: str = "max"

    def __init__(
        self,
        model_factory: str | None = None,
        model_args: dict[str, Any] | None = None,
        lr: float = 0.001,
        optimizer: str | None = None,
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        class_names: list[str] | None = None,
        iou_threshold: float = 0.5,
        score_threshold: float = 0.5,
        boxes_field: str = "boxes",
        labels_field: str = "labels",
        masks_field: str = "masks",
        ignore_index: int = -1,
        tiled_inference_parameters: dict[str, Any] | None = None,
        lr_overrides: dict[str, float] | None = None,
        model: nn.Module | None = None,
    ) -> None:
        hparams = dict(optimizer_hparams or {})
        if "lr" in hparams:  # the reference lets optimizer_hparams.lr replace lr
            lr = float(hparams.pop("lr"))
        for name, value in (("iou_threshold", iou_threshold), ("score_threshold", score_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}.")
        self.boxes_field = boxes_field
        self.labels_field = labels_field
        self.masks_field = masks_field
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        args = dict(model_args or {})
        self.framework = args.get("framework")
        self.has_masks = self.framework in _MASK_FRAMEWORKS or bool(args.get("framework_masks", False))
        super().__init__(
            model_args=args,
            model_factory=model_factory,
            model=model,
            lr=lr,
            optimizer=optimizer,
            optimizer_hparams=hparams,
            scheduler=scheduler,
            scheduler_hparams=scheduler_hparams,
            freeze_backbone=freeze_backbone,
            freeze_decoder=freeze_decoder,
            plot_on_val=False,
            lr_overrides=lr_overrides,
        )
        # after the base class, which has no class list or tiling for per-image outputs
        self.ignore_index = int(ignore_index)
        self.class_names = list(class_names) if class_names is not None else None
        self.num_classes = self.model_args.get("num_classes") or getattr(self.model, "num_classes", None)
        self._check_class_names()
        self.tiled_inference_parameters = (
            dict(tiled_inference_parameters) if tiled_inference_parameters is not None else None
        )
        if self.has_masks:
            self.monitor = "val/segm_mAP"

    def _check_class_names(self) -> None:
        if self.class_names is None or self.num_classes is None:
            return
        if len(self.class_names) not in (self.num_classes - 1, self.num_classes):
            raise ValueError(
                f"class_names has {len(self.class_names)} entries for num_classes={self.num_classes} "
                f"(which counts the background): give {self.num_classes - 1} object class names (labels "
                f"1..{self.num_classes - 1}) or {self.num_classes} names indexed by label."
            )

    # -- configuration -----------------------------------------------------------------------------
    def configure_loss(self, loss: Any, class_weights: Sequence[float] | None) -> nn.Module:
        """Detectors compute their own losses; the criterion is unused."""
        return nn.Identity()

    def configure_metrics(self, prefix: str | None = None) -> Any:
        """Build ``val_metrics`` and ``test_metrics`` (COCO mAP); with ``prefix``, return one set."""
        from terratorch.tasks.detection_metrics import DetectionMetrics

        with_masks = self.model_args.get("framework") in _MASK_FRAMEWORKS or bool(
            self.model_args.get("framework_masks", False)
        )
        if prefix is not None:
            return DetectionMetrics(prefix, with_masks=with_masks)
        self.train_metrics = None
        self.val_metrics = DetectionMetrics("val/", with_masks=with_masks)
        self.extra_val_metrics = nn.ModuleList()
        self.test_metrics = nn.ModuleList([DetectionMetrics("test/", with_masks=with_masks)])
        return None

    def configure_optimizers(self) -> dict[str, Any]:
        """Optimizer (+ scheduler) as for every task; plateau schedulers watch :attr:`monitor`."""
        groups = build_param_groups(self.named_parameters(), self.lr, self.lr_overrides)
        if not groups:
            raise ValueError("No trainable parameters: freeze_backbone/freeze_decoder froze the whole model.")
        return optimizer_factory(
            self.optimizer or DEFAULT_OPTIMIZER,
            self.lr,
            groups,
            optimizer_hparams=self.optimizer_hparams,
            scheduler=self.scheduler,
            monitor=self.monitor,
            scheduler_hparams=self.scheduler_hparams,
        )

    # -- batches -----------------------------------------------------------------------------------
    def forward(self, x: Any, targets: list[dict[str, Tensor]] | None = None, **kwargs: Any) -> ModelOutput:
        """``model(x, targets)`` (loss dict) or ``model(x)`` (detections), wrapped in ModelOutput."""
        out = self.model(x, targets, **kwargs) if targets is not None else self.model(x, **kwargs)
        return out if isinstance(out, ModelOutput) else ModelOutput(output=out)

    def _image(self, batch: Mapping[str, Any]) -> Any:
        if not isinstance(batch, Mapping) or "image" not in batch:
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"detection batches are dicts with an 'image' key; got {keys}.")
        return batch["image"]

    def _count(self, image: Any) -> int:
        return len(image) if isinstance(image, (list, tuple)) else batch_size_of(image)

    def targets_of(self, batch: Mapping[str, Any]) -> list[dict[str, Tensor]]:
        """One ``{boxes, labels[, masks]}`` per image from the batch, minus ``ignore_index`` objects."""
        for field in (self.boxes_field, self.labels_field):
            if field not in batch:
                raise ValueError(
                    f"{type(self).__name__} expects {field!r} in the batch (boxes_field/labels_field); the "
                    f"batch has {sorted(batch)}."
                )
        boxes, labels = batch[self.boxes_field], batch[self.labels_field]
        masks = batch.get(self.masks_field) if self.has_masks else None
        if self.has_masks and masks is None:
            raise ValueError(
                f"{self.framework} needs instance masks under {self.masks_field!r} (masks_field)."
            )
        targets = []
        for i in range(len(boxes)):
            box = torch.as_tensor(boxes[i], dtype=torch.float32).reshape(-1, 4)
            label = torch.as_tensor(labels[i], dtype=torch.int64).reshape(-1)
            if box.shape[0] != label.shape[0]:
                raise ValueError(
                    f"image {i} of the batch has {box.shape[0]} boxes but {label.shape[0]} labels."
                )
            target = {"boxes": box, "labels": label}
            if masks is not None:
                target["masks"] = torch.as_tensor(masks[i]).to(torch.uint8)
            if self.ignore_index != -1:
                keep = label != self.ignore_index
                target = {key: value[keep] for key, value in target.items()}
            targets.append(target)
        return targets

    def filter_predictions(self, predictions: Sequence[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Drop predictions scoring at most ``score_threshold``, then class-agnostic NMS with
        ``iou_threshold`` (the reference's post-processing); mask probabilities become 0/1 masks."""
        from torchvision.ops import nms

        kept = []
        for item in predictions:
            item = dict(item)
            keep = item["scores"] > self.score_threshold
            item = {key: value[keep] if isinstance(value, Tensor) else value for key, value in item.items()}
            order = nms(item["boxes"].float(), item["scores"].float(), self.iou_threshold)
            item = {key: value[order] if isinstance(value, Tensor) else value for key, value in item.items()}
            if "masks" in item and item["masks"].dim() == 4:
                item["masks"] = (item["masks"] > 0.5).squeeze(1).to(torch.uint8)
            kept.append(item)
        return kept

    def detect(self, image: Any) -> list[dict[str, Tensor]]:
        """Filtered detections of an image batch (model in its current mode, which must be eval)."""
        output = self(image).output
        if isinstance(output, Mapping):
            raise RuntimeError(
                "the detector returned losses instead of detections: call detect() in eval mode."
            )
        return self.filter_predictions(output)

    # -- steps -------------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step on the sum of the detector's losses; logs each and ``train/loss``."""
        image = self._image(batch)
        targets = self.targets_of(batch)
        losses = self(image, targets).output
        if not isinstance(losses, Mapping):
            raise RuntimeError(
                f"the detector returned {type(losses).__name__} for (image, targets) in train mode; "
                "a torchvision detector returns its dict of losses."
            )
        total = torch.stack([value for value in losses.values()]).sum()
        self._check_finite(total, "train", batch_idx, batch)
        size = self._count(image)
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=size)
        self.log("train/loss", total, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        return total

    def _evaluate(self, batch: Mapping[str, Any], metrics: Any) -> list[dict[str, Tensor]]:
        image = self._image(batch)
        targets = self.targets_of(batch)
        predictions = self.detect(image)
        metrics.update(predictions, targets)
        return predictions

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate the batch's detections for the epoch's ``val/`` metrics."""
        self._evaluate(batch, self._val_metrics_for(dataloader_idx))

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate the batch's detections for the ``test/`` metrics."""
        self._evaluate(batch, self._test_metrics_for(dataloader_idx))

    def predict_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Detections per image (tiled over the scene when ``tiled_inference_parameters`` is set).

        Returns:
            ``{"prediction": [{boxes, labels, scores[, masks]}, ...], "filename": list[str] | None}``
            with boxes ``xyxy`` in the input image's pixel coordinates, on the CPU.
        """
        image = self._image(batch)
        if self.tiled_inference_parameters is not None:
            predictions = [self.detect_scene(scene) for scene in image]
        else:
            predictions = self.detect(image)
        cpu = [{key: value.detach().cpu() for key, value in item.items()} for item in predictions]
        return {"prediction": cpu, "filename": batch.get("filename")}

    def detect_scene(self, scene: Tensor) -> dict[str, Tensor]:
        """Detections of one large scene ``(C, H, W)``, tile by tile (``tiled_inference_parameters``)."""
        from terratorch.tasks.detection_tiling import tiled_detection

        params = {"iou_threshold": self.iou_threshold, **(self.tiled_inference_parameters or {})}
        return tiled_detection(self.detect, scene, **params)

    # -- epoch ends --------------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        """No training metrics: detections are evaluated on validation and test data only."""

    # -- naming ------------------------------------------------------------------------------------
    def class_name(self, label: int) -> str | None:
        """The name of a predicted label per ``class_names`` (None without names or out of range)."""
        if self.class_names is None:
            return None
        index = (
            label if self.num_classes is not None and len(self.class_names) == self.num_classes else label - 1
        )
        return self.class_names[index] if 0 <= index < len(self.class_names) else None

    def make_prediction_writer(self, output_dir: str, output_file_prefix: str = "") -> Any:
        """The writer ``terratorch predict`` attaches for this task: GeoJSON per input image."""
        from terratorch.cli.detection_writer import GeoJSONDetectionWriter

        return GeoJSONDetectionWriter(output_dir=output_dir, output_file_prefix=output_file_prefix)
