"""Helpers shared by the task heads."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from torch import nn


def check_channels(owner: str, expected: int, received: int, shape: Sequence[int]) -> None:
    """Raise a ``ValueError`` naming both channel counts when a head gets the wrong input width."""
    if expected != received:
        raise ValueError(
            f"{owner} was built with in_channels={expected} but received {received} channels (input shape "
            f"{tuple(shape)}). Set in_channels to the decoder's out_channels."
        )


def resolve_activation(final_act: str | nn.Module | type | None, owner: str) -> nn.Module:
    """An activation module from a module, a class, a dotted path or a ``torch.nn`` class name.

    ``"torch.nn.ReLU"`` (a dotted path, the reference's spelling) and ``"ReLU"`` (a ``torch.nn``
    name) both work; None gives ``nn.Identity``.
    """
    if final_act is None or final_act == "":
        return nn.Identity()
    if isinstance(final_act, nn.Module):
        return final_act
    if isinstance(final_act, type) and issubclass(final_act, nn.Module):
        return final_act()
    if not isinstance(final_act, str):
        raise TypeError(
            f"{owner}: final_act must be a module, a class or a name, got {type(final_act).__name__}."
        )
    if "." in final_act:
        module_name, _, class_name = final_act.rpartition(".")
        try:
            target = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"{owner}: cannot import final_act {final_act!r}: {error}") from error
        return target()
    target = getattr(nn, final_act, None)
    if not (isinstance(target, type) and issubclass(target, nn.Module)):
        raise ValueError(
            f"{owner}: unknown final_act {final_act!r}; give a torch.nn class name such as 'ReLU' "
            "or a dotted "
            "path such as 'torch.nn.Sigmoid'."
        )
    return target()
