"""GeoTIFF helpers and the prediction writer with the reference's ``terratorch.cli_tools`` interface.

``CustomWriter`` writes what a task's ``predict_step`` returns: one GeoTIFF per input file, named
``<input stem>_<suffix>.tif`` and georeferenced like the input, with the input's nodata pixels set
to ``-1``. It accepts the reference's output formats (``(tensor, files)``, ``((tensor, suffix),
files)``, ``([(tensor, suffix), ...], files)``) and ours (``{"prediction": tensor, "filename":
files}``). The CLI's default writer is :class:`terratorch.cli.prediction_writer.GeoTIFFPredictionWriter`
(smallest fitting dtype, input nodata kept); this one is for code and configs that name
``CustomWriter``.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["CustomWriter", "flatten", "is_one_band", "open_tiff", "save_prediction", "write_tiff"]

logger = logging.getLogger("terratorch")

OUTPUT_NODATA = -1
"""Nodata value of the rasters :func:`save_prediction` writes (the reference's choice)."""


def flatten(list_of_lists: Iterable[Iterable[Any]]) -> list[Any]:
    """Concatenate an iterable of iterables into one list (``[[1, 2], [3]]`` -> ``[1, 2, 3]``)."""
    return list(itertools.chain.from_iterable(list_of_lists))


def open_tiff(fname: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a raster: ``(data (bands, H, W), rasterio profile dict)``.

    Raises:
        terratorch.io.geotiff.GeoTIFFError: ``fname`` is missing or not a readable raster (names it).
    """
    import rasterio

    from terratorch.io import geotiff

    with geotiff.reading(fname), rasterio.open(fname, "r") as src:
        return src.read(), dict(src.meta)


def is_one_band(img: np.ndarray | torch.Tensor) -> bool:
    """True for a single-band ``(H, W)`` image, False for ``(bands, H, W)``."""
    return len(img.shape) == 2


def write_tiff(img_wrt: np.ndarray, filename: str | os.PathLike[str], metadata: dict[str, Any]) -> Any:
    """Write ``(H, W)`` or ``(bands, H, W)`` as a GeoTIFF with ``metadata``; return ``filename``.

    ``metadata["count"]`` is set to the number of bands of ``img_wrt`` (the dict is updated in place,
    as in the reference). Values are cast to ``metadata["dtype"]`` when it is given.

    Raises:
        terratorch.io.geotiff.GeoTIFFWriteError: The file cannot be written (disk full, file too
            large, no permission); the message names it.
    """
    from terratorch.io import geotiff

    array = np.asarray(img_wrt)
    if is_one_band(array):
        array = array[None]
    metadata["count"] = array.shape[0]
    if metadata.get("dtype"):
        array = array.astype(metadata["dtype"], copy=False)
    geotiff.write_array(filename, array, metadata)
    return filename


def save_prediction(
    prediction: torch.Tensor | np.ndarray,
    input_file_name: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    dtype: str = "int16",
    suffix: str = "pred",
    output_file_name: str | None = None,
) -> str:
    """Write one prediction as ``<out_dir>/<stem>_<suffix>.tif`` georeferenced like its input file.

    Pixels where the input holds its nodata value in any band become ``-1`` (the output's nodata).
    The stem is the input's file name without extension, or ``output_file_name`` when given. Unlike
    the reference, NaN nodata is recognised, the written path is returned, and a prediction on
    another grid than the input's (e.g. a model predicting at a coarser resolution) is georeferenced
    over the input's footprint with a scaled pixel size (the reference fails on it).

    Args:
        prediction: ``(H, W)`` (or ``(bands, H, W)``) values for the input image.
        input_file_name: The GeoTIFF the prediction was made from (CRS, transform, nodata).
        out_dir: Output directory (must exist).
        dtype: Raster data type of the output.
        suffix: Appended to the stem after ``_``.
        output_file_name: Stem replacing the input's.
    """
    from terratorch.io import geotiff

    data, metadata = open_tiff(input_file_name)
    values = (
        prediction.detach().cpu().numpy() if isinstance(prediction, torch.Tensor) else np.asarray(prediction)
    )
    grid = values.shape[-2:]
    mask = geotiff.invalid_pixels(data, metadata.get("nodata"))
    if mask is not None:
        values = np.where(geotiff.resample_nearest(mask, grid), OUTPUT_NODATA, values)
    transform = geotiff.scaled_transform(metadata["transform"], data.shape[-2:], grid)
    metadata.update(count=1, dtype=dtype, compress="lzw", nodata=OUTPUT_NODATA)
    metadata.update(height=grid[0], width=grid[1], transform=transform)
    stem = output_file_name or Path(input_file_name).stem
    out_file = os.path.join(out_dir, f"{stem}_{suffix}.tif")
    logger.info("Saving output to %s", out_file)
    write_tiff(values, out_file, metadata)
    return out_file


class CustomWriter(BasePredictionWriter):
    """Write each prediction as a GeoTIFF beside the georeference of its input file.

    The output directory is ``output_dir`` or, when None, ``trainer.predict_output_dir`` (set by the
    CLI from ``predict_output_dir``); the data type is ``trainer.out_dtype`` (``int16`` for integer
    predictions and ``float32`` for float ones when the trainer has none). With
    ``trainer.output_file_prefix`` the output stem is that prefix, as in the reference; unlike the
    reference, later files of the same run that would get the same name are written as
    ``<prefix>_<input stem>_<suffix>.tif`` instead of overwriting the first. A bare tensor (no file
    names) is saved as ``<random>.pt``.

    Args:
        output_dir: Directory for the outputs (created when missing).
        write_interval: ``"batch"``, ``"epoch"`` or ``"batch_and_epoch"`` (Lightning's meaning).
    """

    def __init__(self, output_dir: str | None = None, write_interval: str = "epoch") -> None:
        super().__init__(write_interval)
        self.output_dir = output_dir
        self._written: set[str] = set()

    # -- settings taken from the trainer ---------------------------------------------------------
    def _output_dir(self, trainer: Any) -> str:
        output_dir = self.output_dir
        if output_dir is None:
            try:
                output_dir = trainer.predict_output_dir
            except AttributeError as err:
                raise ValueError(
                    "Output directory must be passed to CustomWriter(output_dir=...) or set as "
                    "predict_output_dir (the trainer's predict_output_dir attribute)."
                ) from err
        if output_dir is None:
            raise ValueError(
                "Output directory must be passed to CustomWriter(output_dir=...) or set as "
                "predict_output_dir."
            )
        os.makedirs(output_dir, exist_ok=True)
        return str(output_dir)

    @staticmethod
    def _dtype(trainer: Any, values: torch.Tensor) -> str:
        dtype = getattr(trainer, "out_dtype", None)
        if isinstance(dtype, str) and dtype:
            return dtype
        return "float32" if values.is_floating_point() else "int16"

    @staticmethod
    def _prefix(trainer: Any) -> str | None:
        prefix = getattr(trainer, "output_file_prefix", None)
        return prefix if isinstance(prefix, str) and prefix else None

    # -- writing ---------------------------------------------------------------------------------
    def _save_batch(
        self, trainer: Any, values: torch.Tensor, files: Sequence[str], output_dir: str, suffix: str = "pred"
    ) -> None:
        prefix = self._prefix(trainer)
        dtype = self._dtype(trainer, values)
        for value, file_name in zip(torch.unbind(values, dim=0), files, strict=False):
            stem = prefix
            if prefix is not None and f"{prefix}_{suffix}" in self._written:
                stem = f"{prefix}_{Path(file_name).stem}"
            written = save_prediction(
                value, file_name, output_dir, dtype=dtype, suffix=suffix, output_file_name=stem
            )
            self._written.add(Path(written).stem)

    def _write(self, trainer: Any, prediction: Any, output_dir: str) -> None:
        if isinstance(prediction, torch.Tensor):
            torch.save(prediction, os.path.join(output_dir, f"{uuid.uuid4().hex[:8]}.pt"))
            return
        if isinstance(prediction, Mapping) and "prediction" in prediction:
            prediction = (prediction["prediction"], prediction.get("filename"))
        if isinstance(prediction, tuple):
            values, files = prediction
            if isinstance(files, Mapping):  # one file list per modality: the first one georeferences
                files = next((v for k, v in files.items() if k != "mask"), None)
            if files is None:
                raise ValueError(
                    "CustomWriter needs the input file names (batch 'filename') to georeference outputs."
                )
            if isinstance(values, tuple):
                self._save_batch(trainer, values[0], files, output_dir, suffix=values[1])
            elif isinstance(values, list):
                for tensor, suffix in values:
                    self._save_batch(trainer, tensor, files, output_dir, suffix=suffix)
            elif isinstance(values, torch.Tensor):
                self._save_batch(trainer, values, files, output_dir)
            else:
                raise ValueError(
                    "The prediction part of a (prediction, file names) pair is expected to be in "
                    f"[tuple, list, torch.Tensor] but received {type(values).__name__}."
                )
            return
        if not prediction:
            logger.info("Prediction output is None for this batch; nothing written.")
            return
        raise TypeError(
            f"Unknown type for prediction {type(prediction).__name__}: expected a tensor, a "
            "(prediction, file names) tuple or a dict with 'prediction' and 'filename'."
        )

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
        """Write the predictions of one batch."""
        if prediction is None:
            logger.info("Prediction output is None for this batch; nothing written.")
            return
        self._write(trainer, prediction, self._output_dir(trainer))

    def write_on_epoch_end(
        self,
        trainer: Any,
        pl_module: Any,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any] | None,
    ) -> None:
        """Write every batch's predictions at the end of the predict epoch."""
        output_dir = self._output_dir(trainer)
        for prediction in predictions:
            if prediction is not None:
                self._write(trainer, prediction, output_dir)
