"""Imports the CLI does before parsing: custom modules (from argv/YAML) and classes named by short name.

Custom modules may define the backbones, tasks or datamodules a config names, so they must be
imported before jsonargparse parses the config. Their paths are therefore read here straight from
the command line, the config files and ``$TERRATORCH_CUSTOM_MODULE_PATH``, without the parser.
Nothing here imports torch or Lightning at module import.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CLASS_MODULES",
    "CUSTOM_MODULES_ENV",
    "custom_module_paths",
    "import_class_modules",
    "import_custom_modules",
    "import_custom_modules_from_args",
]

logger = logging.getLogger("terratorch")

CUSTOM_MODULES_ENV = "TERRATORCH_CUSTOM_MODULE_PATH"
"""Environment variable with extra custom-module paths (``os.pathsep``-separated)."""

CLASS_MODULES = (
    "terratorch.tasks.segmentation",
    "terratorch.tasks.regression",
    "terratorch.tasks.classification",
    "terratorch.tasks.multilabel_classification",
    "terratorch.tasks.scalar_regression",
    "terratorch.tasks.reconstruction",
    "terratorch.tasks.embedding_generation",
    "terratorch.tasks.object_detection",
    "terratorch.datamodules.generic_pixel_wise_data_module",
    "terratorch.datamodules.generic_scalar_label_data_module",
    "terratorch.datamodules.generic_multimodal_data_module",
    "terratorch.datamodules.generic_nongeo_od_data_module",
    "terratorch.datamodules.m_VHR10",
    "terratorch.datamodules.substation",
    "terratorch.datamodules.od_aed_elephant",
    "terratorch.datamodules.geobench_data_module",
    "terratorch.datamodules.torchgeo_data_module",
    "terratorch.datamodules.geobench_v2_data_module",
    "terratorch.datamodules.sen1floods11",
    "terratorch.datamodules.multi_temporal_crop_classification",
    "terratorch.datamodules.biomassters",
    "terratorch.datamodules.burn_intensity",
    "terratorch.datamodules.landslide4sense",
    "terratorch.datamodules.fire_scars",
    "terratorch.datamodules.sen4map",
    "terratorch.cli.callbacks",
    "terratorch.cli.custom_writer",
    "albumentations.pytorch",
)
"""Modules imported before parsing so that short class names (``SemanticSegmentationTask``) resolve."""

_CONFIG_FLAGS = ("-c", "--config")


def import_custom_modules(custom_modules_path: str | Path | None = None) -> None:
    """Import a folder of custom modules as a package (the reference's ``cli_tools`` helper).

    None does nothing. The folder's parent goes on ``sys.path`` and the folder is imported under
    its own name, so classes and registry entries it defines can be named in configs. The CLI's
    ``custom_modules_path`` also accepts a ``.py`` file or a dotted module
    (:func:`terratorch.registry.import_custom_modules`); this function keeps the reference's
    folder-only contract.

    Raises:
        ValueError: The path is not a directory.
        ImportError: Importing the package failed (the original error is chained).
    """
    if not custom_modules_path:
        logger.debug("No custom module is being used.")
        return
    from terratorch.registry import import_custom_modules as import_module_path

    path = Path(custom_modules_path)
    if not path.is_dir():
        raise ValueError(
            f"Modules path {path} isn't a directory. Pass the folder that holds the custom modules "
            "(it is imported as a package named after the folder)."
        )
    try:
        import_module_path(path)
    except ImportError as error:
        raise ImportError(f"It was not possible to import modules from {path}: {error}") from error
    logger.info("Imported custom modules from %s", path)


def flag_values(args: Sequence[str], flags: Sequence[str]) -> list[str]:
    """Values given to any of ``flags`` in ``args`` (both ``--flag value`` and ``--flag=value``)."""
    values = []
    for index, arg in enumerate(args):
        for flag in flags:
            if arg == flag and index + 1 < len(args):
                values.append(args[index + 1])
            elif arg.startswith(flag + "="):
                values.append(arg.split("=", 1)[1])
    return values


def _config_custom_paths(config_file: str) -> list[str]:
    """``custom_modules_path`` of a YAML config file (a string or a list); [] when absent/unreadable."""
    import yaml

    path = Path(config_file)
    if not path.is_file():
        return []  # the parser reports the missing file with its own message
    try:
        content = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return []  # reported by the parser, with the position of the error
    value = content.get("custom_modules_path") if isinstance(content, dict) else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def custom_module_paths(args: Sequence[str]) -> list[str]:
    """Every custom-module path for this command: env var, config files, then ``--custom_modules_path``.

    Duplicates and YAML nulls are dropped; the order is the import order.
    """
    paths = [p for p in os.environ.get(CUSTOM_MODULES_ENV, "").split(os.pathsep) if p]
    for config_file in flag_values(args, _CONFIG_FLAGS):
        paths += _config_custom_paths(config_file)
    paths += flag_values(args, ("--custom_modules_path",))
    unique: list[str] = []
    for path in paths:
        if path not in unique and path not in ("null", "None"):
            unique.append(path)
    return unique


def import_custom_modules_from_args(args: Sequence[str]) -> list[str]:
    """Import ``./custom_modules`` and every path of :func:`custom_module_paths`; return those paths."""
    from terratorch.registry import autoload_custom_modules
    from terratorch.registry import import_custom_modules as import_module_path

    autoload_custom_modules()
    paths = custom_module_paths(args)
    for path in paths:
        import_module_path(path)
    return paths


def import_class_modules() -> None:
    """Import :data:`CLASS_MODULES` so that jsonargparse finds their classes by short name."""
    for module in CLASS_MODULES:
        importlib.import_module(module)
