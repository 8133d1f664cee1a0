"""Callbacks the CLI configs can name by their short class name.

:class:`StateDictAwareModelCheckpoint` is the reference's checkpoint callback for keeping a full
checkpoint and a weights-only one side by side: Lightning refuses two ``ModelCheckpoint``
callbacks with the same state key, so ``save_weights_only`` is made part of the key.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["StateDictAwareModelCheckpoint"]


class StateDictAwareModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose state key includes ``save_weights_only``.

    Two instances that differ only in ``save_weights_only`` (e.g. ``{epoch}`` and
    ``{epoch}_state_dict``) can then be used together.

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
