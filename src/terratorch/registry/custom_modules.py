"""Importing user modules that register backbones, decoders or factories.

``./custom_modules`` (a folder in the working directory) is imported automatically before the
first registry lookup; the CLI and benchmark tool call :func:`import_custom_modules` for explicit
paths (``custom_modules_path``, ``backbone_registration``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["CustomModuleImportError", "autoload_custom_modules", "import_custom_modules"]

_autoload_done = False


class CustomModuleImportError(ImportError, ValueError):
    """A custom-module path that does not exist or fails to import.

    It is also a ``ValueError`` because the reference raises that for a path that is not a folder,
    and an ``ImportError`` as the reference raises for a folder that fails to import.
    """


def autoload_custom_modules() -> ModuleType | None:
    """Import ``./custom_modules`` once per process if it exists (``TERRATORCH_NO_AUTOLOAD=1`` skips)."""
    global _autoload_done
    if _autoload_done:
        return None
    _autoload_done = True
    if os.environ.get("TERRATORCH_NO_AUTOLOAD") == "1":
        return None
    folder = Path.cwd() / "custom_modules"
    if not folder.is_dir():
        return None
    return import_custom_modules(folder)


def import_custom_modules(path: str | os.PathLike[str] | None) -> ModuleType | None:
    """Import a folder of modules, a single ``.py`` file, or a dotted module path.

    ``None`` or an empty string does nothing and returns ``None`` (as the reference's CLI helper
    does), so an unset ``custom_modules_path`` can be passed straight through.

    A folder is imported as a package named after it (its parent goes on ``sys.path``), followed by
    each of its top-level submodules, so a ``@...register`` anywhere in it takes effect.

    Args:
        path: A directory, a ``.py`` file, or an importable dotted name such as ``my_pkg.backbones``.

    Returns:
        The imported (top-level) module, or ``None`` when ``path`` is empty.

    Raises:
        CustomModuleImportError: The path does not exist, or importing it raised; the original
            exception is chained and quoted in the message.
    """
    if path is None or os.fspath(path) == "":
        return None
    text = os.fspath(path)
    candidate = Path(text).expanduser()
    looks_like_path = os.sep in text or text.endswith(".py") or candidate.exists()
    if not looks_like_path:
        return _import_dotted(text)
    if not candidate.exists():
        raise CustomModuleImportError(
            f"Custom modules path {text!r} does not exist (resolved to {candidate.resolve()}). Pass a "
            "directory of Python modules, a .py file, or a dotted module name."
        )
    candidate = candidate.resolve()
    if candidate.is_file():
        if candidate.suffix != ".py":
            raise CustomModuleImportError(f"Custom module file {candidate} is not a .py file.")
        return _import_file(candidate)
    return _import_folder(candidate)


def _import_dotted(name: str) -> ModuleType:
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise CustomModuleImportError(
            f"Could not import custom module {name!r}: {type(error).__name__}: {error}. It must be an "
            "importable dotted module name or an existing path."
        ) from error


def _import_file(file: Path) -> ModuleType:
    name = file.stem
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == file:
        return existing
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CustomModuleImportError(f"Cannot load custom module file {file}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        raise CustomModuleImportError(
            f"Importing custom module file {file} failed: {type(error).__name__}: {error}"
        ) from error
    return module


def _import_folder(folder: Path) -> ModuleType:
    parent = str(folder.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    name = folder.name
    if not name.isidentifier():
        raise CustomModuleImportError(
            f"Custom modules folder {folder} cannot be imported: {name!r} is not a valid Python name."
        )
    current = None
    try:
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules([str(folder)]):
            current = f"{name}.{info.name}"
            importlib.import_module(current)
    except Exception as error:
        where = current or name
        raise CustomModuleImportError(
            f"Importing custom modules from {folder} failed in {where!r}: {type(error).__name__}: {error}"
        ) from error
    return package
