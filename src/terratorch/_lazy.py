"""Lazy package attributes (PEP 562), so packages import their heavy submodules on first use."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` resolving ``name -> module`` from ``table``.

    Assign them at the end of the package's ``__init__``; a resolved attribute is cached on the
    package so the lookup happens once.
    """

    def getattr_(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return getattr_, dir_


class _AliasLoader(importlib.abc.Loader):
    """Loads an alias by importing its target: both names then refer to the same module object."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(self.target)

    def exec_module(self, module: Any) -> None:
        """Nothing to run: the target module is already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        module = self.aliases.get(fullname)
        if module is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


def module_aliases(package: str, aliases: dict[str, str]) -> None:
    """Make ``package.<alias>`` importable as another name of ``package.<module>`` (``{alias: module}``).

    TerraTorch 1.2 keeps one module per dataset (``terratorch.datamodules.m_eurosat``); ours group
    them by concept (``geobench_data_module``). The aliases keep the old dotted paths in configs
    (``class_path: terratorch.datamodules.m_eurosat.MEuroSATNonGeoDataModule``) working without a
    file per name. Call it from the package's ``__init__``; nothing is imported until an alias is.
    """
    table = {f"{package}.{alias}": f"{package}.{module}" for alias, module in aliases.items()}
    sys.meta_path.append(_AliasFinder(table))
