"""TerraTorch's ``ModelCheckpoint``: Lightning's, with a ``last.ckpt`` that is always the latest state.

Lightning 2.6 rewrites ``last.ckpt`` only when a top-k checkpoint is saved, so with a monitored
metric it follows the best epoch: after a run whose metric stopped improving, resuming from
``last.ckpt`` would restart from an early epoch. This subclass also writes it when the metric
did not improve, and when ``fit`` is interrupted by Ctrl-C.

It keeps Lightning's class name on purpose: it is the ``ModelCheckpoint`` that ``terratorch fit``
adds by default where the reference (and Lightning) add a plain ``ModelCheckpoint``, and code or
tests that list ``type(callback).__name__`` see the same name. The module is private so that
``class_path: ModelCheckpoint`` in configs still means Lightning's class (jsonargparse skips
private modules when it resolves short names); import it as
:class:`terratorch.cli.callbacks.LastEpochModelCheckpoint`. It relies on a few of Lightning's
``ModelCheckpoint`` internals (``_save_last_checkpoint`` and the checks that guard it), which
``tests/cli/test_checkpoints.py`` exercises end to end.
"""

from __future__ import annotations

import os

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``save_last`` keeps ``last.ckpt`` at the latest epoch.

    With ``save_last``, ``last.ckpt`` is rewritten at the end of every epoch (also when the
    monitored metric did not improve) and when training is interrupted by Ctrl-C (SIGINT) or
    SIGTERM, so
    ``--ckpt_path last.ckpt`` resumes where training stopped; the best checkpoint stays a separate
    file. ``save_last="link"`` links to the top-k file only when that file was written at the same
    step, and writes a real file otherwise. Arguments: as Lightning's ``ModelCheckpoint``.
    """

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save top-k as Lightning does, then make sure ``last.ckpt`` holds this epoch."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save top-k as Lightning does, then make sure ``last.ckpt`` holds this step."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """On Ctrl-C or SIGTERM during ``fit``, write ``last.ckpt`` before Lightning exits."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            self.save_last_now(trainer)

    def save_last_now(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` for the current step unless ``save_last`` is off or this step is saved already.

        Nothing is written outside ``fit``, during the sanity check, with ``fast_dev_run`` or when
        no training step was taken since the last save.
        """
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.save_last == "link":
            # Lightning would link to the newest top-k file, which is older than this step.
            path = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
            if trainer.is_global_zero and os.path.islink(path):
                os.remove(path)  # writing through the link would overwrite the best checkpoint
            self.last_model_path = path
            self._save_checkpoint(trainer, path)
            return
        self._save_last_checkpoint(trainer, candidates)
