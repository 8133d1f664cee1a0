"""The ``terratorch fit|validate|test|predict|compute_statistics`` command line (LightningCLI).

A config is the LightningCLI layout (``model``, ``data``, ``trainer``, ``optimizer``,
``lr_scheduler``, ``seed_everything``) plus these TerraTorch keys (also accepted as ``--key value``
flags):

``custom_modules_path``
    A folder, ``.py`` file or dotted module imported before the config is parsed, so that classes
    and registry entries it defines can be named in the config. The environment variable
    ``TERRATORCH_CUSTOM_MODULE_PATH`` (``os.pathsep``-separated) does the same, and a
    ``./custom_modules`` package in the working directory is always imported.
``predict_output_dir``, ``output_file_prefix``, ``out_dtype``
    Where and how ``predict`` writes its GeoTIFFs (see
    :class:`terratorch.cli.prediction_writer.GeoTIFFPredictionWriter`).
``predict_streaming``
    ``predict`` streams every input GeoTIFF from disk to disk strip by strip
    (:func:`terratorch.tasks.tiled_inference.tiled_inference_geotiff`) with the task's
    ``tiled_inference_parameters``, instead of loading whole images through the dataloader. Use it
    for scenes that do not fit in memory.

``deploy_config_file``
    ``fit`` also writes ``config_deploy.yaml`` (default true; see
    :func:`terratorch.cli.callbacks.deployment_config`).

Short class names resolve (``class_path: SemanticSegmentationTask``,
``GenericNonGeoSegmentationDataModule``, ``StateDictAwareModelCheckpoint``, ``ToTensorV2``) because
the task, datamodule and callback modules are imported before parsing; transform lists also accept
albumentations 1.x arguments (renamed with a warning, see :mod:`terratorch.cli.config_compat`).
``seed_everything`` defaults to 0, as in the reference. ``out_dtype`` deliberately differs: it
defaults to the smallest type that holds the predictions instead of ``int16`` (which truncates
regression outputs). ``fit`` adds a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` on the task's
monitored metric (``val/loss``, minimised, unless the task sets ``monitor``/``monitor_mode``) that
also keeps ``last.ckpt``, unless the config lists its own ``ModelCheckpoint``.

Errors in the config (unknown keys, bad values, unknown loss/optimizer/scheduler names, missing
files) end the command with a short message; ``--verbose`` (or ``TERRATORCH_DEBUG=1``) shows the
traceback.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from terratorch.cli.callbacks import StateDictAwareModelCheckpoint, deployment_config
from terratorch.cli.custom_writer import (
    CustomWriter,
    flatten,
    is_one_band,
    open_tiff,
    save_prediction,
    write_tiff,
)
from terratorch.utils import compute_mask_statistics, compute_statistics

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

logger = logging.getLogger("terratorch")

CUSTOM_MODULES_ENV = "TERRATORCH_CUSTOM_MODULE_PATH"
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
# Modules whose classes must be imported before parsing so that short class names resolve.
_CLASS_MODULES = (
    "terratorch.tasks.segmentation",
    "terratorch.tasks.regression",
    "terratorch.tasks.classification",
    "terratorch.tasks.multilabel_classification",
    "terratorch.tasks.scalar_regression",
    "terratorch.tasks.reconstruction",
    "terratorch.datamodules.generic_pixel_wise_data_module",
    "terratorch.datamodules.generic_scalar_label_data_module",
    "terratorch.cli.callbacks",
    "terratorch.cli.custom_writer",
    "albumentations.pytorch",
)
_CONFIG_FLAGS = ("-c", "--config")


class ConfigError(ValueError):
    """A configuration problem found before any work starts (message says where and what is valid)."""


# ----------------------------------------------------------------------------- deployment config


def clean_config_for_deployment_and_dump(config: dict[str, Any]) -> str:
    """YAML text of :func:`terratorch.cli.callbacks.deployment_config` applied to a resolved config.

    Drops ``ckpt_path``, ``optimizer``, ``lr_scheduler``, ``verbose``, top-level
    ``ModelCheckpoint``/``StateDictModelCheckpoint`` entries, the trainer's callbacks and
    ``default_root_dir``; turns the logger off, sets ``precision: 16-mixed`` and the backbone's
    ``pretrained`` (or ``backbone_pretrained``) to false. ``config`` is not modified.
    """
    import yaml

    return yaml.safe_dump(deployment_config(config))


class StudioDeploySaveConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` and, with ``deploy_config_file`` (default), ``config_deploy.yaml`` for inference.

    Also copies the original config file into the log directory under its own name when that
    differs from ``config.yaml``. Unlike the reference, ``config.yaml`` is written even when
    ``deploy_config_file`` is false (the reference then writes no config at all), and a config
    given as a dict (no config file) works.

    Args:
        parser, config, config_filename, overwrite, multifile, save_to_log_dir: as
            :class:`lightning.pytorch.cli.SaveConfigCallback`.
    """

    def __init__(
        self,
        parser: Any,
        config: Any,
        config_filename: str = "config.yaml",
        overwrite: bool = False,
        multifile: bool = False,
        save_to_log_dir: bool = True,
    ) -> None:
        super().__init__(parser, config, config_filename, overwrite, multifile, save_to_log_dir)
        values = config.as_dict() if hasattr(config, "as_dict") else dict(config)
        files = values.get("config") or []
        files = files if isinstance(files, list | tuple) else [files]
        self.config_path_original = str(files[0]) if files and files[0] is not None else None
        self.config_file_original = (
            os.path.basename(self.config_path_original) if self.config_path_original else None
        )
        self.deploy_config_file = bool(values.get("deploy_config_file", True))
        self.config_path_new: str | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check there is a log directory, then save (once) as :class:`SaveConfigCallback` does."""
        if self.already_saved:
            return
        if self.save_to_log_dir and (trainer.log_dir or trainer.default_root_dir) is None:
            raise RuntimeError(
                "log_dir was none: the trainer has neither a logger nor default_root_dir to save "
                "config.yaml into. Set trainer.default_root_dir (or a logger) in the config."
            )
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Write ``config_deploy.yaml`` and copy the original config file (rank zero only)."""
        import shutil

        import yaml

        if not trainer.is_global_zero:
            return
        log_dir = trainer.log_dir or trainer.default_root_dir
        if log_dir is None:
            return
        if self.deploy_config_file:
            stem, ext = os.path.splitext(self.config_filename)
            resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=True))
            path = Path(log_dir) / f"{stem}_deploy{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(deployment_config(resolved), sort_keys=False))
        if self.config_path_original and os.path.isfile(self.config_path_original):
            self.config_path_new = os.path.join(log_dir, self.config_file_original)
            if os.path.abspath(self.config_path_original) != os.path.abspath(self.config_path_new):
                shutil.copyfile(self.config_path_original, self.config_path_new)


# ----------------------------------------------------------------------------- custom modules


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


def _flag_values(args: Sequence[str], flags: Sequence[str]) -> list[str]:
    """Values given to any of ``flags`` in ``args`` (``--flag value`` and ``--flag=value``)."""
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
    except yaml.YAMLError:
        return []  # reported by the parser, with the position of the error
    value = content.get("custom_modules_path") if isinstance(content, dict) else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def custom_module_paths(args: Sequence[str]) -> list[str]:
    """Every custom-module path for this command: env var, config files, then ``--custom_modules_path``.

    The paths must be known before the config is parsed (the modules may define the classes the
    config names), so ``args`` and the config files are scanned here without the parser.
    """
    paths = [p for p in os.environ.get(CUSTOM_MODULES_ENV, "").split(os.pathsep) if p]
    for config_file in _flag_values(args, _CONFIG_FLAGS):
        paths += _config_custom_paths(config_file)
    paths += _flag_values(args, ("--custom_modules_path",))
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


def _import_class_modules() -> None:
    """Import the task and datamodule modules so jsonargparse finds their classes by short name."""
    import importlib

    for module in _CLASS_MODULES:
        importlib.import_module(module)


# ----------------------------------------------------------------------------- the LightningCLI subclass


def _cli_class(only: Sequence[str] | None = None) -> type:
    """:class:`MyLightningCLI` (kept for callers of the wave-1 factory; ``only`` is passed per instance)."""
    del only
    return MyLightningCLI


class MyLightningCLI(LightningCLI):
    """LightningCLI with TerraTorch's extra keys, default checkpointing and GeoTIFF prediction.

    The reference's five keys (``predict_output_dir``, ``output_file_prefix``, ``out_dtype``,
    ``deploy_config_file``, ``custom_modules_path``) are top-level arguments; ``predict_streaming``
    is in its own argument group. After instantiation the trainer carries ``predict_output_dir``,
    ``output_file_prefix``, ``out_dtype`` and ``deploy_config`` (read by :class:`CustomWriter`).
    ``out_dtype`` deliberately defaults to None (smallest type holding the predictions) instead of
    the reference's ``int16``.

    Args:
        subcommands_only: Build parsers for these subcommands only (default: all). Each
            subcommand parser introspects the Trainer, task and datamodule signatures, so building
            just the one that runs keeps ``terratorch fit --help`` fast.
        Other arguments: as :class:`lightning.pytorch.cli.LightningCLI`.
    """

    def __init__(self, *args: Any, subcommands_only: Sequence[str] | None = None, **kwargs: Any) -> None:
        self._only = tuple(subcommands_only) if subcommands_only else None
        # An instance attribute shadows the classmethod, so LightningCLI builds only these parsers.
        self.subcommands = self._selected_subcommands  # type: ignore[method-assign]
        super().__init__(*args, **kwargs)

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:  # type: ignore[override]
        """LightningCLI's subcommands plus ``compute_statistics`` (:meth:`MyTrainer.compute_statistics`)."""
        every = dict(LightningCLI.subcommands())
        every["compute_statistics"] = {"datamodule"}
        return every

    def _selected_subcommands(self) -> dict[str, set[str]]:
        every = type(self).subcommands()
        return {k: v for k, v in every.items() if self._only is None or k in self._only}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the TerraTorch keys (``custom_modules_path``, ``predict_output_dir``, ...)."""
        parser.add_argument(
            "--predict_output_dir",
            type=str | None,
            default=None,
            help="predict: directory for the GeoTIFFs (one per input file). Required by predict.",
        )
        parser.add_argument(
            "--output_file_prefix",
            type=str | None,
            default=None,
            help="predict: prefix of output file names (<prefix><input stem>_pred.tif).",
        )
        parser.add_argument(
            "--out_dtype",
            type=str | None,
            default=None,
            help="predict: raster dtype (uint8, uint16, int16, int32, float32, ...). Default: the "
            "smallest integer type for class maps, float32 for values.",
        )
        parser.add_argument(
            "--deploy_config_file",
            type=bool,
            default=True,
            help="fit: also write config_deploy.yaml beside config.yaml (no optimizer, callbacks or "
            "logger; pretrained download off) for inference.",
        )
        parser.add_argument(
            "--custom_modules_path",
            type=str | list[str] | None,
            default=None,
            help="Folder, .py file or dotted module imported before the config is parsed (also "
            f"${CUSTOM_MODULES_ENV}; ./custom_modules is always imported).",
        )
        streaming = parser.add_argument_group("TerraTorch streaming prediction")
        streaming.add_argument(
            "--predict_streaming",
            type=bool,
            default=False,
            help="predict: stream each input GeoTIFF from disk to disk with the task's "
            "tiled_inference_parameters (for scenes too large for memory).",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; a jsonargparse error becomes a :class:`ConfigError` listing the valid keys."""
        from jsonargparse import ArgumentError

        try:  # not super(): it warns whenever sys.argv is also set, as under the dispatcher
            self.config = parser.parse_object(args) if isinstance(args, dict) else parser.parse_args(args)
        except ArgumentError as error:
            where = _subcommand_parser(parser, args if isinstance(args, list) else [])
            raise ConfigError(explain_parse_error(str(error), where)) from None

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model: ``ckpt_path`` supplies weights only.

        LightningCLI would re-parse the model from the checkpoint's hyperparameters, letting them
        override the config (e.g. dropping ``tiled_inference_parameters`` added for prediction),
        and fails for tasks that save their hyperparameters without a class path.
        """

    def _setting(self, key: str, default: Any = None) -> Any:
        return self._get(self.config, key, default)

    def before_instantiate_classes(self) -> None:
        """Check subcommand-specific settings before anything is built."""
        if self.subcommand == "predict" and not self._setting("predict_output_dir"):
            raise ConfigError(
                "predict needs predict_output_dir (a directory for the output GeoTIFFs): add "
                "'predict_output_dir: <dir>' to the config or pass --predict_output_dir <dir>."
            )
        ckpt = self._setting("ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc", "registry") and not Path(ckpt).is_file():
            raise FileNotFoundError(f"ckpt_path: checkpoint file {ckpt!r} does not exist.")

    def instantiate_classes(self) -> None:
        """Instantiate; a constructor error comes out as itself, not as jsonargparse's Union report."""
        try:
            super().instantiate_classes()
        except ValueError as error:
            raise explain_instantiation_error(error) from error.__cause__
        for attribute, key in (
            ("predict_output_dir", "predict_output_dir"),
            ("output_file_prefix", "output_file_prefix"),
            ("out_dtype", "out_dtype"),
            ("deploy_config", "deploy_config_file"),
        ):
            setattr(self.trainer, attribute, self._setting(key))

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        callbacks = list(callbacks) + self._default_callbacks(config)
        return super()._instantiate_trainer(config, callbacks)

    def _default_callbacks(self, config: dict[str, Any]) -> list[Any]:
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        extra: list[Any] = []
        wants_checkpoint = config.get("enable_checkpointing") is not False
        has_checkpoint = any(isinstance(c, ModelCheckpoint) for c in configured)
        if self.subcommand in ("fit", None) and wants_checkpoint and not has_checkpoint:
            extra.append(default_checkpoint(self.model))
        has_writer = any(isinstance(c, BasePredictionWriter) for c in configured)
        if self.subcommand == "predict" and not self._setting("predict_streaming") and not has_writer:
            from terratorch.cli.prediction_writer import GeoTIFFPredictionWriter

            extra.append(
                GeoTIFFPredictionWriter(
                    output_dir=self._setting("predict_output_dir"),
                    output_file_prefix=self._setting("output_file_prefix") or "",
                    out_dtype=self._setting("out_dtype"),
                )
            )
        return extra

    def predict(self, **kwargs: Any) -> Any:
        """``trainer.predict`` (writer callback attached), or disk-to-disk streaming."""
        if not self._setting("predict_streaming"):
            if kwargs.get("return_predictions") is None:  # the writer has them; do not keep all in memory
                kwargs["return_predictions"] = False
            return self.trainer.predict(**kwargs)
        from terratorch.cli.prediction_writer import stream_predict

        return stream_predict(
            self.model,
            self.datamodule,
            output_dir=self._setting("predict_output_dir"),
            output_file_prefix=self._setting("output_file_prefix") or "",
            out_dtype=self._setting("out_dtype"),
            ckpt_path=kwargs.get("ckpt_path"),
            weights_only=kwargs.get("weights_only"),
            device=self.trainer.strategy.root_device,
        )


class MyTrainer(Trainer):
    """Lightning ``Trainer`` with a ``compute_statistics`` entry (the CLI's ``compute_statistics``)."""

    def compute_statistics(self, datamodule: LightningDataModule, **kwargs: Any) -> dict[str, Any]:
        """Per-band image statistics (and mask statistics when samples have a ``mask``) of the train split.

        The train transform is dropped first (when the datamodule has ``train_transform``) and the
        train dataloader is re-made without shuffling, so the numbers describe the raw data. The
        statistics are logged and, unlike the reference (which returns None), returned as
        ``{"image": ..., "mask": ...}`` (``mask`` only when present).

        Raises:
            ValueError: ``datamodule.train_dataloader()`` does not return a ``DataLoader``.
        """
        import yaml
        from torch.utils.data import DataLoader

        if hasattr(datamodule, "train_transform"):
            datamodule.train_transform = None
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        if not isinstance(loader, DataLoader):
            raise ValueError(
                f"DataLoader not found in datamodule.train_dataloader() (got {type(loader).__name__}); "
                "compute_statistics needs a single torch DataLoader for the train split."
            )
        plain = DataLoader(
            dataset=loader.dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=False,
        )
        stats: dict[str, Any] = {"image": compute_statistics(plain)}
        logger.info("Image statistics:\n%s", yaml.dump(stats["image"]))
        if "mask" in loader.dataset[0]:
            stats["mask"] = compute_mask_statistics(plain)
            logger.info("Mask statistics:\n%s", yaml.dump(stats["mask"]))
        return stats


def default_checkpoint(task: Any) -> Any:
    """``ModelCheckpoint`` on the task's monitored metric (default ``val/loss``, min), plus ``last.ckpt``.

    The file name avoids the metric name: ``/`` in ``val/loss`` would create sub-directories.
    """
    return ModelCheckpoint(
        monitor=getattr(task, "monitor", None) or "val/loss",
        mode=getattr(task, "monitor_mode", None) or "min",
        filename="best-epoch={epoch:02d}",
        auto_insert_metric_name=False,
        save_last=True,
    )


def add_default_checkpointing_config(config: Any) -> Any:
    """Add the reference's two default checkpoint callbacks to a parsed CLI config, in place.

    For ``config["subcommand"]`` with ``<subcommand>.trainer.enable_checkpointing`` true and no
    ``*ModelCheckpoint`` among ``<subcommand>.trainer.callbacks``, appends two
    :class:`StateDictAwareModelCheckpoint` entries on ``val/loss``: a full checkpoint
    (``{epoch}``) and a weights-only one (``{epoch}_state_dict``). A config without subcommand is
    returned unchanged. Works on a jsonargparse ``Namespace`` or a dict with dotted keys. (The CLI
    itself adds :func:`default_checkpoint` instead; this is for code that builds configs.)

    Returns:
        ``config``.
    """
    from jsonargparse import Namespace

    subcommand = config.get("subcommand", None)
    if subcommand is None:
        return config
    prefix = f"{subcommand}.trainer."
    callbacks = list(config.get(prefix + "callbacks", None) or [])
    if not config.get(prefix + "enable_checkpointing", None):
        return config

    def _class_path(callback: Any) -> str:
        value = (
            callback.get("class_path", "")
            if isinstance(callback, Mapping)
            else getattr(callback, "class_path", "")
        )
        return str(value or type(callback).__name__)

    if any("ModelCheckpoint" in _class_path(c) for c in callbacks):
        logger.info("The config lists a ModelCheckpoint callback; no default checkpointing added.")
        return config
    for filename, weights_only in (("{epoch}", False), ("{epoch}_state_dict", True)):
        init_args = Namespace(filename=filename, monitor="val/loss")
        if weights_only:
            init_args.save_weights_only = True
        callbacks.append(Namespace(class_path="StateDictAwareModelCheckpoint", init_args=init_args))
    config[prefix + "callbacks"] = callbacks
    return config


_RASTERIO_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "AWS_NO_SIGN_REQUEST": "YES",
    "GDAL_MAX_RAW_BLOCK_CACHE_SIZE": "200000000",
    "GDAL_SWATH_SIZE": "200000000",
    "VSI_CURL_CACHE_SIZE": "200000000",
}
"""GDAL settings for reading cloud-optimised GeoTIFFs (set unless the environment already has them)."""
FLOAT32_PRECISION_ENV = "terratorch_FLOAT_32_PRECISION"
_FLOAT32_PRECISIONS = ("highest", "high", "medium")


def _configure_environment() -> None:
    """GDAL defaults and ``terratorch_FLOAT_32_PRECISION`` (``torch.set_float32_matmul_precision``)."""
    for key, value in _RASTERIO_DEFAULTS.items():
        os.environ.setdefault(key, value)
    precision = os.environ.get(FLOAT32_PRECISION_ENV, os.environ.get(FLOAT32_PRECISION_ENV.upper()))
    if precision is None:
        return
    if precision in _FLOAT32_PRECISIONS:
        torch.set_float32_matmul_precision(precision)
    else:
        warnings.warn(
            f"{FLOAT32_PRECISION_ENV}={precision!r} is ignored: use one of {', '.join(_FLOAT32_PRECISIONS)}.",
            UserWarning,
            stacklevel=3,
        )


def build_lightning_cli(args: Sequence[str] | dict[str, Any] | None = None, run: bool = True) -> Any:
    """Build (and by default run) the TerraTorch LightningCLI (:class:`MyLightningCLI`).

    Also sets GDAL defaults for cloud-optimised GeoTIFFs (only those not already in the
    environment; the reference overwrites them) and applies ``terratorch_FLOAT_32_PRECISION``
    (``highest``/``high``/``medium``; anything else warns).

    Args:
        args: Command line arguments after ``terratorch`` (e.g. ``["fit", "-c", "config.yaml"]``), a
            config dict, or None for ``sys.argv[1:]``. With ``run=False`` there is no subcommand:
            ``["-c", "config.yaml"]``.
        run: Run the subcommand. ``False`` only instantiates model, datamodule and trainer (the
            returned object's ``.model``, ``.datamodule``, ``.trainer``).

    Returns:
        The ``LightningCLI`` instance.
    """
    _configure_environment()
    argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
    import_custom_modules_from_args(argv)
    _import_class_modules()
    subcommands = (*LIGHTNING_SUBCOMMANDS, "compute_statistics")
    requested = argv[0] if run and argv and argv[0] in subcommands else None
    return MyLightningCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_callback=StudioDeploySaveConfigCallback if run else None,
        save_config_kwargs={"overwrite": True},
        trainer_class=MyTrainer,
        parser_kwargs=_parser_kwargs((requested,) if requested else subcommands if run else ()),
        args=argv if not isinstance(args, dict) else args,
        run=run,
        subcommands_only=(requested,) if requested else None,
    )


def _parser_kwargs(subcommands: Sequence[str]) -> dict[str, Any]:
    """Parsers that raise instead of exiting, so errors are reported by :func:`explain_parse_error`."""
    from terratorch.cli.config_compat import register_loader

    mode = register_loader()
    kwargs: dict[str, Any] = {"exit_on_error": False, "parser_mode": mode}
    for name in subcommands:
        kwargs[name] = {"exit_on_error": False, "parser_mode": mode}
    return kwargs


# ----------------------------------------------------------------------------- inference from Python


class LightningInferenceModel:
    """Predict from Python with a model built exactly as ``terratorch predict`` builds it.

    Build it with :meth:`from_config` (a fit/deploy config and a checkpoint) or
    :meth:`from_task_and_datamodule`, then call :meth:`inference` on one file or
    :meth:`inference_on_dir` on a folder. Prediction writer callbacks are removed from the trainer:
    the predictions are returned, not written.

    Args:
        trainer: Trainer used for ``predict``.
        model: The task (a LightningModule whose ``.model`` holds the network).
        datamodule: Datamodule whose predict split reads the files.
        checkpoint_path: Lightning checkpoint or bare state dict loaded into ``model.model``
            (keys may carry the task's ``model.`` prefix; timm's ``_timm_module.`` residue is removed).
    """

    def __init__(
        self,
        trainer: Trainer,
        model: LightningModule,
        datamodule: LightningDataModule,
        checkpoint_path: str | Path | None = None,
    ) -> None:
        self.trainer = trainer
        self.model = model
        self.datamodule = datamodule
        if checkpoint_path:
            self.model.model.load_state_dict(_network_weights(checkpoint_path))
        self.trainer.callbacks = [
            c for c in self.trainer.callbacks if not isinstance(c, BasePredictionWriter)
        ]

    @classmethod
    def from_config(
        cls,
        config_path: str | Path,
        checkpoint_path: str | Path | None = None,
        predict_dataset_bands: list[str] | None = None,
        predict_output_bands: list[str] | None = None,
    ) -> LightningInferenceModel:
        """Build task, datamodule and trainer from a CLI config (through :func:`build_lightning_cli`).

        Args:
            config_path: YAML config (e.g. the ``config_deploy.yaml`` written by ``fit``).
            checkpoint_path: Weights to load (see the class).
            predict_dataset_bands: Bands of the files to predict (sets the datamodule's
                ``predict_dataset_bands``).
            predict_output_bands: Bands the model receives from them (``predict_output_bands``).
        """
        arguments = ["--config", str(config_path)]
        if predict_dataset_bands is not None:
            arguments += [
                "--data.init_args.predict_dataset_bands",
                "[" + ",".join(predict_dataset_bands) + "]",
            ]
        if predict_output_bands is not None:
            arguments += ["--data.init_args.predict_output_bands", "[" + ",".join(predict_output_bands) + "]"]
        cli = build_lightning_cli(arguments, run=False)
        trainer = cli.trainer
        trainer.logger = None  # no metrics logging while predicting
        return cls(trainer, cli.model, cli.datamodule, checkpoint_path=checkpoint_path)

    @classmethod
    def from_task_and_datamodule(
        cls,
        task: LightningModule,
        datamodule: LightningDataModule,
        checkpoint_path: str | Path | None = None,
    ) -> LightningInferenceModel:
        """Wrap an existing task and datamodule with a default trainer (no logger, no checkpointing)."""
        trainer = Trainer(logger=False, enable_checkpointing=False)
        return cls(trainer, task, datamodule, checkpoint_path=checkpoint_path)

    def inference_on_dir(self, data_root: str | Path | None = None) -> tuple[torch.Tensor, list[str]]:
        """Predict every file of the datamodule's predict split.

        Args:
            data_root: Folder to predict instead of the configured predict root (for multimodal
                datamodules, the same folder for every modality).

        Returns:
            ``(predictions concatenated over batches, input file names in the same order)``.
        """
        if data_root:
            modalities = getattr(self.datamodule, "modalities", None)
            root: Any = {m: data_root for m in modalities} if modalities else data_root
            self.datamodule.predict_root = root  # the reference datamodules' attribute
            if hasattr(self.datamodule, "predict_data_root"):  # ours
                self.datamodule.predict_data_root = root
            if getattr(self.datamodule, "predict_dataset", None) is not None:
                self.datamodule.predict_dataset = None  # built again from the new root by setup()
        batches = self.trainer.predict(model=self.model, datamodule=self.datamodule, return_predictions=True)
        values, names = [], []
        for batch in batches or []:
            tensor, files = _prediction_and_files(batch)
            values.append(tensor)
            names.append(files)
        if not values:
            raise ValueError(
                "No predictions: the predict split is empty (check the predict data root and img_grep)."
            )
        return torch.cat(values), flatten(names)

    def inference(self, file_path: str | Path) -> torch.Tensor:
        """Predict one file; returns its prediction without the batch dimension."""
        import tempfile

        path = Path(file_path).resolve()
        with tempfile.TemporaryDirectory() as tmpdir:
            os.symlink(path, os.path.join(tmpdir, path.name))
            prediction, _ = self.inference_on_dir(tmpdir)
            return prediction.squeeze(0)


def _network_weights(checkpoint_path: str | Path) -> dict[str, Any]:
    """The network's state dict from a checkpoint: unwrap ``state_dict``, drop the task's ``model.``."""
    from terratorch.utils import remove_unexpected_prefix

    weights = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if isinstance(weights, Mapping) and "state_dict" in weights:
        weights = weights["state_dict"]
    weights = remove_unexpected_prefix(weights)
    return {(k[len("model.") :] if k.startswith("model.") else k): v for k, v in weights.items()}


def _prediction_and_files(batch: Any) -> tuple[torch.Tensor, list[str]]:
    """Split one ``predict_step`` output into ``(prediction tensor, file names)``.

    Handles ours (``{"prediction", "filename"}``) and the reference's ``(tensor, files)``,
    ``((tensor, suffix), files)`` and ``([(tensor, suffix), ...], files)`` (the first output).
    """
    if isinstance(batch, Mapping):
        tensor, files = batch.get("prediction"), batch.get("filename")
    elif isinstance(batch, tuple | list) and len(batch) == 2:
        tensor, files = batch
    else:
        raise TypeError(
            f"Unexpected predict_step output {type(batch).__name__}; expected (prediction, files) or a dict."
        )
    if isinstance(tensor, list):
        tensor = tensor[0]
    if isinstance(tensor, tuple):
        tensor = tensor[0]
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"predict_step returned a {type(tensor).__name__} prediction; expected a tensor.")
    if isinstance(files, Mapping):
        files = next(iter(files.values()))
    return tensor, list(files) if files is not None else [""] * tensor.shape[0]


# ----------------------------------------------------------------------------- error messages

_UNKNOWN_OPTION = re.compile(
    r"(?:does not accept option|No action for (?:destination )?key) ['\"]([^'\"]+)['\"]"
    r"|Unrecognized arguments: --([\w.]+)"
)
_CLASS_OPTION = re.compile(
    r"Problem with given class_path '([^']+)':\s*(?:Key '[^']*': )?Option '([^']+)' is not accepted"
)
_NESTED_OPTION = re.compile(r"Option '([^']+)' is not accepted\. Got value: Namespace\(class_path='([^']+)'")
_BAD_CLASS = re.compile(
    r"(?:Expected a dot import path string|Import path \S+ does not exist|No module named)[: ]*'?([\w.]+)"
)
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "- Expected a <class 'NoneType'>",
)
_KEY_BASES = {"model": "lightning.pytorch.LightningModule", "data": "lightning.pytorch.LightningDataModule"}


def explain_parse_error(message: str, parser: Any = None) -> str:
    """Turn a jsonargparse error into a short message: the key path, what is wrong, what is valid.

    Handles unknown keys (lists the valid keys at that level), unknown constructor arguments of a
    ``class_path`` (lists the class's arguments) and unknown class names (lists known classes);
    anything else is returned without jsonargparse's Union/"Given value" noise.
    """
    text = str(message)
    keys = _PARSER_KEY.findall(text)
    key = keys[0] if keys else ""
    nested = _NESTED_OPTION.search(text)
    if nested is not None:  # e.g. an albumentations transform inside a list argument
        return _unknown_argument(".init_args.".join(keys), nested.group(2), nested.group(1), nested=True)
    class_option = _CLASS_OPTION.search(text)
    if class_option is not None:
        return _unknown_argument(key, class_option.group(1), class_option.group(2))
    option = _UNKNOWN_OPTION.search(text)
    if option is not None:
        return _unknown_key(option.group(1) or option.group(2), parser)
    bad_class = _BAD_CLASS.search(text)
    if bad_class is not None and key in _KEY_BASES:
        return _unknown_class(key, bad_class.group(1))
    return strip_noise(text)


def strip_noise(text: str) -> str:
    """Drop jsonargparse's Union bookkeeping lines (subtypes, the whole given value) from a message."""
    kept = [
        line.rstrip() for line in text.splitlines() if line.strip() and not line.strip().startswith(_NOISE)
    ]
    return "\n".join(kept)


def _suggest(name: str, candidates: Sequence[str]) -> str:
    from terratorch.registry.registry import close_matches

    close = close_matches(name, candidates, n=3)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _unknown_key(key: str, parser: Any) -> str:
    key = _first_unknown(key, parser) if parser is not None else key
    valid = _valid_keys(parser, key) if parser is not None else []
    leaf = key.rsplit(".", 1)[-1]
    lines = [f"{key}: unknown key.{_suggest(leaf, [v.rsplit('.', 1)[-1] for v in valid])}"]
    if valid:
        lines.append(f"Valid keys here: {', '.join(valid)}")
    return "\n".join(lines)


def _first_unknown(key: str, parser: Any) -> str:
    """``trainr.max_epochs`` -> ``trainr``: the shortest prefix of ``key`` the parser does not know."""
    dests = [getattr(action, "dest", "") for action in getattr(parser, "_actions", [])]
    parts = key.split(".")
    for size in range(1, len(parts) + 1):
        prefix = ".".join(parts[:size])
        if not any(d == prefix or d.startswith(prefix + ".") for d in dests):
            return prefix
    return key


def _valid_keys(parser: Any, key: str) -> list[str]:
    """Keys the parser accepts at the level of ``key`` (same dotted prefix)."""
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    names = set()
    for action in getattr(parser, "_actions", []):
        dest = getattr(action, "dest", "")
        if not dest or dest in ("help", "config", "print_config") or not dest.startswith(prefix):
            continue
        names.add(prefix + dest[len(prefix) :].split(".", 1)[0])
    return sorted(names)


def _import_path(path: str) -> Any:
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _unknown_argument(key: str, class_path: str, option: str, nested: bool = False) -> str:
    import inspect

    name = class_path.rsplit(".", 1)[-1]
    where = key if nested else (f"{key}.init_args.{option}" if key else option)
    try:
        params = inspect.signature(_import_path(class_path)).parameters
    except (ImportError, ValueError, TypeError, AttributeError):
        return f"{where}: {name} does not take an argument {option!r}."
    valid = [p for p, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    return (
        f"{where}: {name} does not take an argument {option!r}.{_suggest(option, valid)}\n"
        f"Valid arguments of {name}: {', '.join(valid)}"
    )


def _subclass_names(base: type) -> list[str]:
    """Names of the public (imported) subclasses of ``base``, recursively."""
    names: set[str] = set()
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__name__.startswith("_") and "<locals>" not in cls.__qualname__:
            names.add(cls.__name__)
    return sorted(names)


def _unknown_class(key: str, name: str) -> str:
    known = _subclass_names(_import_path(_KEY_BASES[key]))
    ours = [k for k in known if k.endswith(("Task", "DataModule"))] or known
    return (
        f"{key}.class_path: unknown class {name!r}.{_suggest(name.rsplit('.', 1)[-1], known)}\n"
        f"Known classes: {', '.join(ours)} (or a full import path; custom classes need custom_modules_path)"
    )


def _subcommand_parser(cli_parser: Any, args: Sequence[str]) -> Any:
    """The subcommand parser of ``args`` (for listing valid keys), or the main parser."""
    for action in getattr(cli_parser, "_actions", []):
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and args and args[0] in choices:
            return choices[args[0]]
    return cli_parser


def explain_instantiation_error(error: Exception) -> Exception:
    """The constructor error hidden in jsonargparse's "Does not validate against any Union subtype".

    Returns a :class:`ConfigError` naming the class that failed and quoting the original error
    (chained), or ``error`` itself when it is not such a wrapper.
    """
    cause = error.__cause__
    if cause is None or "Union subtypes" not in str(error):
        return error
    class_path = re.search(r"class_path='([^']+)'", str(error))
    what = class_path.group(1).rsplit(".", 1)[-1] if class_path else "a configured class"
    wrapped = ConfigError(f"building {what} failed: {type(cause).__name__}: {cause}")
    wrapped.__cause__ = cause
    return wrapped


# ----------------------------------------------------------------------------- compute_statistics


# Config sections compute_statistics accepts but does not use (a fit config works as it is).
_STATISTICS_IGNORED_KEYS = (
    "model",
    "trainer",
    "optimizer",
    "lr_scheduler",
    "seed_everything",
    "ckpt_path",
    "weights_only",
    "return_predictions",
    "custom_modules_path",
    "predict_output_dir",
    "output_file_prefix",
    "out_dtype",
    "predict_streaming",
    "deploy_config_file",
)


def compute_statistics_main(args: Sequence[str]) -> int:
    """``terratorch compute_statistics -c config.yaml``: per-band means/stds and label histogram.

    Only the ``data`` section of the config is used (other sections may be present). Prints YAML
    with ``means``/``stds`` ready to paste into the datamodule config; ``--output FILE`` also writes it.
    """
    from typing import Any as AnyType

    from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser
    from lightning import LightningDataModule

    from terratorch.datasets.statistics import compute_statistics as datamodule_statistics
    from terratorch.datasets.statistics import format_statistics

    import_custom_modules_from_args(args)
    _import_class_modules()
    from terratorch.cli.config_compat import register_loader

    parser = ArgumentParser(
        prog="terratorch compute_statistics", exit_on_error=False, parser_mode=register_loader()
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="LightningCLI config file.")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True, instantiate=True)
    parser.add_argument("--max_samples", type=int | None, default=None, help="Only the first N images.")
    parser.add_argument("--output", type=str | None, default=None, help="Also write the YAML here.")
    for ignored in _STATISTICS_IGNORED_KEYS:
        parser.add_argument(f"--{ignored}", type=AnyType, default=None, help="(ignored)")
    try:
        config = parser.parse_args(list(args))
    except ArgumentError as error:
        raise ConfigError(explain_parse_error(str(error), parser)) from None
    try:
        datamodule = parser.instantiate(config).data
    except ValueError as error:
        raise explain_instantiation_error(error) from error.__cause__
    stats = datamodule_statistics(datamodule, max_samples=config.max_samples)
    text = format_statistics(stats)
    print(text, end="")
    if config.output:
        Path(config.output).write_text(text)
    return 0


# ----------------------------------------------------------------------------- entry point


def main(args: Sequence[str] | None = None) -> int:
    """Entry of ``terratorch fit|validate|test|predict|compute_statistics`` (``args`` start with it).

    Errors propagate; :func:`terratorch.__main__.run_friendly` prints them without a traceback.
    Parse errors are :class:`ConfigError` (with the valid keys for an unknown one).
    """
    argv = [a for a in (sys.argv[1:] if args is None else args) if a != "--verbose"]
    if argv and argv[0] == "compute_statistics":
        return compute_statistics_main(argv[1:])
    build_lightning_cli(argv, run=True)
    return 0
