"""Losses for the fine-tuning tasks, all honouring ``ignore_index``.

Classification-type losses (``ce``, ``dice``, ``focal``, ``jaccard``, ``lovasz``, ``bce``) take logits
``(B, C, ...)`` (``(B, C)`` for image classification, ``(B, C, H, W)`` for segmentation) and integer
targets ``(B, ...)``; ``bce`` also takes float targets shaped like the logits (multi-label).
Regression losses (``mse``, ``mae``, ``rmse``, ``huber``) take predictions and targets of the same
shape (``(B, H, W)`` pixel-wise, ``(B,)`` per image).

Targets equal to ``ignore_index`` are left out of every loss. When a batch has no valid target at
all the loss is ``0`` (still attached to the graph), never ``NaN``. Fixes of upstream TerraTorch
behaviour: there, ``torch.nn.CrossEntropyLoss`` returned ``NaN`` for all-ignored batches, the
``jaccard`` loss refused ``ignore_index`` altogether, and ``rmse`` had a ``NaN`` gradient at zero error.

A task's ``loss`` argument may be a name, a list of names (summed), a ``{name: weight}`` mapping
(weighted sum) or a ready ``nn.Module``; :func:`build_loss` turns it into one module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.choices import did_you_mean

__all__ = [
    "CLASSIFICATION_LOSSES",
    "REGRESSION_LOSSES",
    "BCELoss",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "HuberLoss",
    "JaccardLoss",
    "LovaszSoftmaxLoss",
    "MAELoss",
    "MSELoss",
    "RMSELoss",
    "build_loss",
]


def _zero_like(pred: Tensor) -> Tensor:
    """A zero loss that keeps ``pred`` in the graph (so ``backward`` works on all-ignored batches)."""
    return pred.sum() * 0.0


def _valid_mask(target: Tensor, ignore_index: int | None) -> Tensor:
    """Boolean mask of targets that count (not equal to ``ignore_index``)."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def _flatten_logits(logits: Tensor, target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """Turn ``(B, C, ...)`` logits and ``(B, ...)`` targets into valid ``(N, C)`` and ``(N,)`` rows."""
    num_classes = logits.shape[1]
    flat_logits = logits.movedim(1, -1).reshape(-1, num_classes)
    flat_target = target.reshape(-1)
    keep = _valid_mask(flat_target, ignore_index)
    return flat_logits[keep], flat_target[keep].long()


def _safe_target(target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """Integer target with ignored entries replaced by class 0, and the float validity mask.

    Masking multiplicatively (instead of boolean indexing) keeps the losses free of host syncs.
    """
    valid = _valid_mask(target, ignore_index)
    return target.masked_fill(~valid, 0).long(), valid


def _class_weight_tensor(class_weights: Sequence[float] | None, like: Tensor) -> Tensor | None:
    if class_weights is None:
        return None
    return torch.as_tensor(list(class_weights), dtype=like.dtype, device=like.device)


def _weighted_mean(terms: Tensor, weight: Tensor) -> Tensor:
    """``sum(terms * weight) / sum(weight)``; ``0`` (not NaN) when every weight is zero."""
    return (terms * weight).sum() / weight.sum().clamp_min(1e-12)


class CrossEntropyLoss(nn.Module):
    """Cross-entropy over valid targets; with ``class_weights`` the mean is weighted like torch's.

    Args:
        ignore_index: Target value excluded from the loss.
        class_weights: One weight per class (length ``C``).
    """

    def __init__(self, ignore_index: int | None = None, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else list(class_weights)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, integer target ``(B, ...)`` → scalar."""
        safe, valid = _safe_target(target, self.ignore_index)
        terms = F.cross_entropy(logits, safe, reduction="none")
        weight = valid.to(terms.dtype)
        class_weight = _class_weight_tensor(self.class_weights, terms)
        if class_weight is not None:
            weight = weight * class_weight[safe]
        return _weighted_mean(terms, weight)


class FocalLoss(nn.Module):
    """Softmax focal loss ``-(1 - p_t)^gamma * log(p_t)`` averaged over valid targets.

    With ``class_weights`` each term is multiplied by the weight of its true class and the sum is
    divided by the summed weights (the same convention as weighted cross-entropy).

    Args:
        gamma: Focusing strength; ``0`` gives cross-entropy.
        ignore_index: Target value excluded from the loss.
        class_weights: One weight per class.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else list(class_weights)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, integer target ``(B, ...)`` → scalar."""
        safe, valid = _safe_target(target, self.ignore_index)
        log_pt = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        terms = -((1.0 - log_pt.exp()) ** self.gamma) * log_pt
        weight = valid.to(terms.dtype)
        class_weight = _class_weight_tensor(self.class_weights, terms)
        if class_weight is not None:
            weight = weight * class_weight[safe]
        return _weighted_mean(terms, weight)


def _soft_overlap(logits: Tensor, target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class soft intersection, prediction sum and target sum over valid pixels, each ``(C,)``."""
    safe, valid = _safe_target(target, ignore_index)
    probs = logits.softmax(dim=1)
    mask = valid.unsqueeze(1).to(probs.dtype)
    one_hot = F.one_hot(safe, num_classes=logits.shape[1]).movedim(-1, 1).to(probs.dtype) * mask
    dims = [0, *range(2, logits.dim())]
    return (probs * one_hot).sum(dims), (probs * mask).sum(dims), one_hot.sum(dims)


def _mean_over_present(per_class_loss: Tensor, target_sum: Tensor) -> Tensor:
    """Mean of per-class losses over classes that occur in the valid target (``0`` if none)."""
    present = (target_sum > 0).to(per_class_loss.dtype)
    return (per_class_loss * present).sum() / present.sum().clamp_min(1.0)


class DiceLoss(nn.Module):
    """Soft multi-class Dice loss ``1 - mean_c (2 |P∩T| + s) / (|P| + |T| + s)``.

    Computed over the whole batch on valid pixels; the mean runs over classes present in the valid
    target (a class absent from the target would otherwise add a constant penalty).

    Args:
        ignore_index: Target value excluded from the loss.
        smooth: Additive smoothing ``s`` in numerator and denominator.
    """

    def __init__(self, ignore_index: int | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, integer target ``(B, ...)`` → scalar."""
        inter, pred_sum, target_sum = _soft_overlap(logits, target, self.ignore_index)
        dice = (2.0 * inter + self.smooth) / (pred_sum + target_sum + self.smooth)
        return _mean_over_present(1.0 - dice, target_sum)


class JaccardLoss(nn.Module):
    """Soft multi-class Jaccard (IoU) loss ``1 - mean_c (|P∩T| + s) / (|P| + |T| - |P∩T| + s)``.

    Same conventions as :class:`DiceLoss` (valid pixels only, mean over classes in the target).

    Args:
        ignore_index: Target value excluded from the loss.
        smooth: Additive smoothing ``s``.
    """

    def __init__(self, ignore_index: int | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, integer target ``(B, ...)`` → scalar."""
        inter, pred_sum, target_sum = _soft_overlap(logits, target, self.ignore_index)
        iou = (inter + self.smooth) / (pred_sum + target_sum - inter + self.smooth)
        return _mean_over_present(1.0 - iou, target_sum)


def _lovasz_gradient(sorted_truth: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for truths sorted by decreasing error."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1.0 - sorted_truth).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


class LovaszSoftmaxLoss(nn.Module):
    """Lovász-softmax loss (Berman et al., 2018): a convex surrogate that optimises mean IoU directly.

    For each class present in the valid target, pixel errors ``|1[y=c] - p_c|`` are sorted and
    weighted by the Lovász gradient of the Jaccard loss; the loss is the mean over those classes.

    Args:
        ignore_index: Target value excluded from the loss.
    """

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, integer target ``(B, ...)`` → scalar."""
        flat_logits, flat_target = _flatten_logits(logits, target, self.ignore_index)
        if flat_target.numel() == 0:
            return _zero_like(logits)
        probs = flat_logits.softmax(dim=1)
        per_class = []
        for cls in flat_target.unique():
            truth = (flat_target == cls).to(probs.dtype)
            errors = (truth - probs[:, cls]).abs()
            errors_sorted, order = errors.sort(descending=True)
            per_class.append(torch.dot(errors_sorted, _lovasz_gradient(truth[order])))
        return torch.stack(per_class).mean()


class BCELoss(nn.Module):
    """Binary cross-entropy with logits, for multi-label or binary targets.

    Targets shaped like the logits are used as they are (multi-label ``(B, C)`` floats, entries equal
    to ``ignore_index`` are excluded). Integer class maps ``(B, ...)`` for ``(B, C, ...)`` logits are
    one-hot encoded (``C == 1``: the map itself is the binary target).

    Args:
        ignore_index: Target value excluded from the loss.
        class_weights: Optional per-class weight (length ``C``) applied to every element of class ``c``.
    """

    def __init__(self, ignore_index: int | None = None, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else list(class_weights)

    def _dense_target(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Return a float target shaped like ``logits`` and its validity mask."""
        if target.shape == logits.shape:
            valid = _valid_mask(target, self.ignore_index)
            return target.to(logits.dtype) * valid, valid
        if logits.shape[1] == 1 and target.shape == logits.shape[:1] + logits.shape[2:]:
            valid = _valid_mask(target, self.ignore_index)
            return (target * valid).to(logits.dtype).unsqueeze(1), valid.unsqueeze(1)
        valid = _valid_mask(target, self.ignore_index)
        one_hot = F.one_hot((target * valid).long(), num_classes=logits.shape[1]).movedim(-1, 1)
        return one_hot.to(logits.dtype), valid.unsqueeze(1).expand_as(logits)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Logits ``(B, C, ...)``, target ``(B, C, ...)`` or integer ``(B, ...)`` → scalar."""
        dense, valid = self._dense_target(logits, target)
        terms = F.binary_cross_entropy_with_logits(logits, dense, reduction="none")
        weight = valid.to(terms.dtype)
        class_weight = _class_weight_tensor(self.class_weights, terms)
        if class_weight is not None:
            shape = [1, -1] + [1] * (terms.dim() - 2)
            weight = weight * class_weight.view(shape)
        return _weighted_mean(terms, weight)


class _MaskedRegressionLoss(nn.Module):
    """Base for regression losses: elementwise terms averaged over valid (and finite) targets."""

    def __init__(self, ignore_index: int | float | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def terms(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def masked_mean(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean of :meth:`terms` over targets that are finite and not ``ignore_index``."""
        if pred.shape != target.shape:
            if pred.dim() == target.dim() + 1 and pred.shape[1] == 1:
                pred = pred.squeeze(1)
            else:
                raise ValueError(
                    f"Regression prediction shape {tuple(pred.shape)} does not match target shape "
                    f"{tuple(target.shape)}."
                )
        valid = _valid_mask(target, self.ignore_index) & torch.isfinite(target)
        safe = torch.where(valid, target, torch.zeros_like(target)).to(pred.dtype)
        return _weighted_mean(self.terms(pred, safe), valid.to(pred.dtype))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Prediction and target of the same shape → scalar."""
        return self.masked_mean(pred, target)


class MSELoss(_MaskedRegressionLoss):
    """Mean squared error over valid targets."""

    def terms(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target) ** 2


class MAELoss(_MaskedRegressionLoss):
    """Mean absolute error over valid targets."""

    def terms(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()


class RMSELoss(MSELoss):
    """Root mean squared error over valid targets.

    The square root is guarded so that a zero error (or an all-ignored batch) gives loss ``0`` with a
    finite (zero) gradient instead of the ``inf * 0 = NaN`` of ``sqrt`` at zero.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Prediction and target of the same shape → scalar."""
        mse = self.masked_mean(pred, target)
        return torch.where(mse > 0, mse.clamp_min(1e-12).sqrt(), mse * 0.0)


class HuberLoss(_MaskedRegressionLoss):
    """Huber (smooth L1) loss over valid targets.

    Args:
        ignore_index: Target value excluded from the loss.
        delta: Where the loss switches from quadratic to linear.
    """

    def __init__(self, ignore_index: int | float | None = None, delta: float = 1.0) -> None:
        super().__init__(ignore_index=ignore_index)
        self.delta = delta

    def terms(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(pred, target, reduction="none", delta=self.delta)


class CombinedLoss(nn.Module):
    """Weighted sum of several losses: ``sum_i w_i * loss_i(pred, target)``.

    Args:
        losses: Loss modules by name (the names only serve to identify them).
        weights: Weight per name (same keys as ``losses``).
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = dict(weights)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Sum of the weighted component losses."""
        total = None
        for name, loss in self.losses.items():
            value = self.weights[name] * loss(pred, target)
            total = value if total is None else total + value
        return total


# name → (constructor, accepts class_weights)
CLASSIFICATION_LOSSES: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "ce": (CrossEntropyLoss, True),
    "focal": (FocalLoss, True),
    "bce": (BCELoss, True),
    "dice": (DiceLoss, False),
    "jaccard": (JaccardLoss, False),
    "lovasz": (LovaszSoftmaxLoss, False),
}
REGRESSION_LOSSES: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "mse": (MSELoss, False),
    "mae": (MAELoss, False),
    "rmse": (RMSELoss, False),
    "huber": (HuberLoss, False),
}
_FAMILIES = {"classification": CLASSIFICATION_LOSSES, "regression": REGRESSION_LOSSES}


def _family(kind: str) -> dict[str, tuple[Callable[..., nn.Module], bool]]:
    if kind not in _FAMILIES:
        raise ValueError(f"Unknown loss family {kind!r}; valid: {sorted(_FAMILIES)}.")
    return _FAMILIES[kind]


def _weights_from_spec(spec: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Normalise a name, list of names or ``{name: weight}`` into ``{name: weight}``."""
    if isinstance(spec, str):
        return {spec: 1.0}
    if isinstance(spec, Mapping):
        return {str(name): float(weight) for name, weight in spec.items()}
    if isinstance(spec, Sequence):
        return {str(name): 1.0 for name in spec}
    raise TypeError(
        f"loss must be a name, a list of names, a {{name: weight}} mapping or an nn.Module; got "
        f"{type(spec).__name__}."
    )


def _build_one(
    name: str, kind: str, ignore_index: int | None, class_weights: Sequence[float] | None
) -> tuple[nn.Module, bool]:
    family = _family(kind)
    key = name.lower()
    if key not in family:
        other = [n for k, fam in _FAMILIES.items() if k != kind for n in fam]
        hint = ""
        if key in other:
            hint = (
                f" {name!r} is a loss for {'regression' if kind == 'classification' else 'classification'}."
            )
        suggestion = did_you_mean(name, family, n=5, bare=True)
        raise ValueError(
            f"Unknown loss {name!r} for a {kind} task.{suggestion}{hint} Valid losses: {sorted(family)}."
        )
    constructor, takes_weights = family[key]
    kwargs: dict[str, Any] = {"ignore_index": ignore_index}
    if takes_weights and class_weights is not None:
        kwargs["class_weights"] = class_weights
    return constructor(**kwargs), takes_weights


def build_loss(
    loss: str | Sequence[str] | Mapping[str, float] | nn.Module,
    kind: str,
    ignore_index: int | None = None,
    class_weights: Sequence[float] | None = None,
) -> nn.Module:
    """Build the loss module a task trains with.

    Args:
        loss: A name (``"ce"``), a list of names (summed with weight 1), a ``{name: weight}`` mapping
            (weighted sum) or an ``nn.Module`` used as is.
        kind: ``"classification"`` (segmentation and image classification) or ``"regression"``.
        ignore_index: Target value excluded from every loss.
        class_weights: Per-class weights, applied by the losses that support them (``ce``, ``focal``,
            ``bce``).

    Raises:
        ValueError: Unknown loss name (with close matches), an empty spec, or ``class_weights`` given
            although none of the chosen losses can use them.
    """
    if isinstance(loss, nn.Module):
        return loss
    weights = _weights_from_spec(loss)
    if not weights:
        raise ValueError(f"loss must name at least one loss; valid: {sorted(_family(kind))}.")
    modules: dict[str, nn.Module] = {}
    any_weighted = False
    for name in weights:
        modules[name], takes_weights = _build_one(name, kind, ignore_index, class_weights)
        any_weighted = any_weighted or takes_weights
    if class_weights is not None and not any_weighted:
        raise ValueError(
            f"class_weights were given but none of the losses {sorted(weights)} uses them; "
            "class_weights apply to 'ce', 'focal' and 'bce'."
        )
    if len(modules) == 1 and next(iter(weights.values())) == 1.0:
        return next(iter(modules.values()))
    return CombinedLoss(modules, weights)
