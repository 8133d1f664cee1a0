"""Optimizer/scheduler resolution, warm-up, lr_overrides parameter groups and the public factory path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terratorch.tasks.optim import build_param_groups, resolve_optimizer_class, resolve_scheduler_class
from terratorch.tasks.optimizer_factory import optimizer_factory


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in opt.param_groups]


def test_optimizer_by_name_dotted_path_and_class():
    assert resolve_optimizer_class("AdamW") is torch.optim.AdamW
    assert resolve_optimizer_class("adamw") is torch.optim.AdamW
    assert resolve_optimizer_class("torch.optim.SGD") is torch.optim.SGD
    assert resolve_optimizer_class(torch.optim.RMSprop) is torch.optim.RMSprop
    assert resolve_scheduler_class("CosineAnnealingLR") is torch.optim.lr_scheduler.CosineAnnealingLR


def test_unknown_names_list_close_matches():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'AdamWW'.*Did you mean: AdamW.*Valid names"):
        resolve_optimizer_class("AdamWW")
    with pytest.raises(
        ValueError, match=r"Unknown scheduler 'CosineAnealingLR'.*Did you mean: CosineAnnealingLR"
    ):
        resolve_scheduler_class("CosineAnealingLR")
    with pytest.raises(ValueError, match="Cannot import module 'no_such_pkg'"):
        resolve_optimizer_class("no_such_pkg.Opt")
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        resolve_scheduler_class("torch.optim.lr_scheduler.Nope")


def test_factory_without_scheduler_passes_hparams():
    config = optimizer_factory("SGD", 0.1, _net().parameters(), optimizer_hparams={"momentum": 0.9})
    assert set(config) == {"optimizer"}
    opt = config["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["momentum"] == 0.9 and _lrs(opt) == [0.1]


def test_factory_rejects_unknown_hparams_listing_valid_ones():
    with pytest.raises(
        ValueError, match=r"Optimizer SGD got unknown argument\(s\) \['momentun'\]; valid: .*'momentum'"
    ):
        optimizer_factory("SGD", 0.1, _net().parameters(), optimizer_hparams={"momentun": 0.9})
    with pytest.raises(ValueError, match=r"Scheduler StepLR got unknown argument\(s\) \['step'\]"):
        optimizer_factory("SGD", 0.1, _net().parameters(), scheduler="StepLR", scheduler_hparams={"step": 2})
    with pytest.raises(ValueError, match="without a scheduler"):
        optimizer_factory("SGD", 0.1, _net().parameters(), scheduler_hparams={"T_max": 2})


def test_scheduler_config_for_lightning():
    config = optimizer_factory(
        "AdamW",
        0.01,
        _net().parameters(),
        scheduler="ReduceLROnPlateau",
        monitor="val/mIoU",
        scheduler_hparams={"mode": "max", "patience": 2, "interval": "epoch", "frequency": 3},
    )
    sched = config["lr_scheduler"]
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert sched["monitor"] == "val/mIoU" and sched["interval"] == "epoch" and sched["frequency"] == 3
    assert sched["scheduler"].mode == "max"


def test_warmup_steps_then_main_scheduler():
    config = optimizer_factory(
        "SGD",
        1.0,
        _net().parameters(),
        scheduler="StepLR",
        scheduler_hparams={"step_size": 1, "gamma": 0.5, "warmup_steps": 4, "warmup_start_factor": 0.25},
    )
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.SequentialLR)
    assert config["lr_scheduler"]["interval"] == "step"
    seen = []
    for _ in range(7):
        seen.append(_lrs(opt)[0])
        opt.step()
        sched.step()
    assert seen[:5] == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert seen[5:] == pytest.approx([0.5, 0.25])


def test_warmup_epochs_alone_ramps_to_constant_lr():
    config = optimizer_factory("SGD", 0.2, _net().parameters(), scheduler_hparams={"warmup_epochs": 2})
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    seen = []
    for _ in range(4):
        seen.append(_lrs(opt)[0])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.2 * 0.001, 0.2 * (0.001 + 0.999 / 2), 0.2, 0.2])


def test_warmup_misconfigurations():
    params = list(_net().parameters())
    with pytest.raises(ValueError, match="warmup_epochs or warmup_steps, not both"):
        optimizer_factory("SGD", 0.1, params, scheduler_hparams={"warmup_epochs": 1, "warmup_steps": 2})
    with pytest.raises(ValueError, match="warmup_steps needs interval 'step'"):
        optimizer_factory("SGD", 0.1, params, scheduler_hparams={"warmup_steps": 2, "interval": "epoch"})
    with pytest.raises(ValueError, match="cannot be chained with ReduceLROnPlateau"):
        optimizer_factory(
            "SGD", 0.1, params, scheduler="ReduceLROnPlateau", scheduler_hparams={"warmup_epochs": 1}
        )
    with pytest.raises(ValueError, match="interval must be 'epoch' or 'step'"):
        optimizer_factory(
            "SGD", 0.1, params, scheduler="StepLR", scheduler_hparams={"step_size": 1, "interval": "x"}
        )


def test_lr_overrides_make_parameter_groups():
    net = _net()
    net[1].bias.requires_grad_(False)
    groups = build_param_groups(net.named_parameters(), lr=0.1, lr_overrides={"1.": 0.01})
    by_name = {g["name"]: g for g in groups}
    assert by_name["default"]["lr"] == 0.1 and len(by_name["default"]["params"]) == 2
    assert by_name["1."]["lr"] == 0.01
    assert by_name["1."]["params"] == [net[1].weight]  # frozen bias left out
    opt = optimizer_factory("AdamW", 0.1, groups)["optimizer"]
    assert _lrs(opt) == [0.1, 0.01]


def test_lr_override_matching_nothing_is_an_error():
    with pytest.raises(
        ValueError, match=r"lr_overrides keys \['backbone'\] match no parameter name.*0.weight"
    ):
        build_param_groups(_net().named_parameters(), lr=0.1, lr_overrides={"backbone": 1e-4})
