"""Optimizers, learning-rate schedulers (with warm-up) and per-parameter learning rates.

- ``optimizer`` is any ``torch.optim`` class name (``"AdamW"``) or a dotted import path
  (``"torch.optim.SGD"``, ``"my_pkg.MyOptimizer"``); ``optimizer_hparams`` are its kwargs.
- ``scheduler`` is any ``torch.optim.lr_scheduler`` class name or dotted path; ``scheduler_hparams``
  are its kwargs, except for these keys which configure how it runs:

  ``interval``
      ``"epoch"`` (default) or ``"step"``: when Lightning calls ``scheduler.step()``.
  ``frequency``
      Step the scheduler every ``frequency`` intervals (default 1).
  ``monitor``
      Metric a ``ReduceLROnPlateau`` watches (default: the task's ``val/loss``).
  ``warmup_epochs`` / ``warmup_steps``
      Prepend a linear warm-up of that many epochs / optimizer steps: the learning rate rises from
      ``warmup_start_factor * lr`` to ``lr`` (``LinearLR``), then the main scheduler takes over
      (``SequentialLR``). ``warmup_steps`` implies ``interval: step``; ``warmup_epochs`` implies
      ``interval: epoch``. Without ``scheduler`` the warm-up is used alone (constant ``lr`` after).
  ``warmup_start_factor``
      Initial fraction of ``lr`` during warm-up (default ``0.001``).

- ``scheduler: SequentialLR`` takes the reference's nested form: ``schedulers`` maps scheduler names
  to their kwargs (in order) and ``milestones`` has one entry per transition, e.g.
  ``{"schedulers": {"LambdaLR": {"lr_lambda": "linear_warmup"}, "CosineAnnealingLR": {"T_max": 10}},
  "milestones": [5]}``. A ``LambdaLR`` whose ``lr_lambda`` is ``"linear_warmup"`` (the default) at
  position ``i`` multiplies ``lr`` by ``(step + 1) / milestones[i]``. Unlike the reference, milestone
  order is checked for any number of schedulers and the caller's dict is not modified.

- ``lr_overrides: {substring: lr}`` puts every parameter whose name contains ``substring`` into its
  own parameter group with that learning rate (first matching substring wins; e.g.
  ``{"encoder": 1e-5}`` fine-tunes the backbone slower than the head).

A LightningCLI config may instead set top-level ``optimizer:``/``lr_scheduler:``; LightningCLI then
replaces the task's ``configure_optimizers`` and none of this runs.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from terratorch.choices import did_you_mean

__all__ = [
    "SCHEDULE_KEYS",
    "LambdaFns",
    "LinearWarmup",
    "SchedulePlan",
    "build_param_groups",
    "build_scheduler",
    "check_optimizer_config",
    "optimizer_factory",
    "plan_schedule",
    "resolve_optimizer_class",
    "resolve_scheduler_class",
]

SCHEDULE_KEYS = ("interval", "frequency", "monitor", "warmup_epochs", "warmup_steps", "warmup_start_factor")
"""Keys of ``scheduler_hparams`` consumed by the factory rather than passed to the scheduler."""


def _import_dotted(path: str, what: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"Cannot import module {module_name!r} for {what} {path!r}: {err}.") from err
    if not hasattr(module, attr):
        raise ValueError(f"Module {module_name!r} has no attribute {attr!r} (for {what} {path!r}).")
    return getattr(module, attr)


def _classes_in(module: Any, base: type) -> dict[str, type]:
    found = {}
    for name in dir(module):
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not name.startswith("_"):
            found[name] = obj
    return found


def _resolve_class(name: str | type, module: Any, base: type, what: str, exclude: tuple[str, ...]) -> type:
    if inspect.isclass(name):
        return name
    if "." in name:
        return _import_dotted(name, what)
    available = {k: v for k, v in _classes_in(module, base).items() if k not in exclude}
    if name in available:
        return available[name]
    by_lower = {k.lower(): v for k, v in available.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    hint = did_you_mean(name, available, n=5, bare=True)
    raise ValueError(
        f"Unknown {what} {name!r}.{hint} Valid names: {sorted(available)} (or a dotted import path)."
    )


def resolve_optimizer_class(name: str | type) -> type:
    """``"AdamW"`` / ``"torch.optim.AdamW"`` / a class → the optimizer class.

    Raises:
        ValueError: Unknown name (with close matches and the list of ``torch.optim`` optimizers).
    """
    return _resolve_class(name, torch.optim, torch.optim.Optimizer, "optimizer", ())


def resolve_scheduler_class(name: str | type) -> type:
    """``"CosineAnnealingLR"`` / a dotted path / a class → the scheduler class.

    Raises:
        ValueError: Unknown name (with close matches and the list of ``torch.optim.lr_scheduler``
            schedulers).
    """
    sched = torch.optim.lr_scheduler
    return _resolve_class(name, sched, sched.LRScheduler, "scheduler", ("LRScheduler",))


def _check_kwargs(cls: type, kwargs: Mapping[str, Any], what: str, skip: tuple[str, ...]) -> None:
    """Reject kwargs the constructor does not take, listing the ones it does."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n in params if n not in ("self", *skip)]
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise ValueError(f"{what} {cls.__name__} got unknown argument(s) {unknown}; valid: {valid}.")


def build_param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    lr: float,
    lr_overrides: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups by name substring, each with its learning rate.

    Args:
        named_parameters: ``module.named_parameters()``.
        lr: Learning rate of parameters no override matches.
        lr_overrides: ``{substring: lr}``; the first substring contained in a parameter's name wins.

    Returns:
        Parameter groups ``[{"params": [...], "lr": ..., "name": ...}, ...]`` (only trainable
        parameters; empty groups dropped).

    Raises:
        ValueError: An override substring matches no parameter at all (probably a typo).
    """
    overrides = dict(lr_overrides or {})
    groups: dict[str, list[nn.Parameter]] = {key: [] for key in overrides}
    default: list[nn.Parameter] = []
    matched: set[str] = set()
    names: list[str] = []
    for name, param in named_parameters:
        names.append(name)
        key = next((k for k in overrides if k in name), None)
        if key is not None:
            matched.add(key)
        if not param.requires_grad:
            continue
        (groups[key] if key is not None else default).append(param)
    unmatched = [k for k in overrides if k not in matched]
    if unmatched:
        sample = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(
            f"lr_overrides keys {unmatched} match no parameter name (names look like: {sample})."
        )
    result = [{"params": default, "lr": lr, "name": "default"}] if default else []
    result += [{"params": p, "lr": overrides[k], "name": k} for k, p in groups.items() if p]
    return result


def _split_schedule(scheduler_hparams: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the factory's keys (:data:`SCHEDULE_KEYS`) from the scheduler's own kwargs."""
    hparams = dict(scheduler_hparams or {})
    schedule = {k: hparams.pop(k) for k in SCHEDULE_KEYS if k in hparams}
    return schedule, hparams


def _warmup_length(schedule: dict[str, Any]) -> tuple[int, str | None]:
    """Warm-up length and the interval it implies; validates the combination of keys."""
    epochs, steps = schedule.get("warmup_epochs"), schedule.get("warmup_steps")
    if epochs is not None and steps is not None:
        raise ValueError("scheduler_hparams: give warmup_epochs or warmup_steps, not both.")
    length, implied = (epochs, "epoch") if epochs is not None else (steps, "step")
    if length is None:
        return 0, None
    if int(length) < 0:
        raise ValueError(f"scheduler_hparams: warm-up length must be >= 0, got {length}.")
    interval = schedule.get("interval")
    if interval is not None and interval != implied and int(length) > 0:
        key = "warmup_epochs" if implied == "epoch" else "warmup_steps"
        raise ValueError(
            f"scheduler_hparams: {key} needs interval {implied!r}, but interval is {interval!r}."
        )
    return int(length), implied


class LinearWarmup:
    """``lr_lambda`` of a linear warm-up: factor ``(step + 1) / milestone`` (reaches 1 at the milestone).

    A class rather than a closure so that ``LambdaLR.state_dict()`` can record it.
    """

    def __init__(self, milestone: int) -> None:
        if int(milestone) < 1:
            raise ValueError(f"linear_warmup needs a milestone >= 1, got {milestone}.")
        self.milestone = int(milestone)

    def __call__(self, current_step: int) -> float:
        return float((current_step + 1) / self.milestone)


WARMUP_LAMBDAS = {"linear_warmup": LinearWarmup}
"""Names accepted as ``lr_lambda`` of a nested ``LambdaLR`` in a ``SequentialLR`` spec."""


def LambdaFns(milestone: int, warmup_type: str = "linear_warmup") -> LinearWarmup:  # noqa: N802
    """The warm-up ``lr_lambda`` named ``warmup_type`` for ``milestone`` (the reference's name).

    Raises:
        ValueError: Unknown ``warmup_type`` (the reference returns ``None`` instead).
    """
    if warmup_type not in WARMUP_LAMBDAS:
        raise ValueError(f"Unknown warm-up lr_lambda {warmup_type!r}; valid: {sorted(WARMUP_LAMBDAS)}.")
    return WARMUP_LAMBDAS[warmup_type](milestone)


def _is_nested_sequential(cls: type | None, kwargs: Mapping[str, Any]) -> bool:
    return (
        cls is not None
        and issubclass(cls, torch.optim.lr_scheduler.SequentialLR)
        and isinstance(kwargs.get("schedulers"), Mapping)
    )


def _sequential_specs(kwargs: Mapping[str, Any]) -> list[tuple[type, dict[str, Any]]]:
    """Validate a nested ``SequentialLR`` spec; return ``(class, kwargs)`` per nested scheduler.

    A ``LambdaLR``'s ``lr_lambda`` string is resolved here against its milestone.
    """
    schedulers = kwargs["schedulers"]
    if not schedulers:
        raise ValueError(
            "scheduler_hparams.schedulers of SequentialLR is empty; give at least one scheduler."
        )
    milestones = list(kwargs.get("milestones") or [])
    if len(schedulers) > 1 and len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"SequentialLR with {len(schedulers)} schedulers needs {len(schedulers) - 1} milestone(s) "
            f"(one per transition), got milestones={milestones}."
        )
    if milestones and milestones[0] < 1:
        raise ValueError(f"SequentialLR: the first milestone must be >= 1, got {milestones}.")
    if any(a >= b for a, b in itertools.pairwise(milestones)):
        raise ValueError(f"SequentialLR: milestones must increase, got {milestones}.")
    specs = []
    for index, (name, nested_kwargs) in enumerate(schedulers.items()):
        cls = resolve_scheduler_class(name)
        nested = dict(nested_kwargs or {})
        if issubclass(cls, torch.optim.lr_scheduler.LambdaLR):
            lr_lambda = nested.get("lr_lambda", "linear_warmup")
            if isinstance(lr_lambda, str):
                if index >= len(milestones):
                    raise ValueError(
                        f"SequentialLR: {name} at position {index} uses lr_lambda {lr_lambda!r}, which needs "
                        f"milestones[{index}] as its length, but milestones is {milestones}."
                    )
                lr_lambda = LambdaFns(milestones[index], lr_lambda)
            nested["lr_lambda"] = lr_lambda
        _check_kwargs(cls, nested, f"Scheduler (in SequentialLR) {name}:", ("optimizer",))
        specs.append((cls, nested))
    return specs


@dataclass
class SchedulePlan:
    """A validated scheduler configuration, ready to be built on an optimizer."""

    scheduler_class: type | None
    scheduler_kwargs: dict[str, Any]
    warmup: int
    warmup_start_factor: float
    lightning_keys: dict[str, Any]


def plan_schedule(
    scheduler: str | type | None, scheduler_hparams: Mapping[str, Any] | None = None
) -> SchedulePlan:
    """Validate ``scheduler`` + ``scheduler_hparams`` without building anything.

    Raises:
        ValueError: Unknown scheduler or argument, conflicting warm-up keys, a bad ``interval``,
            kwargs without a scheduler, or warm-up combined with ``ReduceLROnPlateau`` (which cannot be
            chained).
    """
    schedule, kwargs = _split_schedule(scheduler_hparams)
    warmup, implied = _warmup_length(schedule)
    interval = schedule.get("interval", implied or "epoch")
    if interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_hparams: interval must be 'epoch' or 'step', got {interval!r}.")
    cls = None
    if scheduler is not None:
        cls = resolve_scheduler_class(scheduler)
        _check_kwargs(cls, kwargs, "Scheduler", ("optimizer",))
        if _is_nested_sequential(cls, kwargs):
            _sequential_specs(kwargs)
        if warmup and issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ValueError(
                "A warm-up cannot be chained with ReduceLROnPlateau; drop warmup_* or the plateau."
            )
    elif kwargs:
        raise ValueError(f"scheduler_hparams {sorted(kwargs)} were given without a scheduler.")
    lightning_keys: dict[str, Any] = {"interval": interval, "frequency": int(schedule.get("frequency", 1))}
    if "monitor" in schedule:
        lightning_keys["monitor"] = str(schedule["monitor"])
    return SchedulePlan(
        scheduler_class=cls,
        scheduler_kwargs=kwargs,
        warmup=warmup,
        warmup_start_factor=float(schedule.get("warmup_start_factor", 1e-3)),
        lightning_keys=lightning_keys,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    scheduler: str | type | None,
    scheduler_hparams: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]] | None:
    """Build the (optionally warmed-up) scheduler and the Lightning keys (``interval``, ``frequency``).

    Returns:
        ``(scheduler, {"interval": ..., "frequency": ...})`` or ``None`` when nothing is scheduled.

    Raises:
        ValueError: See :func:`plan_schedule`.
    """
    plan = plan_schedule(scheduler, scheduler_hparams)
    main = None
    if plan.scheduler_class is not None:
        kwargs = dict(plan.scheduler_kwargs)
        if _is_nested_sequential(plan.scheduler_class, kwargs):
            kwargs["schedulers"] = [cls(optimizer, **nested) for cls, nested in _sequential_specs(kwargs)]
        main = plan.scheduler_class(optimizer, **kwargs)
    if not plan.warmup:
        return (main, plan.lightning_keys) if main is not None else None
    ramp = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=plan.warmup_start_factor, end_factor=1.0, total_iters=plan.warmup
    )
    if main is None:
        return ramp, plan.lightning_keys
    chained = torch.optim.lr_scheduler.SequentialLR(
        optimizer, schedulers=[ramp, main], milestones=[plan.warmup]
    )
    return chained, plan.lightning_keys


def check_optimizer_config(
    optimizer: str | type,
    optimizer_hparams: Mapping[str, Any] | None = None,
    scheduler: str | type | None = None,
    scheduler_hparams: Mapping[str, Any] | None = None,
) -> None:
    """Validate optimizer and scheduler names and arguments up front (tasks call it in ``__init__``).

    Raises:
        ValueError: Unknown names or arguments, with the valid alternatives.
    """
    cls = resolve_optimizer_class(optimizer)
    _check_kwargs(cls, dict(optimizer_hparams or {}), "Optimizer", ("params", "lr"))
    plan_schedule(scheduler, scheduler_hparams)


def optimizer_factory(
    optimizer: str | type,
    lr: float,
    params_to_be_optimized: Iterable[Any],
    optimizer_hparams: Mapping[str, Any] | None = None,
    scheduler: str | type | None = None,
    monitor: str = "val_loss",
    scheduler_hparams: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the optimizer (and scheduler) and return Lightning's ``configure_optimizers`` dict.

    Args:
        optimizer: ``torch.optim`` class name, dotted path or class.
        lr: Base learning rate (parameter groups may carry their own ``lr``).
        params_to_be_optimized: Parameters or parameter groups.
        optimizer_hparams: Extra optimizer kwargs (``weight_decay``, ``betas``, ...).
        scheduler: ``torch.optim.lr_scheduler`` class name, dotted path or class; ``None`` for none.
        monitor: Metric a ``ReduceLROnPlateau`` scheduler watches (the reference's default
            ``"val_loss"``; tasks pass ``"val/loss"``, the name they log). A ``monitor`` key in
            ``scheduler_hparams`` takes precedence, so reference configs that put it there work.
        scheduler_hparams: Scheduler kwargs plus the schedule keys of this module's docstring.

    Returns:
        ``{"optimizer": opt}`` or ``{"optimizer": opt, "lr_scheduler": {"scheduler": ..., "interval":
        ..., "frequency": ..., "monitor": monitor}}``.

    Raises:
        ValueError: Unknown optimizer/scheduler names or arguments (with valid alternatives).
    """
    cls = resolve_optimizer_class(optimizer)
    hparams = dict(optimizer_hparams or {})
    _check_kwargs(cls, hparams, "Optimizer", ("params", "lr"))
    opt = cls(params_to_be_optimized, lr=lr, **hparams)
    built = build_scheduler(opt, scheduler, scheduler_hparams)
    if built is None:
        return {"optimizer": opt}
    sched, keys = built
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor, **keys}}
