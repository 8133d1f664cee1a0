"""The model side of ``terratorch serve``: one fine-tuned task, one file in, one prediction out.

:class:`Predictor` builds the task, datamodule and trainer from a fit config exactly as
``terratorch predict`` does (:func:`terratorch.cli.lightning.build_lightning_cli`), loads the
checkpoint's ``state_dict`` into the task (strict, ``weights_only``), and then repeats the predict
loop's steps for request files: the datamodule's predict dataset reads the file (band selection,
``constant_scale``, ``no_data_replace``, ``test_transform``), the batch is moved to the device and
normalised by the datamodule, the task's ``predict_step`` runs (tiled when the task has
``tiled_inference_parameters``), and :class:`terratorch.cli.prediction_writer.GeoTIFFPredictionWriter`
writes the GeoTIFF with the input's CRS, transform and nodata. The result therefore equals the
file ``terratorch predict`` writes for the same config, checkpoint and input.

Request problems raise :class:`RequestError`, which carries the HTTP status the server answers with.
"""

from __future__ import annotations

import copy
import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["TIFF_MAGIC", "PerImagePrediction", "Predictor", "RequestError"]

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""First four bytes of a TIFF or BigTIFF file (little and big endian)."""


class RequestError(Exception):
    """A request the server cannot serve; ``status_code`` is the HTTP answer, ``detail`` says why.

    Args:
        status_code: HTTP status (400 malformed, 404 unknown path, 413 too large, 415 not a
            GeoTIFF, 422 wrong content).
        detail: What was wrong and what would be valid.
    """

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class PerImagePrediction:
    """The prediction of a per-image task (classification, scalar regression) for one file.

    Attributes:
        prediction: Class index, value, or multi-label 0/1 list.
        probabilities: Class probabilities, when the task gives them.
    """

    prediction: Any
    probabilities: list[float] | None = None


def _to_python(value: torch.Tensor) -> Any:
    value = value.detach().cpu()
    return value.item() if value.dim() == 0 else value.tolist()


class Predictor:
    """A task and its datamodule, ready to predict single GeoTIFF files as ``terratorch predict`` would.

    Args:
        task: The TerraTorch task (a LightningModule with ``predict_step``).
        datamodule: A TerraTorch GeoTIFF datamodule (its predict dataset reads the files).
        device: Where the model runs.
        out_dtype: Raster type of the outputs (None: chosen per prediction, as in ``predict``).
        output_file_prefix: Prefix of the suggested output file name.
        precision_context: Factory of the context the forward pass runs in (the trainer's
            precision plugin ``predict_step_context``); None runs in plain float32.
        source: Where the model came from (config and checkpoint paths), for ``/metadata``.

    Raises:
        terratorch.cli.errors.ConfigError: The datamodule cannot read single files (not a
            TerraTorch GeoTIFF datamodule).
    """

    def __init__(
        self,
        task: Any,
        datamodule: Any,
        *,
        device: str | torch.device = "cpu",
        out_dtype: str | None = None,
        output_file_prefix: str = "",
        precision_context: Any = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        from terratorch.cli.errors import ConfigError
        from terratorch.cli.prediction_writer import check_out_dtype

        if not hasattr(datamodule, "build_dataset") or not hasattr(datamodule, "predict_data_root"):
            raise ConfigError(
                f"terratorch serve needs a TerraTorch GeoTIFF datamodule (e.g. "
                f"GenericNonGeoSegmentationDataModule) to read uploaded files; {type(datamodule).__name__} "
                "has no predict dataset built from predict_data_root."
            )
        self.task = task
        self.datamodule = datamodule
        self.device = torch.device(device)
        self.out_dtype = check_out_dtype(out_dtype)
        self.output_file_prefix = output_file_prefix or ""
        self.precision_context = precision_context
        self.source = dict(source or {})
        self.task.eval().to(self.device)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_config(
        cls,
        config_path: str | Path,
        ckpt_path: str | Path | None = None,
        *,
        device: str | None = None,
        overrides: Sequence[str] = (),
    ) -> Predictor:
        """Build task, datamodule and trainer from a fit config as ``terratorch predict`` does.

        Args:
            config_path: The fit config (or the ``config_deploy.yaml`` that ``fit`` writes).
            ckpt_path: Lightning checkpoint whose ``state_dict`` is loaded into the task.
            device: ``cpu``, ``cuda``, ``cuda:1``, ...; None uses the trainer's device
                (``trainer.accelerator`` of the config).
            overrides: Extra command-line style arguments for the config (e.g.
                ``["--data.init_args.predict_dataset_bands", "[BLUE,GREEN]"]``).

        Raises:
            terratorch.cli.errors.ConfigError: Bad config or a file that is not a checkpoint.
            FileNotFoundError: The config or checkpoint does not exist.
        """
        from terratorch.cli.errors import check_checkpoint_file
        from terratorch.cli.lightning import build_lightning_cli

        config = Path(config_path)
        if not config.is_file():
            raise FileNotFoundError(f"--config: config file {str(config)!r} does not exist.")
        if ckpt_path is not None:
            check_checkpoint_file(ckpt_path, key="ckpt_path")  # before anything is built
        cli = build_lightning_cli(["--config", str(config), *overrides], run=False)
        trainer = cli.trainer
        if ckpt_path is not None:
            load_task_checkpoint(cli.model, ckpt_path)
        return cls(
            cli.model,
            cli.datamodule,
            device=device or trainer.strategy.root_device,
            out_dtype=getattr(trainer, "out_dtype", None),
            output_file_prefix=getattr(trainer, "output_file_prefix", None) or "",
            precision_context=trainer.precision_plugin.predict_step_context,
            source={"config": str(config), "ckpt_path": str(ckpt_path) if ckpt_path else None},
        )

    # ------------------------------------------------------------------ what the model expects

    @property
    def dataset_bands(self) -> list[Any] | None:
        """Bands stored in the files the model reads (``predict_dataset_bands``), or None (any)."""
        bands = getattr(self.datamodule, "predict_dataset_bands", None)
        return list(bands) if bands is not None else None

    @property
    def output_bands(self) -> list[Any] | None:
        """Bands the model receives, in order (``predict_output_bands``)."""
        bands = getattr(self.datamodule, "predict_output_bands", None)
        return list(bands) if bands is not None else None

    def expected_band_count(self) -> int | None:
        """Bands a request file must have (per time step for multi-temporal data), None if unstated."""
        if self.dataset_bands is not None:
            return len(self.dataset_bands)
        from terratorch.tasks.base import model_channels

        declared = model_channels(getattr(self.task, "model_args", None) or {})
        return declared[1] if declared else None

    def check_raster(self, path: Path, name: str) -> None:
        """Check that ``path`` is a GeoTIFF with the bands the model needs (headers only).

        Args:
            path: The file on the server.
            name: How the client named it (upload file name or request path), for messages.

        Raises:
            RequestError: 400 unreadable raster, 415 not a GeoTIFF, 422 wrong band count.
        """
        import rasterio
        from rasterio.errors import RasterioError

        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic not in TIFF_MAGIC:
            raise RequestError(
                415, f"{name} is not a TIFF file (it starts with {magic!r}); send a GeoTIFF (.tif) raster."
            )
        try:
            with rasterio.open(path) as src:
                driver, count = src.driver, src.count
        except RasterioError as error:
            message = str(error).replace(str(path), name)  # the client does not need our scratch path
            raise RequestError(
                400, f"{name} is a malformed GeoTIFF ({message}); send a complete GeoTIFF."
            ) from None
        if driver != "GTiff":
            raise RequestError(
                415, f"{name} is a {driver} raster; this server reads GeoTIFF (GTiff) files only."
            )
        expected = self.expected_band_count()
        if expected is None:
            return
        temporal = bool(getattr(self.datamodule, "expand_temporal_dimension", False))
        if self.dataset_bands is None:
            bad = count != expected
            need = f"{expected}"
        elif temporal:
            bad = count < expected or count % expected != 0
            need = f"a multiple of {expected}"
        else:
            bad = count < expected  # extra bands are ignored, as in ``terratorch predict``
            need = f"at least {expected}"
        if bad:
            listed = f" ({', '.join(str(b) for b in self.dataset_bands)})" if self.dataset_bands else ""
            raise RequestError(
                422,
                f"{name} has {count} bands but the model expects {need} bands{listed}; send a raster "
                "with those bands in that order.",
            )

    # ------------------------------------------------------------------ one request's sample

    def load_sample(self, path: Path, name: str | None = None) -> dict[str, Any]:
        """Read ``path`` with the datamodule's predict dataset: the sample ``terratorch predict`` sees.

        ``name`` is how the client named the file; messages use it instead of the server's path.

        Raises:
            RequestError: 422 when the dataset refuses the file (e.g. NaN pixels without
                ``no_data_replace``), 400 when it cannot be read.
        """
        from terratorch.io.geotiff import GeoTIFFError

        reader = copy.copy(self.datamodule)  # the shared datamodule is never modified
        reader.predict_data_root = str(path.parent)
        if hasattr(reader, "img_grep"):
            reader.img_grep = glob.escape(path.name)
        reader.predict_dataset = None
        try:
            dataset = reader.build_dataset("predict")
            return dataset[0]
        except GeoTIFFError as error:
            raise RequestError(400, str(error).replace(str(path), name or path.name)) from None
        except ValueError as error:
            message = str(error).replace(str(path), name or path.name)
            raise RequestError(422, f"the datamodule cannot read this file: {message}") from None

    # ------------------------------------------------------------------ a batch of samples

    def predict(self, samples: Sequence[Mapping[str, Any]]) -> list[torch.Tensor | PerImagePrediction]:
        """Predict samples in as few forward passes as their shapes allow (one per image shape).

        Returns:
            Per sample, in order: its ``(H, W)``/``(C, H, W)`` prediction on the CPU, or a
            :class:`PerImagePrediction` for per-image tasks.
        """
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, sample in enumerate(samples):
            groups.setdefault(tuple(sample["image"].shape), []).append(index)
        results: list[Any] = [None] * len(samples)
        for indexes in groups.values():
            outputs = self._forward([samples[i] for i in indexes])
            for index, output in zip(indexes, outputs):
                results[index] = output
        return results

    def _forward(self, samples: list[Mapping[str, Any]]) -> list[torch.Tensor | PerImagePrediction]:
        """One predict step over same-shaped samples, as the predict loop runs it."""
        from contextlib import nullcontext

        from terratorch.datamodules.base import collate_samples

        batch = collate_samples(list(samples), check_stackability=False)
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        batch = self.datamodule.on_after_batch_transfer(batch, 0)
        context = self.precision_context() if self.precision_context is not None else nullcontext()
        with torch.inference_mode(), context:
            output = self.task.predict_step(batch, 0)
        values = output["prediction"] if isinstance(output, Mapping) else output
        probabilities = output.get("probabilities") if isinstance(output, Mapping) else None
        height, width = batch["image"].shape[-2:]
        results: list[torch.Tensor | PerImagePrediction] = []
        for i in range(values.shape[0]):
            value = values[i].detach().cpu()
            if value.dim() >= 2 and tuple(value.shape[-2:]) == (height, width):
                results.append(value)
            else:
                probs = _to_python(probabilities[i]) if probabilities is not None else None
                results.append(PerImagePrediction(_to_python(value), probs))
        return results

    # ------------------------------------------------------------------ writing

    def output_name(self, name: str) -> str:
        """File name ``terratorch predict`` gives the prediction of input ``name``."""
        return f"{self.output_file_prefix}{Path(name).stem}_pred.tif"

    def write(self, prediction: torch.Tensor, source: Path, output_dir: Path) -> Path:
        """Write ``prediction`` georeferenced like ``source`` into ``output_dir``; return the file."""
        from terratorch.cli.prediction_writer import GeoTIFFPredictionWriter

        writer = GeoTIFFPredictionWriter(output_dir, out_dtype=self.out_dtype)
        output_dir.mkdir(parents=True, exist_ok=True)
        return writer.write_one(prediction, source, getattr(self.task, "num_classes", None))

    # ------------------------------------------------------------------ description

    def metadata(self) -> dict[str, Any]:
        """What the model is and expects (JSON-serialisable), for ``GET /metadata``."""
        task, datamodule = self.task, self.datamodule
        model_args = getattr(task, "model_args", None) or {}
        tiled = getattr(task, "tiled_inference_parameters", None)
        return {
            "task": type(task).__name__,
            "model_class": type(getattr(task, "model", task)).__name__,
            "model_factory": _plain(dict(getattr(task, "hparams", None) or {}).get("model_factory")),
            "backbone": _plain(model_args.get("backbone")),
            "datamodule": type(datamodule).__name__,
            "bands": {
                "dataset_bands": _plain(self.dataset_bands),
                "output_bands": _plain(self.output_bands),
                "expected_count": self.expected_band_count(),
                "expand_temporal_dimension": bool(getattr(datamodule, "expand_temporal_dimension", False)),
            },
            "num_classes": getattr(task, "num_classes", None),
            "class_names": _plain(getattr(task, "class_names", None)),
            "tiled_inference_parameters": _plain(dict(tiled)) if tiled else None,
            "out_dtype": self.out_dtype,
            "device": str(self.device),
            "source": self.source,
        }


def _plain(value: Any) -> Any:
    """``value`` with enums, paths and other objects turned into JSON-friendly strings."""
    from enum import Enum

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def load_task_checkpoint(task: torch.nn.Module, ckpt_path: str | Path) -> None:
    """Load a Lightning checkpoint's ``state_dict`` into ``task`` (strict, ``weights_only``).

    What ``terratorch predict --ckpt_path`` does before predicting.

    Raises:
        terratorch.cli.errors.ConfigError: The file is not a checkpoint torch can load safely, or
            its weights do not fit the task built from the config (the mismatch is listed).
    """
    from terratorch.cli.errors import ConfigError, checkpoint_load_error

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:  # the unpickler raises anything from UnpicklingError to IndexError
        raise checkpoint_load_error(ckpt_path, error, key="ckpt_path") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    if not isinstance(state, Mapping):
        raise ConfigError(f"ckpt_path: {ckpt_path} holds a {type(state).__name__}, not a state dict.")
    try:
        task.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(
            f"ckpt_path: the weights in {ckpt_path} do not fit the {type(task).__name__} built from the "
            f"config (was it trained with another config?): {error}"
        ) from None
