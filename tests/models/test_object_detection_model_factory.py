"""``ObjectDetectionModelFactory``: every framework trains and predicts; freezing, routing and errors.

A tiny user backbone (three strided convs) keeps the detectors cheap; parity with the reference is in
``tests/compat/test_golden_detection.py``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import torch
from torch import nn

from terratorch.models.model import ModelOutput
from terratorch.models.object_detection_model_factory import (
    FRAMEWORKS,
    ModelOutputObjectDetection,
    ObjectDetectionModel,
    ObjectDetectionModelFactory,
)
from terratorch.registry import MODEL_FACTORY_REGISTRY

FPN = {"name": "FeaturePyramidNetworkNeck", "out_channel": 32}
#: Small proposal budgets for the R-CNNs (their defaults take up to 2000 proposals per image).
RCNN_BUDGET = {
    "framework_rpn_pre_nms_top_n_train": 50,
    "framework_rpn_post_nms_top_n_train": 8,
    "framework_rpn_pre_nms_top_n_test": 50,
    "framework_rpn_post_nms_top_n_test": 8,
    "framework_box_batch_size_per_image": 8,
}


class TinyBackbone(nn.Module):
    """Three stride-2 conv stages returning a list of maps (strides 2, 4, 8)."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.out_channels = [8, 16, 32]
        channels = [in_chans, *self.out_channels]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()) for a, b in pairwise(channels)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def build(framework: str, **kwargs: Any) -> ObjectDetectionModel:
    torch.manual_seed(0)
    kwargs.setdefault("backbone", TinyBackbone())
    kwargs.setdefault("necks", [FPN])
    kwargs.setdefault("num_classes", 3)
    if "rcnn" in framework:
        kwargs = {**RCNN_BUDGET, **kwargs}
    return ObjectDetectionModelFactory().build_model("object_detection", framework=framework, **kwargs)


def targets(masks: bool = False, size: int = 32) -> list[dict[str, torch.Tensor]]:
    out = []
    for boxes in ([[2.0, 3.0, 14.0, 20.0], [10.0, 8.0, 30.0, 26.0]], [[4.0, 4.0, 28.0, 28.0]]):
        target = {"boxes": torch.tensor(boxes), "labels": torch.tensor([1, 2][: len(boxes)])}
        if masks:
            mask = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
            for index, (x0, y0, x1, y1) in enumerate(boxes):
                mask[index, int(y0) : int(y1), int(x0) : int(x1)] = 1
            target["masks"] = mask
        out.append(target)
    return out


LOSS_KEYS = {
    "faster-rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "mask-rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask"},
    "fcos": {"classification", "bbox_regression", "bbox_ctrness"},
    "retinanet": {"classification", "bbox_regression"},
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_framework_trains_and_predicts(framework: str) -> None:
    model = (
        build(framework, framework_score_thresh=0.0)
        if framework in ("fcos", "retinanet")
        else build(framework)
    )
    x = torch.randn(2, 3, 32, 32)
    model.train()
    losses = model(x, targets(masks=framework == "mask-rcnn"))
    assert isinstance(losses, ModelOutputObjectDetection) and isinstance(losses, ModelOutput)
    assert set(losses.output) == LOSS_KEYS[framework]
    total = sum(losses.output.values())
    assert torch.isfinite(total)
    if framework != "mask-rcnn":  # its 13M-weight box head makes the backward the slowest step here
        total.backward()
        assert model.torchvision_model.backbone.backbone.stages[0][0].weight.grad is not None
    model.eval()
    with torch.no_grad():
        batched = model(x).output
        listed = model([x[0], x[1]]).output
    assert len(batched) == 2
    expected_keys = {"boxes", "labels", "scores"} | ({"masks"} if framework == "mask-rcnn" else set())
    for det_b, det_l in zip(batched, listed, strict=True):
        assert set(det_b) == expected_keys
        assert det_b["boxes"].shape[1:] == (4,) and len(det_b["boxes"]) == len(det_b["scores"]) > 0
        assert (det_b["boxes"] >= 0).all() and (det_b["boxes"] <= 32).all()
        for key in det_b:
            torch.testing.assert_close(det_b[key], det_l[key])
    if framework == "mask-rcnn":
        assert batched[0]["masks"].shape[1:] == (1, 32, 32)


def test_images_of_different_sizes_are_padded_not_rejected() -> None:
    model = build("fcos", framework_score_thresh=0.0).eval()
    with torch.no_grad():
        out = model([torch.randn(3, 32, 32), torch.randn(3, 24, 40)]).output
    assert (out[1]["boxes"][:, [0, 2]] <= 40).all() and (out[1]["boxes"][:, [1, 3]] <= 24).all()


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize(
    ("framework", "decoder_parts"),
    [("faster-rcnn", ("rpn", "roi_heads")), ("mask-rcnn", ("rpn", "roi_heads")), ("retinanet", ("head",))],
)
def test_freeze_encoder_and_decoder(framework: str, decoder_parts: tuple[str, ...]) -> None:
    model = build(framework)
    detector = model.torchvision_model
    model.freeze_encoder()
    assert not _trainable(detector.backbone)  # backbone and necks (FPN)
    assert all(_trainable(getattr(detector, part)) for part in decoder_parts)
    model = build(framework)
    detector = model.torchvision_model
    model.freeze_decoder()
    assert all(not _trainable(getattr(detector, part)) for part in decoder_parts)
    assert _trainable(detector.backbone.backbone) and _trainable(detector.backbone.necks)
    if framework == "mask-rcnn":
        assert not _trainable(detector.roi_heads.mask_head)


def test_registered_and_state_dict_layout() -> None:
    factory = MODEL_FACTORY_REGISTRY.build("ObjectDetectionModelFactory")
    assert isinstance(factory, ObjectDetectionModelFactory)
    keys = build("faster-rcnn").state_dict()
    assert "torchvision_model.backbone.backbone.stages.0.0.weight" in keys
    assert "torchvision_model.backbone.necks.0.fpn.inner_blocks.0.0.weight" in keys
    assert "torchvision_model.rpn.head.conv.0.0.weight" in keys


def test_kwarg_routing_to_backbone_and_framework() -> None:
    model = build(
        "faster-rcnn",
        backbone="timm_test_resnet",
        backbone_pretrained=False,
        backbone_in_chans=4,
        backbone_out_indices=[1, 2],
        framework_box_detections_per_img=3,
        framework_box_score_thresh=0.0,
        in_channels=4,
    )
    detector = model.torchvision_model
    assert detector.backbone.backbone.conv1[0].in_channels == 4
    assert detector.backbone.channel_list == [32, 32]
    assert detector.roi_heads.detections_per_img == 3
    assert len(detector.transform.image_mean) == 4
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, 32, 32)).output
    assert len(out[0]["boxes"]) <= 3


def test_list_output_of_necks_is_named_for_the_roi_pooler() -> None:
    model = build("faster-rcnn", necks=[{**FPN, "output_ordered_dict": False}]).eval()
    with torch.no_grad():
        features = model.torchvision_model.backbone(torch.randn(1, 3, 32, 32))
    assert list(features) == ["feat0", "feat1", "feat2"]
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))


def test_unknown_framework_lists_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"faster-rcnn.*fcos.*retinanet.*mask-rcnn.*Did you mean 'faster-rcnn'"
    ):
        build("faster_rcnn")
    with pytest.raises(ValueError, match="DETR family"):
        build("detr")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"task": "segmentation"}, NotImplementedError, "object_detection"),
        ({"num_classes": None}, ValueError, "needs num_classes"),
        ({"in_chanels": 3}, ValueError, r"'in_chanels' \(did you mean 'in_channels'\?\)"),
        (
            {"framework_box_detection_per_img": 3},
            ValueError,
            "did you mean 'framework_box_detections_per_img'",
        ),
        ({"backbone_in_chans": 3}, ValueError, "already built TinyBackbone"),
        ({"necks": []}, ValueError, "FeaturePyramidNetworkNeck"),
    ],
)
def test_errors(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    task = kwargs.pop("task", "object_detection")
    arguments: dict[str, Any] = {
        "backbone": TinyBackbone(),
        "framework": "faster-rcnn",
        "necks": [FPN],
        "num_classes": 3,
    }
    with pytest.raises(error, match=message):
        ObjectDetectionModelFactory().build_model(task, **{**arguments, **kwargs})


def test_too_many_levels_for_the_anchor_table() -> None:
    necks = [
        {"name": "AddBottleneckLayer"},
        {"name": "AddBottleneckLayer"},
        {"name": "AddBottleneckLayer"},
        FPN,
    ]
    with pytest.raises(ValueError, match="at most 5 feature levels"):
        build("faster-rcnn", necks=necks)
