"""Losses against hand computations, ignore_index handling and the loss spec parser."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from terratorch.tasks.losses import (
    BCELoss,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    HuberLoss,
    JaccardLoss,
    LovaszSoftmaxLoss,
    MAELoss,
    MSELoss,
    RMSELoss,
    build_loss,
)

CLASS_LOSSES = ["ce", "focal", "dice", "jaccard", "lovasz", "bce"]
REG_LOSSES = ["mse", "mae", "rmse", "huber"]


def _pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (1, 2, 1, 3) and target (1, 1, 3) = [0, 1, ignore(-1)]."""
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])
    target = torch.tensor([[[0, 1, -1]]])
    return logits, target


def _probs(logits: torch.Tensor) -> list[list[float]]:
    """Per pixel softmax probabilities computed with math (independent of torch.softmax)."""
    values = logits[0, :, 0, :].T.tolist()
    out = []
    for row in values:
        exps = [math.exp(v) for v in row]
        out.append([e / sum(exps) for e in exps])
    return out


def test_cross_entropy_ignores_pixels():
    logits, target = _pixels()
    p = _probs(logits)
    expected = -(math.log(p[0][0]) + math.log(p[1][1])) / 2
    assert CrossEntropyLoss(ignore_index=-1)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_class_weights_weighted_mean():
    logits, target = _pixels()
    p = _probs(logits)
    w = [1.0, 3.0]
    expected = -(w[0] * math.log(p[0][0]) + w[1] * math.log(p[1][1])) / (w[0] + w[1])
    loss = CrossEntropyLoss(ignore_index=-1, class_weights=w)(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_matches_formula_and_reduces_to_ce():
    logits, target = _pixels()
    p = _probs(logits)
    pt = [p[0][0], p[1][1]]
    expected = sum(-((1 - q) ** 2) * math.log(q) for q in pt) / 2
    assert FocalLoss(gamma=2.0, ignore_index=-1)(logits, target).item() == pytest.approx(expected, rel=1e-5)
    ce = CrossEntropyLoss(ignore_index=-1)(logits, target)
    assert FocalLoss(gamma=0.0, ignore_index=-1)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)


def test_dice_and_jaccard_match_hand_computation():
    logits, target = _pixels()
    p = _probs(logits)
    s = 1.0
    # valid pixels 0 (class 0) and 1 (class 1); both classes present
    per_class_dice, per_class_iou = [], []
    for c in (0, 1):
        inter = p[c][c]
        pred_sum = p[0][c] + p[1][c]
        per_class_dice.append(1 - (2 * inter + s) / (pred_sum + 1 + s))
        per_class_iou.append(1 - (inter + s) / (pred_sum + 1 - inter + s))
    assert DiceLoss(ignore_index=-1)(logits, target).item() == pytest.approx(
        sum(per_class_dice) / 2, rel=1e-5
    )
    assert JaccardLoss(ignore_index=-1)(logits, target).item() == pytest.approx(
        sum(per_class_iou) / 2, rel=1e-5
    )


def test_lovasz_perfect_prediction_is_zero_and_wrong_is_positive():
    target = torch.tensor([[[0, 1, 1, -1]]])
    perfect = torch.tensor([[[[50.0, -50.0, -50.0, -50.0]], [[-50.0, 50.0, 50.0, 50.0]]]])
    assert LovaszSoftmaxLoss(ignore_index=-1)(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    # every valid pixel fully wrong: each present class has Jaccard loss 1
    assert LovaszSoftmaxLoss(ignore_index=-1)(wrong, target).item() == pytest.approx(1.0, abs=1e-6)


def test_lovasz_single_error_hand_value():
    # class 0 pixels: errors sorted; one pixel of class 1 misclassified with prob 0.5
    target = torch.tensor([[[0, 1]]])
    logits = torch.tensor([[[[0.0, 0.0]], [[-100.0, 0.0]]]])  # pixel 0 certain class 0, pixel 1 p=0.5/0.5
    # class 0: truth [1, 0], errors [0, 0.5] → sorted [0.5 (pixel1, truth 0), 0 (pixel0, truth 1)]
    #   gradient: g1 = 1 - (1 - 0)/(1 + 1) = 0.5, g2 = (1 - 0/1) - 0.5 = 0.5 → loss 0.25
    # class 1: truth [0, 1], errors [0, 0.5] → sorted [0.5 (truth 1), 0] → g1 = 1 - 0/1 = 1 → loss 0.5
    loss = LovaszSoftmaxLoss()(logits, target)
    assert loss.item() == pytest.approx((0.25 + 0.5) / 2, abs=1e-5)


def test_bce_multilabel_ignores_entries_and_applies_class_weights():
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    target = torch.tensor([[1.0, 0.0, -1.0]])

    def bce(x: float, y: float) -> float:
        q = 1 / (1 + math.exp(-x))
        return -(y * math.log(q) + (1 - y) * math.log(1 - q))

    expected = (bce(0.5, 1) + bce(-1.0, 0)) / 2
    assert BCELoss(ignore_index=-1)(logits, target).item() == pytest.approx(expected, rel=1e-5)
    weighted = (2 * bce(0.5, 1) + 1 * bce(-1.0, 0)) / 3
    loss = BCELoss(ignore_index=-1, class_weights=[2.0, 1.0, 5.0])(logits, target)
    assert loss.item() == pytest.approx(weighted, rel=1e-5)


def test_bce_one_hot_encodes_class_maps():
    logits, target = _pixels()
    safe = target.clamp_min(0)
    one_hot = torch.nn.functional.one_hot(safe, 2).permute(0, 3, 1, 2).float()
    terms = torch.nn.functional.binary_cross_entropy_with_logits(logits, one_hot, reduction="none")
    expected = terms[..., :2].mean()
    assert BCELoss(ignore_index=-1)(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_regression_losses_hand_values_with_ignore_and_nan():
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[2.0, 2.0, -9999.0, float("nan")]])
    # valid: (1 vs 2) and (2 vs 2)
    assert MSELoss(ignore_index=-9999)(pred, target).item() == pytest.approx(0.5)
    assert MAELoss(ignore_index=-9999)(pred, target).item() == pytest.approx(0.5)
    assert RMSELoss(ignore_index=-9999)(pred, target).item() == pytest.approx(math.sqrt(0.5))
    assert HuberLoss(ignore_index=-9999, delta=1.0)(pred, target).item() == pytest.approx(0.25)
    big = torch.tensor([[5.0]])
    assert HuberLoss(delta=1.0)(big, torch.tensor([[2.0]])).item() == pytest.approx(3.0 - 0.5)


def test_regression_accepts_channel_dim_and_rejects_mismatch():
    assert MSELoss()(torch.ones(2, 1, 3, 3), torch.zeros(2, 3, 3)).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"shape \(2, 4\) does not match target shape \(2, 3\)"):
        MSELoss()(torch.ones(2, 4), torch.zeros(2, 3))


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_all_ignored_classification_loss_is_finite_zero_with_grad(name):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    loss = build_loss(name, "classification", ignore_index=255)(logits, target)
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", REG_LOSSES)
def test_all_ignored_regression_loss_is_finite_zero_with_grad(name):
    pred = torch.randn(2, 4, 4, requires_grad=True)
    loss = build_loss(name, "regression", ignore_index=-1)(pred, torch.full((2, 4, 4), -1.0))
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_ignored_pixels_do_not_change_the_loss(name):
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    masked = target.clone()
    masked[0, 0] = -1
    changed_logits = logits.clone()
    changed_logits[0, :, 0] = torch.randn(3, 4) * 10  # ignored row: anything
    fn = build_loss(name, "classification", ignore_index=-1)
    assert fn(logits, masked).item() == pytest.approx(fn(changed_logits, masked).item(), rel=1e-5, abs=1e-6)


def test_classification_loss_for_image_labels():
    logits = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    target = torch.tensor([0, -1])
    expected = -math.log(math.exp(1) / (math.exp(1) + 1))
    assert build_loss("ce", "classification", ignore_index=-1)(logits, target).item() == pytest.approx(
        expected
    )


def test_spec_forms_build_weighted_sums():
    logits, target = _pixels()
    ce = CrossEntropyLoss(ignore_index=-1)(logits, target)
    dice = DiceLoss(ignore_index=-1)(logits, target)
    combined = build_loss({"ce": 1.0, "dice": 0.5}, "classification", ignore_index=-1)
    assert isinstance(combined, CombinedLoss)
    assert combined(logits, target).item() == pytest.approx(ce.item() + 0.5 * dice.item(), rel=1e-6)
    summed = build_loss(["ce", "dice"], "classification", ignore_index=-1)
    assert summed(logits, target).item() == pytest.approx(ce.item() + dice.item(), rel=1e-6)
    assert isinstance(build_loss("CE", "classification"), CrossEntropyLoss)
    custom = nn.L1Loss()
    assert build_loss(custom, "regression") is custom


def test_class_weights_only_reach_losses_that_use_them():
    combined = build_loss({"ce": 1.0, "dice": 1.0}, "classification", class_weights=[1.0, 2.0])
    assert combined.losses["ce"].class_weights == [1.0, 2.0]
    with pytest.raises(ValueError, match="class_weights were given but none of the losses"):
        build_loss("dice", "classification", class_weights=[1.0, 2.0])


def test_unknown_loss_names_suggest_close_matches():
    with pytest.raises(ValueError, match=r"Unknown loss 'dise'.*Did you mean: dice.*Valid losses"):
        build_loss("dise", "classification")
    with pytest.raises(ValueError, match=r"'mse' is a loss for regression"):
        build_loss("mse", "classification")
    with pytest.raises(ValueError, match=r"Unknown loss 'rmes'.*Did you mean: rmse"):
        build_loss({"rmes": 1.0}, "regression")
    with pytest.raises(ValueError, match="at least one loss"):
        build_loss([], "regression")
    with pytest.raises(TypeError, match="loss must be a name"):
        build_loss(3, "regression")
