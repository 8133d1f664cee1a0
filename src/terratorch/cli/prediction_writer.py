"""Writing predictions as GeoTIFFs that keep the georeference of their input files.

Two ways to predict, both used by ``terratorch predict``:

- :class:`GeoTIFFPredictionWriter` (default): a Lightning callback. The datamodule loads each input
  file whole; the task's ``predict_step`` returns ``prediction`` ``(B, H, W)`` (tiled in memory when
  the task has ``tiled_inference_parameters``), and the callback writes one GeoTIFF per input file
  with the input's CRS, transform and nodata. Per-image predictions (classification, scalar
  regression) go to one CSV instead.
- :func:`stream_predict` (``predict_streaming: true``): every input GeoTIFF is streamed from disk to
  disk strip by strip with :func:`terratorch.tasks.tiled_inference.tiled_inference_geotiff`, so
  memory is bounded by a strip of rows, never by the scene. The datamodule's band selection,
  ``constant_scale``, ``no_data_replace`` and normalisation are applied to every crop.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from terratorch.io import geotiff

__all__ = ["OUT_DTYPES", "GeoTIFFPredictionWriter", "load_checkpoint_weights", "stream_predict"]

OUT_DTYPES = geotiff.RASTER_DTYPES
"""Raster data types accepted as ``out_dtype``."""


def check_out_dtype(out_dtype: str | None) -> str | None:
    """Validate an ``out_dtype`` name (None = choose per prediction).

    Raises:
        ValueError: Unknown name; lists the valid ones.
    """
    return geotiff.check_raster_dtype(out_dtype)


def default_dtype(values: np.ndarray, num_classes: int | None) -> str:
    """``float32`` for values; for class maps the smallest unsigned type that leaves room for nodata."""
    if np.issubdtype(values.dtype, np.floating):
        return "float32"
    return geotiff.class_map_dtype(max(int(values.max(initial=0)), (num_classes or 0) - 1))


def output_nodata(
    src_nodata: float | None, dtype: str, class_map: bool, num_classes: int | None
) -> float | None:
    """Nodata value of an output raster (see :func:`terratorch.io.geotiff.output_nodata`).

    The input's nodata when it fits ``dtype`` (and, for class maps, is not a class index); otherwise
    NaN for floats or the dtype's maximum for integers. None when the input declares no nodata.
    """
    return geotiff.output_nodata(src_nodata, dtype, num_classes if class_map else None)


class GeoTIFFPredictionWriter(BasePredictionWriter):
    """Write each pixel-wise prediction as a GeoTIFF with its input's CRS, transform and nodata.

    Output names are ``<output_file_prefix><input stem>_pred.tif``; when two inputs share a stem
    (``a/x.tif``, ``b/x.tif``) in one run the later ones get ``_pred_1``, ``_pred_2``, ... so
    nothing is overwritten. Pixels that are nodata in any band of the input are nodata in the output.
    Per-image predictions (``(B,)`` for classification or scalar regression) are collected into
    ``<output_file_prefix>predictions.csv`` (``filename, prediction[, probability_<i>...]``).

    Args:
        output_dir: Directory for the outputs (created).
        output_file_prefix: Prefix of every output file name.
        out_dtype: Raster dtype (one of :data:`OUT_DTYPES`); default ``float32`` for values and the
            smallest unsigned integer type that holds the classes plus a nodata value for class maps.
    """

    def __init__(
        self, output_dir: str | Path, output_file_prefix: str = "", out_dtype: str | None = None
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.output_file_prefix = output_file_prefix
        self.out_dtype = check_out_dtype(out_dtype)
        self._used: set[str] = set()
        self._rows: list[list[Any]] = []
        self.written: list[Path] = []

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        """Reset the names used by the previous run and create ``output_dir``."""
        self._used.clear()
        self._rows.clear()
        self.written = []
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write the batch's predictions (``prediction["prediction"]`` ``(B, H, W)`` or ``(B, C, H, W)``)."""
        values, extra = _split_prediction(prediction)
        files = _batch_files(prediction, batch)
        if len(files) != values.shape[0]:
            raise ValueError(
                f"Batch {batch_idx} has {values.shape[0]} predictions for {len(files)} file names."
            )
        if values.dim() == 1:
            self._collect_rows(values, extra.get("probabilities"), files)
            return
        num_classes = getattr(pl_module, "num_classes", None)
        for value, file in zip(values, files):
            self.written.append(self.write_one(value, Path(file), num_classes))

    def write_one(self, prediction: Tensor, source: Path, num_classes: int | None = None) -> Path:
        """Write one ``(H, W)`` or ``(C, H, W)`` prediction georeferenced like ``source``; return its path.

        Raises:
            ValueError: The prediction's grid differs from the file's, or its values do not fit
                ``out_dtype``.
            terratorch.io.geotiff.GeoTIFFWriteError: The output cannot be written (names the file).
        """
        import rasterio

        values = prediction.detach().cpu().numpy()
        values = values[None] if values.ndim == 2 else values
        with geotiff.reading(source), rasterio.open(source) as src:
            if values.shape[1:] != (src.height, src.width):
                raise ValueError(
                    f"Prediction for {source} is {values.shape[1]}x{values.shape[2]} but the file is "
                    f"{src.height}x{src.width}: the predict transforms (test_transform) must not crop or "
                    "resize, so every output pixel maps to an input pixel."
                )
            class_map = not np.issubdtype(values.dtype, np.floating)
            dtype = self.out_dtype or default_dtype(values, num_classes)
            data = geotiff.cast_to_dtype(values, dtype, what=f"Prediction for {source}")
            nodata = output_nodata(src.nodata, dtype, class_map, num_classes)
            invalid = geotiff.invalid_pixels(src.read(), src.nodata) if nodata is not None else None
            profile = geotiff.georeferenced_profile(src, count=data.shape[0], dtype=dtype, nodata=nodata)
        if invalid is not None:
            data[:, invalid] = nodata
        return geotiff.write_array(self.output_dir / self._unique_name(source), data, profile)

    def _unique_name(self, source: Path) -> str:
        base = f"{self.output_file_prefix}{source.stem}_pred"
        name, counter = f"{base}.tif", 0
        while name in self._used:
            counter += 1
            name = f"{base}_{counter}.tif"
        self._used.add(name)
        return name

    def _collect_rows(self, values: Tensor, probabilities: Tensor | None, files: Sequence[str]) -> None:
        probs = probabilities.detach().cpu().tolist() if probabilities is not None else [None] * len(files)
        for value, prob, file in zip(values.detach().cpu().tolist(), probs, files):
            self._rows.append([file, value, *(prob or [])])

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """Write the CSV of per-image predictions, if any."""
        if not self._rows:
            return
        path = self.output_dir / f"{self.output_file_prefix}predictions.csv"
        width = max(len(row) for row in self._rows) - 2
        header = ["filename", "prediction", *(f"probability_{i}" for i in range(width))]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(self._rows)
        self.written.append(path)


def _split_prediction(prediction: Any) -> tuple[Tensor, dict[str, Any]]:
    if isinstance(prediction, Tensor):
        return prediction, {}
    if isinstance(prediction, Mapping) and isinstance(prediction.get("prediction"), Tensor):
        return prediction["prediction"], dict(prediction)
    raise TypeError(
        "predict_step must return a tensor or a dict with a 'prediction' tensor to be written as GeoTIFF; "
        f"got {type(prediction).__name__}."
    )


def _batch_files(prediction: Any, batch: Any) -> list[str]:
    """The source file of each prediction; multimodal batches use the first modality's files.

    Multimodal datasets give ``filename`` as ``{modality: [paths]}`` with the image modalities
    first (as in the reference), so the first entry is the georeference of the outputs.
    """
    files = prediction.get("filename") if isinstance(prediction, Mapping) else None
    if files is None and isinstance(batch, Mapping):
        files = batch.get("filename")
    if isinstance(files, Mapping):
        files = next((v for k, v in files.items() if k != "mask"), None)
    if files is None:
        raise ValueError(
            "Cannot write predictions: the batch has no 'filename' entry (the source file of each image, "
            "needed to copy its georeference). Use a TerraTorch GeoTIFF datamodule for predict."
        )
    return [str(f) for f in files]


# ----------------------------------------------------------------------------- streaming


def load_checkpoint_weights(
    task: torch.nn.Module, ckpt_path: str | Path, weights_only: bool | None = True
) -> None:
    """Load a Lightning checkpoint's ``state_dict`` into ``task`` (``weights_only=True`` unless opted out)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path: checkpoint file {str(path)!r} does not exist.")
    checkpoint = torch.load(
        path, map_location="cpu", weights_only=True if weights_only is None else weights_only
    )
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    task.load_state_dict(state)


_STREAM_KEYS = ("crop", "stride", "batch_size", "blend", "padding", "out_channels")


def streaming_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map a task's ``tiled_inference_parameters`` to :func:`tiled_inference_geotiff` arguments.

    Raises:
        ValueError: No parameters, non-square crops/strides, or keys streaming does not support.
    """
    if not params:
        raise ValueError(
            "predict_streaming needs the task's tiled_inference_parameters (crop size, stride, batch size), "
            "e.g. model.init_args.tiled_inference_parameters: {crop: 224, stride: 192, batch_size: 16}."
        )
    given = dict(params)
    given.pop("verbose", None)
    for axis_key, key in (("h_crop", "crop"), ("h_stride", "stride")):
        h_value, w_value = given.pop(axis_key, None), given.pop("w" + axis_key[1:], None)
        if h_value is not None or w_value is not None:
            if h_value != w_value:
                raise ValueError(
                    f"predict_streaming needs square crops: {axis_key}={h_value} differs from "
                    f"w{axis_key[1:]}={w_value}."
                )
            given[key] = h_value
    unknown = sorted(set(given) - set(_STREAM_KEYS))
    if unknown:
        raise ValueError(
            f"tiled_inference_parameters {unknown} are not supported by predict_streaming; "
            f"valid: {list(_STREAM_KEYS)}."
        )
    return given


def _dataset_files(dataset: Any) -> list[Path]:
    samples = getattr(dataset, "samples", None)
    if samples and isinstance(samples[0], Mapping):
        raise ValueError(
            "predict_streaming reads one GeoTIFF per sample; multimodal datamodules give several files per "
            "sample. Predict without predict_streaming (tiled_inference_parameters still tile each batch)."
        )
    if samples is not None:
        return [Path(s[0]) for s in samples]
    files = getattr(dataset, "files", None)
    if files is None:
        raise ValueError(
            f"predict_streaming needs a TerraTorch GeoTIFF datamodule; {type(dataset).__name__} "
            "lists no files."
        )
    return [Path(f) for f in files]


def _preprocess_for(dataset: Any, datamodule: Any, src_nodata: float | None) -> Any:
    """Crop preprocessing equal to the dataset + datamodule path: nodata, ``constant_scale``, normalise."""
    scale = float(getattr(dataset, "constant_scale", 1.0))
    replace = getattr(dataset, "no_data_replace", None)

    def preprocess(crops: Tensor) -> Tensor:
        values, _ = geotiff.scale_and_fill(crops, scale=scale, nodata=src_nodata, fill=replace)
        return datamodule.normalize(values)

    return preprocess


def stream_predict(
    task: Any,
    datamodule: Any,
    *,
    output_dir: str | Path,
    output_file_prefix: str = "",
    out_dtype: str | None = None,
    ckpt_path: str | Path | None = None,
    weights_only: bool | None = True,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Predict every file of the datamodule's predict split disk-to-disk with streaming tiled inference.

    Args:
        task: A pixel-wise TerraTorch task with ``tiled_inference_parameters``.
        datamodule: A TerraTorch GeoTIFF datamodule with ``predict_data_root``.
        output_dir, output_file_prefix, out_dtype: As for :class:`GeoTIFFPredictionWriter`.
        ckpt_path: Checkpoint whose weights are loaded first.
        weights_only: ``torch.load`` safety switch (True unless the user opts out).
        device: Where crops and the model run.

    Returns:
        The written GeoTIFF paths, in input order.
    """
    from terratorch.tasks.tiled_inference import tiled_inference_geotiff

    params = streaming_parameters(getattr(task, "tiled_inference_parameters", None))
    if getattr(datamodule, "expand_temporal_dimension", False):
        raise ValueError(
            "predict_streaming does not support expand_temporal_dimension (multi-temporal) data."
        )
    if ckpt_path is not None:
        load_checkpoint_weights(task, ckpt_path, weights_only)
    datamodule.setup("predict")
    dataset = datamodule.predict_dataset
    positions = getattr(dataset, "band_positions", None)
    bands = [p + 1 for p in positions] if positions is not None else None
    output = "argmax" if getattr(task, "has_classes", False) else "raw"
    task.eval().to(device)
    writer = GeoTIFFPredictionWriter(output_dir, output_file_prefix, check_out_dtype(out_dtype))
    writer.on_predict_start(None, task)

    def forward(crops: Tensor) -> Tensor:
        return task(crops).output

    written = []
    for source in _dataset_files(dataset):
        written.append(writer.output_dir / writer._unique_name(source))
        tiled_inference_geotiff(
            forward,
            source,
            written[-1],
            bands=bands,
            preprocess=_preprocess_for(dataset, datamodule, geotiff.read_header(source).nodata),
            output=output,
            out_dtype=writer.out_dtype,
            device=device,
            progress=False,
            **params,
        )
    return written
