"""The TerraTorch ``LightningCLI``: ``terratorch fit|validate|test|predict|compute_statistics``.

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
regression outputs).

``fit`` adds :func:`default_checkpoint` unless the config lists its own ``ModelCheckpoint``: the
best checkpoint on the task's monitored metric (``val/loss``, minimised, unless the task sets
``monitor``/``monitor_mode``) and ``last.ckpt``, which always holds the last finished epoch (and
the interrupted step after Ctrl-C), so ``--ckpt_path last.ckpt`` resumes where training stopped.

Errors end the command with a short message and the exit codes of ``docs/cli.md``; ``--verbose``
(or ``TERRATORCH_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from terratorch import exit_codes
from terratorch.cli.callbacks import LastEpochModelCheckpoint, StudioDeploySaveConfigCallback
from terratorch.cli.custom_modules import (
    CUSTOM_MODULES_ENV,
    flag_values,
    import_class_modules,
    import_custom_modules_from_args,
)
from terratorch.cli.errors import (
    ConfigError,
    TrainingInterrupted,
    UsageError,
    check_checkpoint_file,
    checkpoint_load_error,
    config_files,
    explain_instantiation_error,
    explain_parse_error,
    is_unknown_flag,
    is_unreadable_config,
    naming_file,
    subcommand_parser,
)

__all__ = [
    "FLOAT32_PRECISION_ENV",
    "LIGHTNING_SUBCOMMANDS",
    "MyLightningCLI",
    "MyTrainer",
    "add_default_checkpointing_config",
    "build_lightning_cli",
    "default_checkpoint",
    "main",
]

logger = logging.getLogger("terratorch")

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
# ckpt_path values Lightning resolves itself (not file paths).
_SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


# ----------------------------------------------------------------------------- the LightningCLI subclass


class MyLightningCLI(LightningCLI):
    """LightningCLI with TerraTorch's extra keys, default checkpointing, short errors and GeoTIFF prediction.

    The reference's five keys (``predict_output_dir``, ``output_file_prefix``, ``out_dtype``,
    ``deploy_config_file``, ``custom_modules_path``) are top-level arguments; ``predict_streaming``
    is in its own argument group. After instantiation the trainer carries ``predict_output_dir``,
    ``output_file_prefix``, ``out_dtype`` and ``deploy_config`` (read by ``CustomWriter``).
    ``out_dtype`` deliberately defaults to None (smallest type holding the predictions) instead of
    the reference's ``int16``. Subclass it as any ``LightningCLI`` (e.g. to add arguments in
    ``add_arguments_to_parser``, calling ``super()`` first).

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
        """Parse; a jsonargparse error becomes a :class:`ConfigError` (:class:`UsageError` for a bad flag)."""
        from jsonargparse import ArgumentError

        try:  # not super(): it warns whenever sys.argv is also set, as under the dispatcher
            self.config = parser.parse_object(args) if isinstance(args, dict) else parser.parse_args(args)
        except ArgumentError as error:
            where = subcommand_parser(parser, args if isinstance(args, list) else [])
            kind = UsageError if is_unknown_flag(str(error)) else ConfigError
            message = explain_parse_error(str(error), where)
            files = config_files(args) if isinstance(args, list) else []
            if files and is_unreadable_config(str(error)):
                message = (
                    f"config file {', '.join(files)}: {message} (a config is a YAML mapping with keys "
                    "such as trainer, model, data)"
                )
            raise kind(message) from None

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model: ``ckpt_path`` supplies weights only (no public hook exists for this).

        LightningCLI would re-parse the model from the checkpoint's hyperparameters, letting them
        override the config (e.g. dropping ``tiled_inference_parameters`` added for prediction),
        and fails for tasks that save their hyperparameters without a class path.
        """

    def setting(self, key: str, default: Any = None, instantiated: bool = False) -> Any:
        """The value of a top-level config ``key`` of the running subcommand (or ``default``).

        ``instantiated`` reads the config after :meth:`instantiate_classes` (objects, not specs).
        """
        config = self.config_init if instantiated else self.config
        section = config.get(str(self.subcommand), config) if self.subcommand else config
        return section.get(key, default)

    def before_instantiate_classes(self) -> None:
        """Check subcommand-specific settings (output folder, checkpoint file) before anything is built."""
        if (
            self.subcommand == "predict"
            and not self.setting("predict_output_dir")
            and not self._model_writes_own_predictions()
        ):
            raise ConfigError(
                "predict needs predict_output_dir (a directory for the output GeoTIFFs): add "
                "'predict_output_dir: <dir>' to the config or pass --predict_output_dir <dir>."
            )
        ckpt = self.setting("ckpt_path")
        if ckpt and ckpt not in _SPECIAL_CKPT_PATHS:
            check_checkpoint_file(ckpt)

    def _model_writes_own_predictions(self) -> bool:
        """Whether the configured model class writes its own outputs (``writes_own_predictions``).

        Such tasks (``EmbeddingGenerationTask``) need neither ``predict_output_dir`` nor the GeoTIFF writer.
        """
        model = self.setting("model")
        class_path = getattr(model, "class_path", None)
        if class_path is None and isinstance(model, Mapping):
            class_path = model.get("class_path")
        if not isinstance(class_path, str) or "." not in class_path:
            return False
        module_name, _, name = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            return False
        return bool(getattr(cls, "writes_own_predictions", False))

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
            setattr(self.trainer, attribute, self.setting(key))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Instantiate the trainer with the configured callbacks plus :meth:`default_callbacks`."""
        trainer_config = self.setting("trainer", instantiated=True) or {}
        configured = kwargs.get("callbacks", trainer_config.get("callbacks"))
        configured = (
            [] if configured is None else list(configured) if isinstance(configured, list) else [configured]
        )
        extra = self.default_callbacks(trainer_config, configured)
        if extra:
            kwargs["callbacks"] = list(configured) + extra
        return super().instantiate_trainer(**kwargs)

    def default_callbacks(self, trainer_config: Mapping[str, Any], configured: Sequence[Any]) -> list[Any]:
        """Callbacks the subcommand needs and the config does not list.

        ``fit``: :func:`default_checkpoint` when checkpointing is on and no ``ModelCheckpoint`` is
        configured. ``predict``: the GeoTIFF writer unless streaming or a writer is configured.
        """
        extra: list[Any] = []
        wants_checkpoint = trainer_config.get("enable_checkpointing") is not False
        has_checkpoint = any(isinstance(c, ModelCheckpoint) for c in configured)
        if self.subcommand in ("fit", None) and wants_checkpoint and not has_checkpoint:
            extra.append(default_checkpoint(self.model))
        has_writer = any(isinstance(c, BasePredictionWriter) for c in configured)
        has_writer = has_writer or bool(getattr(self.model, "writes_own_predictions", False))
        make_writer = getattr(self.model, "make_prediction_writer", None)  # e.g. GeoJSON for detection
        if self.subcommand == "predict" and not has_writer and callable(make_writer):
            extra.append(
                make_writer(
                    output_dir=self.setting("predict_output_dir"),
                    output_file_prefix=self.setting("output_file_prefix") or "",
                )
            )
        elif self.subcommand == "predict" and not self.setting("predict_streaming") and not has_writer:
            from terratorch.cli.prediction_writer import GeoTIFFPredictionWriter

            extra.append(
                GeoTIFFPredictionWriter(
                    output_dir=self.setting("predict_output_dir"),
                    output_file_prefix=self.setting("output_file_prefix") or "",
                    out_dtype=self.setting("out_dtype"),
                )
            )
        return extra

    # LightningCLI runs ``self.<subcommand>(**kwargs)`` when defined, else ``trainer.<subcommand>``.
    def fit(self, **kwargs: Any) -> Any:
        """``trainer.fit``; Ctrl-C or SIGTERM saves ``last.ckpt`` and raises :class:`TrainingInterrupted`."""
        return self._run_trainer("fit", kwargs)

    def validate(self, **kwargs: Any) -> Any:
        """``trainer.validate``, with a plain message for a file that is not a checkpoint."""
        return self._run_trainer("validate", kwargs)

    def test(self, **kwargs: Any) -> Any:
        """``trainer.test``, with a plain message for a file that is not a checkpoint."""
        return self._run_trainer("test", kwargs)

    def predict(self, **kwargs: Any) -> Any:
        """``trainer.predict`` (writer callback attached), or disk-to-disk streaming."""
        if not self.setting("predict_streaming"):
            if kwargs.get("return_predictions") is None:  # the writer has them; do not keep all in memory
                kwargs["return_predictions"] = False
            return self._run_trainer("predict", kwargs)
        from terratorch.cli.prediction_writer import stream_predict

        def streaming(**given: Any) -> Any:
            return stream_predict(
                self.model,
                self.datamodule,
                output_dir=self.setting("predict_output_dir"),
                output_file_prefix=self.setting("output_file_prefix") or "",
                out_dtype=self.setting("out_dtype"),
                ckpt_path=given.get("ckpt_path"),
                weights_only=given.get("weights_only"),
                device=self.trainer.strategy.root_device,
            )

        return self._run_trainer("predict", kwargs, call=streaming)

    def _run_trainer(self, name: str, kwargs: dict[str, Any], call: Any = None) -> Any:
        """Run ``trainer.<name>`` (or ``call``) turning interrupts and checkpoint read errors into ours."""
        try:
            return (call or getattr(self.trainer, name))(**kwargs)
        except SystemExit as stop:
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            # Lightning answers Ctrl-C with on_exception callbacks (our last.ckpt) and sys.exit(1),
            # and SIGTERM with on_exception and a SIGTERMException.
            if self.trainer.interrupted and (stop.code == 1 or isinstance(stop, SIGTERMException)):
                raise TrainingInterrupted(_interrupted_message(self.trainer, name)) from None
            raise
        except Exception as error:
            ckpt = kwargs.get("ckpt_path")
            if ckpt and not isinstance(error, OSError) and _raised_by_torch_load(error):
                raise checkpoint_load_error(ckpt, error) from None
            if ckpt and isinstance(error, KeyError) and str(error).strip("'\"") in _LIGHTNING_CHECKPOINT_KEYS:
                raise ConfigError(
                    f"ckpt_path: {ckpt} is a torch file but not a Lightning checkpoint (it has no "
                    f"{error} entry). --ckpt_path takes a file written by Lightning's ModelCheckpoint; "
                    "load a bare state dict into the backbone with model_args.backbone_ckpt_path instead."
                ) from None
            raise


#: Entries Lightning reads from every checkpoint; a KeyError naming one means the file is something else.
_LIGHTNING_CHECKPOINT_KEYS = frozenset({"pytorch-lightning_version", "state_dict", "epoch", "global_step"})


def _interrupted_message(trainer: Trainer, name: str) -> str:
    """Where an interrupted ``fit`` left its last checkpoint and how to resume (other loops save nothing)."""
    if name != "fit":
        return f"{name} stopped before the end."
    saved = [
        c.last_model_path
        for c in trainer.checkpoint_callbacks
        if getattr(c, "last_model_path", "") and os.path.isfile(c.last_model_path)
    ]
    if not saved:
        return f"fit stopped at epoch {trainer.current_epoch}; no last checkpoint was configured."
    return (
        f"fit stopped at epoch {trainer.current_epoch}; last checkpoint saved to {saved[0]} "
        f"(resume with --ckpt_path {saved[0]})."
    )


def _raised_by_torch_load(error: BaseException) -> bool:
    return any(
        frame.filename.endswith(os.path.join("torch", "serialization.py"))
        for frame in traceback.extract_tb(error.__traceback__)
    )


class MyTrainer(Trainer):
    """Lightning ``Trainer`` with a ``compute_statistics`` entry; failed checkpoint writes name the file."""

    def save_checkpoint(
        self, filepath: str | os.PathLike, weights_only: bool = False, storage_options: Any | None = None
    ) -> None:
        """``Trainer.save_checkpoint``; a failed write (disk full, file too large) names ``filepath``."""
        with naming_file(filepath, "the checkpoint"):
            super().save_checkpoint(filepath, weights_only=weights_only, storage_options=storage_options)

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

        from terratorch.utils import compute_mask_statistics, compute_statistics

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


# ----------------------------------------------------------------------------- default checkpointing


def default_checkpoint(task: Any) -> LastEpochModelCheckpoint:
    """The ``fit`` checkpointing: the best epoch on the task's monitored metric, plus ``last.ckpt``.

    The metric is ``task.monitor`` (default ``val/loss``) in ``task.monitor_mode`` (default min).
    The best checkpoint is ``best-epoch=NN.ckpt`` (no metric in the name: ``/`` in ``val/loss``
    would create sub-directories); ``last.ckpt`` is rewritten after every epoch and on Ctrl-C
    (:class:`~terratorch.cli.callbacks.LastEpochModelCheckpoint`, a Lightning ``ModelCheckpoint``).
    """
    return LastEpochModelCheckpoint(
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
    (``{epoch}``, also keeping ``last.ckpt`` at the last epoch) and a weights-only one
    (``{epoch}_state_dict``). A config without subcommand is returned unchanged. Works on a
    jsonargparse ``Namespace`` or a dict with dotted keys. (The CLI itself adds
    :func:`default_checkpoint` instead; this is for code that builds configs.)

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
    full = Namespace(filename="{epoch}", monitor="val/loss", save_last=True)
    weights = Namespace(filename="{epoch}_state_dict", monitor="val/loss", save_weights_only=True)
    for init_args in (full, weights):
        callbacks.append(Namespace(class_path="StateDictAwareModelCheckpoint", init_args=init_args))
    config[prefix + "callbacks"] = callbacks
    return config


# ----------------------------------------------------------------------------- building and running

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


def _only_help(argv: Sequence[str]) -> bool:
    """``fit --help`` without a config: short class names need not resolve, so skip importing tasks."""
    return any(a in ("-h", "--help") for a in argv) and not flag_values(argv, ("-c", "--config"))


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
    if not _only_help(argv):
        import_class_modules()
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


def _cli_class(only: Sequence[str] | None = None) -> type:
    """:class:`MyLightningCLI` (kept for callers of the wave-1 factory; ``only`` is passed per instance)."""
    del only
    return MyLightningCLI


def main(args: Sequence[str] | None = None) -> int:
    """Entry of ``terratorch fit|validate|test|predict|compute_statistics`` (``args`` start with it).

    Errors propagate; :func:`terratorch.__main__.run_friendly` prints them without a traceback
    and exits with :func:`terratorch.cli.errors.exit_code_for`.

    Returns:
        :data:`terratorch.exit_codes.OK`.
    """
    argv = [a for a in (sys.argv[1:] if args is None else args) if a != "--verbose"]
    if argv and argv[0] == "compute_statistics":
        from terratorch.cli.statistics import compute_statistics_main

        return compute_statistics_main(argv[1:])
    build_lightning_cli(argv, run=True)
    return exit_codes.OK
