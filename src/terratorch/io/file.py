"""The reference's ``terratorch.io.file`` helpers: statistics from a list or a file, weights into a model.

Kept for scripts written against the reference. Differences (see ``docs/compatibility.md``): a weights
file that cannot be loaded raises instead of printing a message and returning the untouched model, and
a model given as a string is a dotted class path (``"package.module.ClassName"``), which the reference
tried to call as a module.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["load_from_file_or_attribute", "load_torch_weights", "open_generic_torch_model"]


def load_from_file_or_attribute(value: list[float] | str) -> list[float]:
    """Return per-band statistics given inline, or read them from a text/YAML/JSON file (one value a line).

    Raises:
        FileNotFoundError: ``value`` is a path that does not exist.
        ValueError: the list or file holds something that is not a number.
    """
    from terratorch.datasets.utils import load_float_list

    if value is None:
        raise ValueError("expected a list of numbers or a file path, got None")
    return load_float_list(value, key="statistics")


def load_torch_weights(
    model: nn.Module | None = None,
    save_dir: str | None = None,
    name: str | None = None,
    device: str | None = None,
) -> nn.Module:
    """Load the state dict ``save_dir/name`` into ``model`` (strictly, ``weights_only=True``) and return it.

    Args:
        model: The module to fill.
        save_dir: Folder of the weights file (``None``: ``name`` is a path on its own).
        name: File name of the state dict.
        device: ``map_location`` for the tensors (default: CPU).

    Raises:
        ValueError: no model or no file name was given.
        terratorch.models.weights.WeightsNotFoundError: the file does not exist.
        terratorch.models.weights.CheckpointFormatError: the file is not a PyTorch checkpoint.
        RuntimeError: the keys or shapes do not match the model (torch's message, naming the file).
    """
    from terratorch.models.weights import load_torch_checkpoint

    if model is None or not name:
        raise ValueError("load_torch_weights needs a model and the weights file's name")
    path = Path(save_dir or "") / name
    state = load_torch_checkpoint(path, map_location=device or "cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise RuntimeError(f"weights in {str(path)!r} do not fit {type(model).__name__}: {error}") from error
    return model


def _model_class(model: type | str) -> type:
    if isinstance(model, type):
        return model
    module_name, _, class_name = str(model).replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"model {model!r}: give a class or a dotted path 'package.module.ClassName'")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"model {model!r}: cannot import {class_name!r} from {module_name!r} ({error})"
        ) from error


def open_generic_torch_model(
    model: type | str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    model_weights_path: str | None = None,
) -> nn.Module:
    """Build ``model(**model_kwargs)`` and load the state dict at ``model_weights_path`` into it.

    Args:
        model: A ``nn.Module`` subclass or its dotted path (``"package.module.ClassName"``).
        model_kwargs: Constructor arguments.
        model_weights_path: The state-dict file.
    """
    if model is None or not model_weights_path:
        raise ValueError(
            "open_generic_torch_model needs a model class (or dotted path) and model_weights_path"
        )
    instance = _model_class(model)(**(model_kwargs or {}))
    return load_torch_weights(model=instance, name=str(model_weights_path))
