"""Config loading that accepts the reference's transform spellings (short names, albumentations 1.x).

The CLI parses YAML with :func:`load_config_text`, which rewrites transform lists (any list under a
key ending in ``transform`` or ``transforms``) before jsonargparse sees them:

* short class names (``class_path: ToTensorV2``, ``HorizontalFlip``, ``FlattenTemporalIntoChannels``)
  become full import paths (albumentations, ``albumentations.pytorch``, then
  :mod:`terratorch.datasets.transforms`);
* albumentations 1.x arguments that albumentations 2 no longer takes are renamed where the new
  name is known (``value`` -> ``fill``, ``mask_value`` -> ``fill_mask``, ``cval`` -> ``fill``,
  ``height``/``width`` -> ``size`` for the random-resized crops), ``always_apply: true`` becomes
  ``p: 1.0``, and other unknown arguments are dropped; each rewrite is reported by a
  :class:`AlbumentationsArgumentWarning` naming the transform and the new argument.

The reference hands such arguments to albumentations 2, which ignores them (so ``Rotate(value=0,
mask_value=-1)`` pads the mask with 0 there); here they are mapped to what the config meant.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from typing import Any

__all__ = ["AlbumentationsArgumentWarning", "load_config_text", "resolve_transform_path", "upgrade_config"]

LOADER_MODE = "terratorch_yaml"
# Modules searched, in order, for a short transform class name.
TRANSFORM_MODULES = ("albumentations", "albumentations.pytorch", "terratorch.datasets.transforms")
# albumentations 1.x argument -> albumentations 2 argument.
RENAMED_ARGUMENTS = {"value": "fill", "mask_value": "fill_mask", "cval": "fill", "cval_mask": "fill_mask"}
_SIZE_FROM_HEIGHT_WIDTH = ("RandomResizedCrop", "RandomSizedCrop", "RandomSizedBBoxSafeCrop")


class AlbumentationsArgumentWarning(UserWarning):
    """A transform argument of albumentations 1.x was renamed or dropped for albumentations 2."""


def _is_transform_key(key: Any) -> bool:
    return isinstance(key, str) and (key.endswith("transform") or key.endswith("transforms"))


def resolve_transform_path(name: str) -> str | None:
    """Full import path of the transform class ``name`` (a short name), or None when unknown."""
    for module_name in TRANSFORM_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if inspect.isclass(getattr(module, name, None)):
            return f"{module_name}.{name}"
    return None


def _import_class(path: str) -> type | None:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        return None
    try:
        value = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return None
    return value if inspect.isclass(value) else None


def _accepted_arguments(cls: type) -> set[str] | None:
    """Keyword arguments of ``cls``; None when it takes ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n, p in params.items() if p.kind is not p.VAR_POSITIONAL}


def _upgrade_arguments(cls: type, args: dict[str, Any]) -> dict[str, Any]:
    """Rename/drop albumentations 1.x arguments ``cls`` does not take (warns for each change)."""
    accepted = _accepted_arguments(cls)
    if accepted is None or not cls.__module__.startswith("albumentations"):
        return args
    unknown = [k for k in args if k not in accepted]
    if not unknown:
        return args
    name = cls.__name__
    out = {k: v for k, v in args.items() if k in accepted}
    notes = []
    if name in _SIZE_FROM_HEIGHT_WIDTH and {"height", "width"} <= set(unknown) and "size" in accepted:
        out.setdefault("size", [args["height"], args["width"]])
        notes.append("'height', 'width' -> size")
        unknown = [k for k in unknown if k not in ("height", "width")]
    for key in unknown:
        new = RENAMED_ARGUMENTS.get(key)
        if new is not None and new in accepted:
            if new not in args:
                out[new] = args[key]
            notes.append(f"{key!r} -> {new}")
        elif key == "always_apply":
            if args[key] and "p" in accepted:
                out["p"] = 1.0
            notes.append("'always_apply' -> p=1.0" if args[key] else "'always_apply' dropped")
        else:
            from terratorch.choices import did_you_mean

            hint = did_you_mean(key, accepted, n=1)
            notes.append(f"{key!r} dropped (not an argument of {name} in albumentations 2.{hint})")
    warnings.warn(
        f"transform {name}: argument(s) albumentations 2 does not take (albumentations 1.x names) rewritten: "
        f"{'; '.join(notes)}. Valid arguments of {name}: {', '.join(sorted(accepted))}",
        AlbumentationsArgumentWarning,
        stacklevel=2,
    )
    return out


def _upgrade_transform(item: Any) -> Any:
    """One transform entry: resolve a short ``class_path`` and upgrade its arguments."""
    if not isinstance(item, dict) or not isinstance(item.get("class_path"), str):
        return item
    item = dict(item)
    path = item["class_path"]
    if "." not in path:
        path = resolve_transform_path(path) or path
        item["class_path"] = path
    cls = _import_class(path)
    if cls is None:
        return item
    if isinstance(item.get("init_args"), dict):
        item["init_args"] = _upgrade_arguments(cls, item["init_args"])
    else:  # arguments beside class_path
        args = {k: v for k, v in item.items() if k not in ("class_path", "init_args", "dict_kwargs")}
        if args:
            upgraded = _upgrade_arguments(cls, args)
            item = {k: v for k, v in item.items() if k not in args} | upgraded
    return item


def upgrade_config(value: Any, in_transforms: bool = False) -> Any:
    """Rewrite every transform list inside a loaded config (see the module docstring)."""
    if isinstance(value, dict):
        if in_transforms and "class_path" in value:
            return _upgrade_transform(value)
        return {k: upgrade_config(v, _is_transform_key(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [upgrade_config(v, in_transforms) for v in value]
    return value


def _looks_like_transform_list(value: Any) -> bool:
    """A bare list of ``class_path`` entries given on the command line for a transform key."""
    if not isinstance(value, list) or not value:
        return False
    if not all(isinstance(v, dict) and isinstance(v.get("class_path"), str) for v in value):
        return False
    return all(
        v["class_path"].startswith(("albumentations.", "terratorch.datasets.transforms."))
        or ("." not in v["class_path"] and resolve_transform_path(v["class_path"]) is not None)
        for v in value
    )


def load_config_text(text: str) -> Any:
    """jsonargparse's YAML loading followed by :func:`upgrade_config` (the CLI's parser mode)."""
    from jsonargparse._loaders_dumpers import yaml_load

    value = yaml_load(text)
    if isinstance(value, dict):
        return upgrade_config(value)
    if _looks_like_transform_list(value):
        return upgrade_config(value, in_transforms=True)
    return value


def register_loader() -> str:
    """Register :func:`load_config_text` with jsonargparse; returns the parser mode to use."""
    from jsonargparse import set_loader
    from jsonargparse._loaders_dumpers import get_loader_exceptions

    set_loader(LOADER_MODE, load_config_text, get_loader_exceptions("yaml"))
    return LOADER_MODE
