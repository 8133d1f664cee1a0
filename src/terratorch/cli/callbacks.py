"""Callbacks of the CLI: checkpointing with a true ``last.ckpt``, and the config-saving callback.

:class:`StateDictAwareModelCheckpoint` is the reference's checkpoint callback for keeping a full
checkpoint and a weights-only one side by side (Lightning refuses two ``ModelCheckpoint``
callbacks with the same state key, so ``save_weights_only`` is made part of the key). With
``save_last`` it also keeps ``last.ckpt`` at the last finished epoch, which plain
``ModelCheckpoint`` (Lightning 2.6) does not: there ``last.ckpt`` is only rewritten when a top-k
checkpoint is, so it follows the best epoch. :class:`StudioDeploySaveConfigCallback` saves
``config.yaml`` and the inference-ready ``config_deploy.yaml``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

from terratorch.cli._checkpoint import ModelCheckpoint as LastEpochModelCheckpoint
from terratorch.cli.errors import naming_file

__all__ = [
    "LastEpochModelCheckpoint",
    "StateDictAwareModelCheckpoint",
    "StudioDeploySaveConfigCallback",
    "clean_config_for_deployment_and_dump",
    "deployment_config",
]


class StateDictAwareModelCheckpoint(LastEpochModelCheckpoint):
    """``ModelCheckpoint`` with ``save_weights_only`` in its state key and a ``last.ckpt`` of the last epoch.

    Two instances that differ only in ``save_weights_only`` (e.g. ``{epoch}`` and
    ``{epoch}_state_dict``) can be used together. With ``save_last``, ``last.ckpt`` holds the last
    finished epoch and the Ctrl-C step (see :data:`LastEpochModelCheckpoint`).

    Args:
        save_best_only: keep only the best checkpoint (sets ``save_top_k`` to 1).
        Other arguments: as :class:`lightning.pytorch.callbacks.ModelCheckpoint`.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | None = None,
        save_top_k: int = 1,
        save_best_only: bool = False,
        mode: str = "min",
        save_weights_only: bool = False,
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            verbose=verbose,
            save_last=save_last,
            save_top_k=1 if save_best_only else save_top_k,
            save_weights_only=save_weights_only,
            mode=mode,
            auto_insert_metric_name=auto_insert_metric_name,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=save_on_train_epoch_end,
            enable_version_counter=enable_version_counter,
        )

    @property
    def state_key(self) -> str:
        """Lightning's checkpoint state key plus ``save_weights_only``."""
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
            save_weights_only=self.save_weights_only,
        )


class StudioDeploySaveConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` and, with ``deploy_config_file`` (default), ``config_deploy.yaml`` for inference.

    Also copies the original config file into the log directory under its own name when that
    differs from ``config.yaml``. Unlike the reference, ``config.yaml`` is written even when
    ``deploy_config_file`` is false (the reference then writes no config at all), and a config
    given as a dict (no config file) works. A failed write names the file.

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
        log_dir = trainer.log_dir or trainer.default_root_dir
        if self.save_to_log_dir and log_dir is None:
            raise RuntimeError(
                "log_dir was none: the trainer has neither a logger nor default_root_dir to save "
                "config.yaml into. Set trainer.default_root_dir (or a logger) in the config."
            )
        with naming_file(os.path.join(log_dir or ".", self.config_filename), "the config"):
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
            with naming_file(path, "the deployment config"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(deployment_config(resolved), sort_keys=False))
        if self.config_path_original and os.path.isfile(self.config_path_original):
            self.config_path_new = os.path.join(log_dir, self.config_file_original)
            if os.path.abspath(self.config_path_original) != os.path.abspath(self.config_path_new):
                with naming_file(self.config_path_new, "the config copy"):
                    shutil.copyfile(self.config_path_original, self.config_path_new)


def deployment_config(config: dict) -> dict:
    """A copy of a resolved fit config made for inference (the ``config_deploy.yaml`` content).

    Drops ``ckpt_path``, ``optimizer``, ``lr_scheduler``, ``verbose``, top-level ``ModelCheckpoint`` /
    ``StateDictModelCheckpoint`` entries, the trainer's callbacks and
    ``default_root_dir``; turns the logger off, sets ``precision: 16-mixed`` and switches the
    backbone's pretrained-weights download off (the fine-tuned checkpoint holds the weights).
    """
    import copy

    deploy = copy.deepcopy(config)
    for key in (
        "ckpt_path",
        "optimizer",
        "lr_scheduler",
        "verbose",
        "ModelCheckpoint",
        "StateDictModelCheckpoint",
    ):
        deploy.pop(key, None)
    trainer = deploy.setdefault("trainer", {})
    trainer["logger"] = False
    trainer.pop("callbacks", None)
    trainer.pop("default_root_dir", None)
    trainer["precision"] = "16-mixed"
    model_args = ((deploy.get("model") or {}).get("init_args") or {}).get("model_args")
    if isinstance(model_args, dict):
        for key in ("pretrained", "backbone_pretrained"):
            if key in model_args:
                model_args[key] = False
                break
    return deploy


def clean_config_for_deployment_and_dump(config: dict[str, Any]) -> str:
    """YAML text of :func:`deployment_config` applied to a resolved config (``config`` is not modified).

    Drops ``ckpt_path``, ``optimizer``, ``lr_scheduler``, ``verbose``, top-level
    ``ModelCheckpoint``/``StateDictModelCheckpoint`` entries, the trainer's callbacks and
    ``default_root_dir``; turns the logger off, sets ``precision: 16-mixed`` and the backbone's
    ``pretrained`` (or ``backbone_pretrained``) to false.
    """
    import yaml

    return yaml.safe_dump(deployment_config(config))
