"""Helpers shared by the tasks, at the reference's import path (``terratorch.tasks.utils``)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["_instantiate_from_path", "get_module_and_class"]


def get_module_and_class(path: str) -> tuple[str, str]:
    """Split a dotted path ``"package.module.Class"`` into ``("package.module", "Class")``."""
    module_name, _, class_name = path.rpartition(".")
    return module_name, class_name


def _instantiate_from_path(dotted_path: str, **kwargs: Any) -> Any:
    """Import the class named by ``dotted_path`` (``"pkg.losses.MyLoss"``); build it with ``kwargs``.

    Used by the tasks for ``custom_loss=True``.

    Raises:
        ImportError: The module part cannot be imported.
        AttributeError: The module has no attribute of the class name.
    """
    module_name, class_name = get_module_and_class(dotted_path)
    if not module_name:
        raise ImportError(f"cannot import {dotted_path!r}: expected a dotted path such as 'torch.nn.L1Loss'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        message = f"cannot import {dotted_path!r}: module {module_name!r} not found ({error})."
        raise ImportError(message) from error
    try:
        cls = getattr(module, class_name)
    except AttributeError as error:
        message = f"cannot import {dotted_path!r}: module {module_name!r} has no {class_name!r}."
        raise AttributeError(message) from error
    return cls(**kwargs)
