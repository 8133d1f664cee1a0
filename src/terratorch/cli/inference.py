"""Predicting from Python (a notebook, a script) with a model built as ``terratorch predict`` builds it.

:class:`LightningInferenceModel` is the reference's ``terratorch.cli_tools.LightningInferenceModel``.
Inference runs the task's own ``predict_step`` on batches of the datamodule's predict dataloader,
normalised by the datamodule's ``on_after_batch_transfer`` hook (its transforms), and tiled when the
task has ``tiled_inference_parameters`` -- the same computation as ``trainer.predict`` but without a
Trainer, so it works in any process, on CPU or GPU, and can stream batch by batch
(:meth:`LightningInferenceModel.iter_predictions`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from terratorch.cli.custom_writer import flatten
from terratorch.cli.errors import ConfigError, check_checkpoint_file, checkpoint_load_error

__all__ = ["LightningInferenceModel", "checkpoint_task_class", "network_weights"]

#: Datamodule attributes holding the folder to predict (the reference's name first, then ours).
_ROOT_ATTRIBUTES = ("predict_root", "predict_data_root")


class LightningInferenceModel:
    """Predict from Python with a model built exactly as ``terratorch predict`` builds it.

    Build it with :meth:`from_config` (a fit/deploy config and a checkpoint) or
    :meth:`from_task_and_datamodule`, then call :meth:`inference` on one file or
    :meth:`inference_on_dir` on a folder. The trainer is kept for the reference's API (prediction
    writer callbacks are removed from it) but not used: batches go straight through the task's
    ``predict_step``.

    Args:
        trainer: The CLI's trainer (or None). Its device and precision are used when ``device`` is
            not given.
        model: The task (a LightningModule whose ``.model`` holds the network).
        datamodule: Datamodule whose predict split reads the files.
        checkpoint_path: Lightning checkpoint or bare state dict loaded into ``model.model``
            (keys may carry the task's ``model.`` prefix; timm's ``_timm_module.`` residue is removed).
        device: Where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). Default: the trainer's
            device, else CUDA when available, else CPU.

    Raises:
        ConfigError: The checkpoint was saved from another task class (both are named), or does not
            fit the network (the first mismatching keys are named).
    """

    def __init__(
        self,
        trainer: Trainer | None,
        model: LightningModule,
        datamodule: LightningDataModule,
        checkpoint_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        self.trainer = trainer
        self.model = model
        self.datamodule = datamodule
        if checkpoint_path:
            load_checkpoint_into(model, checkpoint_path)
        if trainer is not None:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, BasePredictionWriter)]
        self.device = _resolve_device(device, trainer)

    @classmethod
    def from_config(
        cls,
        config_path: str | Path,
        checkpoint_path: str | Path | None = None,
        predict_dataset_bands: list[str] | None = None,
        predict_output_bands: list[str] | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> LightningInferenceModel:
        """Build task and datamodule from a CLI config (through ``build_lightning_cli``), as ``predict`` does.

        Args:
            config_path: YAML config (e.g. the ``config_deploy.yaml`` written by ``fit``).
            checkpoint_path: Weights to load (see the class).
            predict_dataset_bands: Bands of the files to predict (sets the datamodule's
                ``predict_dataset_bands``).
            predict_output_bands: Bands the model receives from them (``predict_output_bands``).
            device: See the class.

        Raises:
            FileNotFoundError: ``config_path`` or ``checkpoint_path`` does not exist.
            ConfigError: The config does not parse, or the checkpoint does not fit the task.
        """
        from terratorch.cli.lightning import build_lightning_cli

        if not Path(config_path).is_file():
            raise FileNotFoundError(f"config_path: config file {str(config_path)!r} does not exist.")
        if checkpoint_path:
            check_checkpoint_file(checkpoint_path, key="checkpoint_path")  # before building anything
        arguments = ["--config", str(config_path)]
        if predict_dataset_bands is not None:
            arguments += ["--data.init_args.predict_dataset_bands", _yaml_list(predict_dataset_bands)]
        if predict_output_bands is not None:
            arguments += ["--data.init_args.predict_output_bands", _yaml_list(predict_output_bands)]
        cli = build_lightning_cli(arguments, run=False)
        trainer = cli.trainer
        trainer.logger = None  # no metrics logging while predicting
        return cls(trainer, cli.model, cli.datamodule, checkpoint_path=checkpoint_path, device=device)

    @classmethod
    def from_task_and_datamodule(
        cls,
        task: LightningModule,
        datamodule: LightningDataModule,
        checkpoint_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> LightningInferenceModel:
        """Wrap an existing task and datamodule (no trainer is created)."""
        return cls(None, task, datamodule, checkpoint_path=checkpoint_path, device=device)

    # -- inference ---------------------------------------------------------------------------------
    def iter_predictions(
        self, data_root: str | Path | None = None
    ) -> Iterator[tuple[torch.Tensor, list[str]]]:
        """Predict the predict split batch by batch: yields ``(predictions on CPU, file names)``.

        Memory stays bounded by one batch, so this suits folders too large for
        :meth:`inference_on_dir`, which concatenates everything.

        Args:
            data_root: Folder to predict instead of the configured predict root (for multimodal
                datamodules, the same folder for every modality).

        Raises:
            ConfigError: No folder to predict is configured or given.
            FileNotFoundError: The folder holds no file matching the datamodule's ``img_grep``.
        """
        from lightning.pytorch.utilities import move_data_to_device

        self._set_predict_root(data_root)
        self.datamodule.setup("predict")
        loader = self.datamodule.predict_dataloader()
        task = self.model.to(self.device)
        was_training = task.training
        task.eval()
        task.on_predict_start()  # the hooks trainer.predict calls (e.g. embedding writers open/close)
        task.on_predict_epoch_start()
        try:
            with torch.inference_mode(), self._precision_context():
                for batch_idx, batch in enumerate(loader):
                    if batch_idx == 0:
                        self._check_channels(batch)
                    batch = move_data_to_device(batch, self.device)
                    batch = self.datamodule.on_after_batch_transfer(batch, 0)
                    task.on_predict_batch_start(batch, batch_idx)
                    output = task.predict_step(batch, batch_idx)
                    task.on_predict_batch_end(output, batch, batch_idx)
                    if output is None:  # the task wrote its outputs itself (EmbeddingGenerationTask)
                        yield None, _batch_files(batch)
                        continue
                    tensor, files = _prediction_and_files(output)
                    yield tensor.cpu(), files
            task.on_predict_epoch_end()
        finally:
            task.on_predict_end()
            task.train(was_training)

    def inference_on_dir(self, data_root: str | Path | None = None) -> tuple[torch.Tensor, list[str]]:
        """Predict every file of the datamodule's predict split.

        Args:
            data_root: Folder to predict instead of the configured predict root.

        Returns:
            ``(predictions concatenated over batches, input file names in the same order)``; the
            predictions are an empty tensor for tasks that write their own outputs.

        Raises:
            ValueError: The predict split is empty.
        """
        values, names = [], []
        for tensor, files in self.iter_predictions(data_root):
            if tensor is not None:
                values.append(tensor)
            names.append(files)
        if not names:
            raise ValueError(
                "No predictions: the predict split is empty (check the predict data root and img_grep)."
            )
        if not values:  # the task wrote its outputs to disk (embeddings)
            return torch.empty(0), flatten(names)
        return torch.cat(values), flatten(names)

    def inference(self, file_path: str | Path) -> torch.Tensor:
        """Predict one file; returns its prediction without the batch dimension.

        Raises:
            FileNotFoundError: ``file_path`` does not exist.
        """
        import tempfile

        path = Path(file_path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"inference: file {str(file_path)!r} does not exist.")
        with tempfile.TemporaryDirectory() as tmpdir:
            os.symlink(path, os.path.join(tmpdir, path.name))
            prediction, _ = self.inference_on_dir(tmpdir)
            return prediction.squeeze(0)

    # -- helpers -----------------------------------------------------------------------------------
    def _set_predict_root(self, data_root: str | Path | None) -> None:
        """Point the datamodule at ``data_root`` (or check that it has a predict folder configured)."""
        datamodule = self.datamodule
        if data_root:
            modalities = getattr(datamodule, "modalities", None)
            root: Any = {m: str(data_root) for m in modalities} if modalities else str(data_root)
            datamodule.predict_root = root  # the reference datamodules' attribute
            if hasattr(datamodule, "predict_data_root"):  # ours
                datamodule.predict_data_root = root
            if getattr(datamodule, "predict_dataset", None) is not None:
                datamodule.predict_dataset = None  # built again from the new root by setup()
            return
        known = [a for a in _ROOT_ATTRIBUTES if hasattr(datamodule, a)]
        if known and not any(getattr(datamodule, a) for a in known):
            raise ConfigError(
                "Nothing to predict: the datamodule has no predict folder. Set "
                "data.init_args.predict_data_root in the config, or pass a folder to inference_on_dir(...) "
                "(or a file to inference(...))."
            )

    def _check_channels(self, batch: Any) -> None:
        """Before normalising: the files' band count must be the model's (both counts are named)."""
        from terratorch.tasks.base import check_channels

        image = batch.get("image") if isinstance(batch, Mapping) else None
        model_args = getattr(self.model, "model_args", None)
        if not isinstance(image, torch.Tensor) or image.dim() < 4 or not isinstance(model_args, Mapping):
            return
        datamodule = self.datamodule
        bands = getattr(datamodule, "predict_output_bands", None) or getattr(datamodule, "output_bands", None)
        try:
            check_channels(model_args, bands, data_channels=int(image.shape[1]))
        except ValueError as error:
            raise ValueError(f"The files to predict do not fit the model: {error}") from None

    def _precision_context(self) -> Any:
        """The trainer's predict precision context (autocast for ``*-mixed``), or a no-op."""
        import contextlib

        plugin = getattr(getattr(self.trainer, "strategy", None), "precision_plugin", None)
        if plugin is None or self.trainer is None or self.device != self.trainer.strategy.root_device:
            return contextlib.nullcontext()
        return plugin.predict_step_context()


def _resolve_device(device: str | torch.device | None, trainer: Trainer | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if trainer is not None:
        return trainer.strategy.root_device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _yaml_list(values: list[str]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


# ----------------------------------------------------------------------------- checkpoints


def _read_checkpoint(checkpoint_path: str | Path) -> Any:
    """``torch.load`` (weights only, on CPU) with our messages for files that are not checkpoints."""
    check_checkpoint_file(checkpoint_path, key="checkpoint_path")
    try:
        return torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # names the file already (permissions, I/O error)
    except Exception as error:  # the unpickler raises anything from UnpicklingError to IndexError
        raise checkpoint_load_error(checkpoint_path, error, key="checkpoint_path") from None


def _strip_task_prefix(weights: Mapping[str, Any]) -> dict[str, Any]:
    from terratorch.utils import remove_unexpected_prefix

    weights = remove_unexpected_prefix(weights)
    return {(k[len("model.") :] if k.startswith("model.") else k): v for k, v in weights.items()}


def network_weights(checkpoint_path: str | Path) -> dict[str, Any]:
    """The network's state dict from a checkpoint: unwrap ``state_dict``, drop the task's ``model.``.

    Raises:
        ConfigError: The file is not a checkpoint torch can load safely.
    """
    weights = _read_checkpoint(checkpoint_path)
    if isinstance(weights, Mapping) and "state_dict" in weights:
        weights = weights["state_dict"]
    return _strip_task_prefix(weights)


def checkpoint_task_class(checkpoint: Mapping[str, Any]) -> str | None:
    """The task class a Lightning checkpoint was saved from, when it can be told; else None.

    A recorded ``hyper_parameters._class_path`` wins. Otherwise the saved hyperparameter names are
    matched against the constructor parameters of the built-in tasks (each task saves exactly its
    own); a name set shared by several tasks, or matching none, gives None. Plain ``torch.save``
    state dicts have no hyperparameters and give None.
    """
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, Mapping) else None
    if not isinstance(hparams, Mapping):
        return None
    recorded = hparams.get("_class_path")
    if recorded:
        return str(recorded)
    import terratorch.tasks as tasks

    saved = set(hparams) - {"loss"}  # a loss module is not saved
    matches = []
    for name in tasks.__all__:
        if name == "TerraTorchTask":
            continue
        cls = getattr(tasks, name)
        if _hparam_names(cls) == saved:
            matches.append(f"{cls.__module__}.{cls.__qualname__}")
    return matches[0] if len(matches) == 1 else None


def _hparam_names(cls: type) -> set[str]:
    """Constructor parameters a task saves as hyperparameters (as ``TerraTorchTask`` does)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return {
        n
        for n, p in params.items()
        if n not in {"self", "model", "loss"} and p.kind is p.POSITIONAL_OR_KEYWORD
    }


def load_checkpoint_into(task: LightningModule, checkpoint_path: str | Path) -> None:
    """Load a checkpoint's network weights into ``task.model``, checking it comes from the same task class.

    Raises:
        ConfigError: The checkpoint was saved from another task class (both are named), or its
            weights do not fit the network (the first mismatching keys are named).
    """
    from terratorch.models.utils import load_state_dict_checked

    checkpoint = _read_checkpoint(checkpoint_path)
    saved_from = checkpoint_task_class(checkpoint)
    ours = f"{type(task).__module__}.{type(task).__qualname__}"
    same = saved_from is None or saved_from.rsplit(".", 1)[-1] == type(task).__name__
    if not same and _hparam_names(type(task)) != _hparam_names_of(saved_from):
        raise ConfigError(
            f"checkpoint_path: {checkpoint_path} was saved from a {saved_from} but the config builds a "
            f"{ours}. Use the config the checkpoint was trained with (its config_deploy.yaml), or a "
            f"checkpoint of a {type(task).__name__}."
        )
    is_lightning = isinstance(checkpoint, Mapping) and "state_dict" in checkpoint
    weights = checkpoint["state_dict"] if is_lightning else checkpoint
    try:
        load_state_dict_checked(task.model, _strip_task_prefix(weights))
    except RuntimeError as error:
        raise ConfigError(
            f"checkpoint_path: the weights in {checkpoint_path} do not fit the network of the "
            f"{type(task).__name__} built from the config"
            + (f" (the checkpoint was saved from a {saved_from})" if saved_from else "")
            + f": {error}"
        ) from None


def _hparam_names_of(class_path: str) -> set[str] | None:
    """:func:`_hparam_names` of the class at ``class_path`` (None when it cannot be imported)."""
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        return _hparam_names(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, ValueError):
        return None


def _batch_files(batch: Any) -> list[str]:
    """The file names of an input batch (its ``filename``; the first modality's for multimodal data)."""
    files = batch.get("filename") if isinstance(batch, Mapping) else None
    if isinstance(files, Mapping):
        files = next(iter(files.values()))
    return [str(f) for f in files] if files is not None else []


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
