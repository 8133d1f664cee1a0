"""Predicting from Python with a model built exactly as ``terratorch predict`` builds it.

:class:`LightningInferenceModel` is the reference's ``terratorch.cli_tools.LightningInferenceModel``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from terratorch.cli.custom_writer import flatten
from terratorch.cli.errors import check_checkpoint_file, checkpoint_load_error

__all__ = ["LightningInferenceModel"]


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
            self.model.model.load_state_dict(network_weights(checkpoint_path))
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
        """Build task, datamodule and trainer from a CLI config (through ``build_lightning_cli``).

        Args:
            config_path: YAML config (e.g. the ``config_deploy.yaml`` written by ``fit``).
            checkpoint_path: Weights to load (see the class).
            predict_dataset_bands: Bands of the files to predict (sets the datamodule's
                ``predict_dataset_bands``).
            predict_output_bands: Bands the model receives from them (``predict_output_bands``).
        """
        from terratorch.cli.lightning import build_lightning_cli

        if checkpoint_path:
            check_checkpoint_file(checkpoint_path, key="checkpoint_path")  # before building anything
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


def network_weights(checkpoint_path: str | Path) -> dict[str, Any]:
    """The network's state dict from a checkpoint: unwrap ``state_dict``, drop the task's ``model.``.

    Raises:
        ConfigError: The file is not a checkpoint torch can load safely.
    """
    from terratorch.utils import remove_unexpected_prefix

    check_checkpoint_file(checkpoint_path, key="checkpoint_path")
    try:
        weights = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # names the file already (permissions, I/O error)
    except Exception as error:  # the unpickler raises anything from UnpicklingError to IndexError
        raise checkpoint_load_error(checkpoint_path, error, key="checkpoint_path") from None
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
