"""The reference's ``terratorch.cli_tools`` names, re-exported lazily from the :mod:`terratorch.cli` package.

Each name loads its module on first use (PEP 562), so importing this module costs nothing and
Lightning is imported only when a Lightning name (``MyLightningCLI``, ``build_lightning_cli``,
``CustomWriter``, ...) is used. Where each concept lives:

* :mod:`terratorch.cli.lightning`: ``MyLightningCLI``, ``MyTrainer``, ``build_lightning_cli``,
  default checkpointing (``default_checkpoint``, ``add_default_checkpointing_config``), ``main``;
* :mod:`terratorch.cli.callbacks`: ``StateDictAwareModelCheckpoint``,
  ``StudioDeploySaveConfigCallback``, ``clean_config_for_deployment_and_dump``;
* :mod:`terratorch.cli.errors`: ``ConfigError``, ``explain_parse_error``, ...;
* :mod:`terratorch.cli.custom_modules`: ``import_custom_modules``, ``import_custom_modules_from_args``;
* :mod:`terratorch.cli.statistics`: ``compute_statistics_main``;
* :mod:`terratorch.cli.inference`: ``LightningInferenceModel``;
* :mod:`terratorch.cli.custom_writer`: ``CustomWriter`` and the GeoTIFF helpers.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names resolve to, for type checkers and linters
    from terratorch.cli.callbacks import (
        StateDictAwareModelCheckpoint,
        StudioDeploySaveConfigCallback,
        clean_config_for_deployment_and_dump,
    )
    from terratorch.cli.custom_modules import (
        CUSTOM_MODULES_ENV,
        import_custom_modules,
        import_custom_modules_from_args,
    )
    from terratorch.cli.custom_writer import (
        CustomWriter,
        flatten,
        is_one_band,
        open_tiff,
        save_prediction,
        write_tiff,
    )
    from terratorch.cli.errors import ConfigError
    from terratorch.cli.inference import LightningInferenceModel
    from terratorch.cli.lightning import (
        LIGHTNING_SUBCOMMANDS,
        MyLightningCLI,
        MyTrainer,
        add_default_checkpointing_config,
        build_lightning_cli,
        main,
    )

_CLI = "terratorch.cli."
# name here -> (module, name there)
_EXPORTS: dict[str, tuple[str, str]] = {
    **{
        name: (_CLI + "lightning", name)
        for name in (
            "FLOAT32_PRECISION_ENV",
            "LIGHTNING_SUBCOMMANDS",
            "MyLightningCLI",
            "MyTrainer",
            "add_default_checkpointing_config",
            "build_lightning_cli",
            "default_checkpoint",
            "main",
            "_cli_class",
            "_configure_environment",
            "_parser_kwargs",
        )
    },
    **{
        name: (_CLI + "callbacks", name)
        for name in (
            "StateDictAwareModelCheckpoint",
            "StudioDeploySaveConfigCallback",
            "clean_config_for_deployment_and_dump",
            "deployment_config",
        )
    },
    **{
        name: (_CLI + "errors", name)
        for name in (
            "ConfigError",
            "UsageError",
            "explain_instantiation_error",
            "explain_parse_error",
            "strip_noise",
        )
    },
    "_subcommand_parser": (_CLI + "errors", "subcommand_parser"),
    **{
        name: (_CLI + "custom_modules", name)
        for name in (
            "CUSTOM_MODULES_ENV",
            "custom_module_paths",
            "import_custom_modules",
            "import_custom_modules_from_args",
        )
    },
    "_CLASS_MODULES": (_CLI + "custom_modules", "CLASS_MODULES"),
    "_import_class_modules": (_CLI + "custom_modules", "import_class_modules"),
    "_flag_values": (_CLI + "custom_modules", "flag_values"),
    "compute_statistics_main": (_CLI + "statistics", "compute_statistics_main"),
    "LightningInferenceModel": (_CLI + "inference", "LightningInferenceModel"),
    "_network_weights": (_CLI + "inference", "network_weights"),
    "_prediction_and_files": (_CLI + "inference", "_prediction_and_files"),
    **{
        name: (_CLI + "custom_writer", name)
        for name in ("CustomWriter", "flatten", "is_one_band", "open_tiff", "save_prediction", "write_tiff")
    },
    "compute_statistics": ("terratorch.utils", "compute_statistics"),
    "compute_mask_statistics": ("terratorch.utils", "compute_mask_statistics"),
    # Lightning classes the old module imported at its top level (some user code imports them from here).
    "LightningCLI": ("lightning.pytorch.cli", "LightningCLI"),
    "LightningArgumentParser": ("lightning.pytorch.cli", "LightningArgumentParser"),
    "SaveConfigCallback": ("lightning.pytorch.cli", "SaveConfigCallback"),
    "Trainer": ("lightning.pytorch", "Trainer"),
    "LightningModule": ("lightning.pytorch", "LightningModule"),
    "LightningDataModule": ("lightning.pytorch", "LightningDataModule"),
    "ModelCheckpoint": ("lightning.pytorch.callbacks", "ModelCheckpoint"),
    "BasePredictionWriter": ("lightning.pytorch.callbacks", "BasePredictionWriter"),
}

__all__ = [
    "CUSTOM_MODULES_ENV",
    "LIGHTNING_SUBCOMMANDS",
    "ConfigError",
    "CustomWriter",
    "LightningInferenceModel",
    "MyLightningCLI",
    "MyTrainer",
    "StateDictAwareModelCheckpoint",
    "StudioDeploySaveConfigCallback",
    "add_default_checkpointing_config",
    "build_lightning_cli",
    "clean_config_for_deployment_and_dump",
    "flatten",
    "import_custom_modules",
    "import_custom_modules_from_args",
    "is_one_band",
    "main",
    "open_tiff",
    "save_prediction",
    "write_tiff",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` and cache the value here (PEP 562)."""
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attribute)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    """The module's attributes including the not yet loaded re-exports."""
    return sorted(set(globals()) | {n for n in _EXPORTS if not n.startswith("_")})
