"""Public home of :func:`optimizer_factory` (``terratorch.tasks.optimizer_factory.optimizer_factory``).

The implementation lives in :mod:`terratorch.tasks.optim`; see its docstring for the accepted
optimizer/scheduler names, warm-up keys and ``lr_overrides``.
"""

from __future__ import annotations

from terratorch.tasks.optim import LambdaFns, optimizer_factory

__all__ = ["LambdaFns", "optimizer_factory"]
