"""The reference's nested ``SequentialLR`` spec (``schedulers: {name: kwargs}``, ``milestones``)."""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler

from terratorch.tasks.optim import LambdaFns, LinearWarmup, check_optimizer_config
from terratorch.tasks.optimizer_factory import optimizer_factory


def _lrs(scheduler, optimizer, steps):
    values = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        values.append(scheduler.get_last_lr()[0])
    return values


def test_nested_sequential_matches_hand_built_schedule():
    hparams = {
        "schedulers": {"LambdaLR": {"lr_lambda": "linear_warmup"}, "CosineAnnealingLR": {"T_max": 10}},
        "milestones": [5],
    }
    params = [torch.nn.Parameter(torch.zeros(2))]
    out = optimizer_factory(
        "AdamW", 0.001, params, {"weight_decay": 0.01}, "SequentialLR", "val_loss", hparams
    )
    scheduler = out["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, lr_scheduler.SequentialLR)
    assert hparams["schedulers"]["LambdaLR"] == {"lr_lambda": "linear_warmup"}  # caller's dict untouched

    reference_params = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.AdamW(reference_params, lr=0.001, weight_decay=0.01)
    warm = lr_scheduler.LambdaLR(opt, lr_lambda=lambda step: (step + 1) / 5)
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    expected = _lrs(lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[5]), opt, 10)
    actual = _lrs(scheduler, out["optimizer"], 10)
    assert actual == pytest.approx(expected)
    assert actual[:5] == pytest.approx([0.0002, 0.0004, 0.0006, 0.0008, 0.001])


def test_linear_warmup_lambda_and_errors():
    assert isinstance(LambdaFns(4), LinearWarmup) and LambdaFns(4)(1) == 0.5
    with pytest.raises(ValueError, match="Unknown warm-up lr_lambda 'cosine'"):
        LambdaFns(4, "cosine")
    nested = {"LambdaLR": {}, "StepLR": {"step_size": 2}, "ExponentialLR": {"gamma": 0.9}}
    with pytest.raises(ValueError, match=r"needs 2 milestone\(s\)"):
        check_optimizer_config("SGD", None, "SequentialLR", {"schedulers": nested, "milestones": [2]})
    with pytest.raises(ValueError, match="milestones must increase"):
        check_optimizer_config("SGD", None, "SequentialLR", {"schedulers": nested, "milestones": [4, 3]})
    with pytest.raises(ValueError, match="ExponentialLR"):
        check_optimizer_config(
            "SGD", None, "SequentialLR", {"schedulers": {"ExponentialLR": {"gama": 0.9}}, "milestones": []}
        )
