"""Embedding generation: run a backbone over the predict split and write its features to disk.

:class:`EmbeddingGenerationTask` is the reference's task of the same name (same parameters). Used with
``terratorch predict -c config.yaml`` (no ``predict_output_dir`` needed: the task writes its own files)
or :class:`~terratorch.cli.inference.LightningInferenceModel`. The output folder holds one
``layer_NN`` folder per entry of ``layers`` (``layer_NN/<modality>`` for multimodal backbones that
return one output per modality) and ``configuration_summary.json``:

``tiff``
    ``<stem>_embedding.tif`` per input file: the token grid ``(C, h, w)`` (pooled vectors as
    ``(C, 1, 1)``), in the input's CRS with its transform scaled to the token grid.
``parquet``
    ``<stem>_embedding.parquet`` per input file, one row (the reference's layout).
``parquet_joint``
    One ``embeddings.parquet`` per layer, streamed: one row group per batch, so memory stays bounded by
    a batch whatever the number of files (see :class:`~terratorch.embeddings.geoparquet.GeoParquetWriter`).
``neuco_csv``
    One ``embeddings.csv`` per layer (``id, 1..D``), appended per batch (NeuCo-Bench's format).

GeoParquet rows hold ``file_id``, ``layer``, ``embedding``, ``geometry`` (the input's footprint, WKB,
input CRS) and ``crs``. The georeference comes from the batch (``crs`` with ``geotransform`` +
``raster_shape`` or ``bounds``) when the dataset provides it, else from the header of the file named
by ``embed_file_key`` (what TerraTorch's GeoTIFF datasets give).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from terratorch.tasks.base import TerraTorchTask

__all__ = ["OUTPUT_FORMATS", "POOLINGS", "EmbeddingGenerationTask", "EmbeddingModel"]

logger = logging.getLogger("terratorch")

OUTPUT_FORMATS = ("tiff", "parquet", "parquet_joint", "neuco_csv")
#: ``embedding_pooling`` values: no pooling (tokens kept, reshaped to a grid for ``tiff``) or a pooling.
NO_POOLING = (None, "None", "keep")
POOLINGS = ("mean", "max", "min", "cls")


class EmbeddingModel(nn.Module):
    """Backbone followed by necks, returning the selected features (the reference's ``EmbeddingOutputModel``).

    Args:
        encoder: The backbone (returns a list of features).
        neck: Applied to the feature list with ``image_size``; None keeps the features.
        patch_size: Inputs are padded to a multiple of it (with ``padding``) when not one already.
        padding: ``F.pad`` mode, or None for no padding.
    """

    def __init__(
        self,
        encoder: nn.Module,
        neck: nn.Module | None,
        patch_size: Any = None,
        padding: str | None = "reflect",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.neck = neck
        self.patch_size = patch_size
        self.padding = padding

    def freeze_encoder(self) -> None:
        """Freeze the backbone (its ``freeze()`` when it has one)."""
        if callable(getattr(self.encoder, "freeze", None)):
            self.encoder.freeze()
        else:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)

    def forward(self, x: Tensor | dict[str, Tensor], **kwargs: Any) -> list[Any]:
        """Features of ``x`` after the necks: a list with one entry per selected layer."""
        from terratorch.models.utils import pad_images

        first = next(iter(x.values())) if isinstance(x, Mapping) else x
        image_size = tuple(first.shape[-2:])
        if self.patch_size is not None and self.padding is not None:
            x = pad_images(x, self.patch_size, self.padding, grid_multiple=1)
        features = self.encoder(x, **kwargs)
        if not isinstance(features, list | tuple):
            features = [features]
        if self.neck is not None:
            features = self.neck(list(features), image_size=image_size)
        return list(features) if isinstance(features, list | tuple) else [features]


class EmbeddingGenerationTask(TerraTorchTask):
    """Run a backbone on the predict split and save the embeddings of some of its layers.

    Args:
        model_args: Backbone arguments: ``backbone`` (a ``BACKBONE_REGISTRY`` name or module),
            ``backbone_*`` keyword arguments (``backbone_use_temporal``, ``backbone_temporal_pooling``,
            ... wrap it in a TemporalWrapper), optional ``necks`` (then no neck is added automatically)
            and ``padding``.
        output_dir: Folder for the embeddings.
        embed_file_key: Batch key holding each sample's id (a file path: the file's stem names outputs
            and its header gives the georeference).
        layers: Encoder layers to save (indices into the backbone's outputs; default ``[-1]``).
        output_format: ``tiff``, ``parquet``, ``parquet_joint`` or ``neuco_csv`` (see the module).
        has_cls: The token sequences start with a CLS token (dropped for grids and mean/max/min).
        embedding_pooling: None (``"None"``, ``"keep"``): keep the tokens; ``mean``, ``max``, ``min``
            or ``cls``: one vector per layer.
        num_workers: Threads writing per-file outputs.
        pixel_size: Pixel size in metres, used only to build an approximate footprint from
            ``center_lat``/``center_lon`` metadata.
        freeze_backbone: Freeze the backbone (always frozen in practice: only prediction runs).

    Raises:
        ValueError: Unknown ``output_format`` or ``embedding_pooling``.
    """

    task_type = "embedding_generation"
    model_task = "embedding_generation"
    target_key = "image"
    loss_kind = "regression"
    default_loss = "mse"
    has_classes = False
    pixel_wise = False
    #: The task writes its own outputs; ``terratorch predict`` needs no prediction writer for it.
    writes_own_predictions: ClassVar[bool] = True

    def __init__(
        self,
        model_args: dict[str, Any],
        output_dir: str = "embeddings",
        embed_file_key: str = "filename",
        layers: list[int] | None = None,
        output_format: str = "tiff",
        *,
        has_cls: bool = False,
        embedding_pooling: str | None = None,
        num_workers: int = 4,
        pixel_size: float = 10.0,
        freeze_backbone: bool = True,
    ) -> None:
        from terratorch.choices import unknown_choice

        self.output_format = str(output_format).lower()
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(unknown_choice("output_format", output_format, OUTPUT_FORMATS))
        if embedding_pooling not in NO_POOLING and embedding_pooling not in POOLINGS:
            raise ValueError(
                unknown_choice("embedding_pooling", str(embedding_pooling), [*POOLINGS, "None", "keep"])
            )
        self.embedding_indices = list(layers) if layers is not None else [-1]
        self.output_path = Path(output_dir)
        self.embed_file_key = embed_file_key
        self.has_cls = has_cls
        self.embedding_pooling = None if embedding_pooling in NO_POOLING else embedding_pooling
        self.num_workers = num_workers
        self.pixel_size = pixel_size
        self.input_shape: tuple[int, int] | None = None
        self._config_saved = False
        self._writers: dict[str, Any] = {}
        args = dict(model_args or {})
        args["necks"] = self._necks(args)
        super().__init__(model_args=args, model=build_embedding_model(args), freeze_backbone=freeze_backbone)
        self.output_path.mkdir(parents=True, exist_ok=True)

    def _necks(self, model_args: Mapping[str, Any]) -> list[Any]:
        """Explicit ``necks``, or the ones the output format and pooling call for (as the reference)."""
        if model_args.get("necks"):
            logger.info(
                "EmbeddingGenerationTask: necks given explicitly; no neck is added for the output format."
            )
            return list(model_args["necks"])
        temporal = bool(model_args.get("backbone_use_temporal")) and (
            model_args.get("backbone_temporal_pooling", "mean") == "keep"
        )
        if self.embedding_pooling is None:
            necks: list[dict[str, Any]] = [{"name": "SelectIndices", "indices": self.embedding_indices}]
            if self.output_format == "tiff":
                reshape: dict[str, Any] = {"name": "ReshapeTokensToImage", "remove_cls_token": self.has_cls}
                if temporal:
                    reshape["temporal_inputs"] = True
                necks.append(reshape)
            return necks
        aggregate: dict[str, Any] = {
            "name": "AggregateTokens",
            "pooling": self.embedding_pooling,
            "indices": self.embedding_indices,
            "drop_cls": self.has_cls and self.embedding_pooling != "cls",
        }
        if temporal:
            aggregate["temporal_inputs"] = True
        if self.output_format == "tiff":
            warnings.warn(
                "GeoTIFF output with embedding_pooling saves each vector as a (C, 1, 1) raster; "
                "output_format='parquet_joint' suits pooled vectors better.",
                UserWarning,
                stacklevel=3,
            )
        return [aggregate]

    # -- no training: no losses or metrics ---------------------------------------------------------
    def configure_losses(self) -> None:
        """Embedding generation trains nothing: no criterion."""
        self.criterion = None

    def configure_metrics(self, prefix: str | None = None) -> None:
        """Embedding generation computes no metrics."""
        self.train_metrics = self.val_metrics = None
        self.extra_val_metrics = nn.ModuleList()
        self.test_metrics = nn.ModuleList()

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported: the task only predicts."""
        raise NotImplementedError("EmbeddingGenerationTask only predicts: run `terratorch predict`.")

    def forward(self, x: Any, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        """The selected (and pooled) features of ``x``: one entry per layer of ``layers``."""
        return self.model(x, **kwargs)

    # -- prediction --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_step(self, batch: Mapping[str, Any], batch_idx: int = 0, dataloader_idx: int = 0) -> None:
        """Embed one batch and write it (nothing is returned: the files are the output).

        Raises:
            KeyError: The batch has no ``embed_file_key``.
            ValueError: The number of ids differs from the batch size.
        """
        batch = dict(batch)
        x = batch["image"]
        if isinstance(x, Mapping):
            x = dict(x)
        first = next(iter(x.values())) if isinstance(x, Mapping) else x
        if self.input_shape is None:
            self.input_shape = tuple(int(v) for v in first.shape[-2:])
        if not isinstance(x, Mapping):
            self._check_channels_once(x)  # names both counts instead of a convolution shape error
        file_ids = _pop_ids(batch, x, self.embed_file_key)
        metadata = pull_metadata(
            batch.get("metadata") if isinstance(batch.get("metadata"), Mapping) else batch
        )
        if len(file_ids) != first.shape[0]:
            raise ValueError(
                f"{self.embed_file_key!r} holds {len(file_ids)} ids for a batch of {first.shape[0]} samples."
            )
        extra = {
            k: v for k, v in batch.items() if k not in ("image", "mask", "label") and isinstance(v, Tensor)
        }
        embeddings = self(x, **extra)
        georef = [
            self._georeference(file_ids[b], _select(metadata, b, len(file_ids))) for b in range(len(file_ids))
        ]
        self._save_summary(embeddings)
        for layer, output in enumerate(embeddings):
            if isinstance(output, Mapping):
                for modality, tensor in output.items():
                    self._write(tensor, file_ids, georef, layer, modality=str(modality))
            else:
                self._write(output, file_ids, georef, layer)

    def on_predict_start(self) -> None:
        """Drop the CLI's default GeoTIFF prediction writer: this task writes its own files."""
        from terratorch.cli.prediction_writer import GeoTIFFPredictionWriter

        trainer = self._trainer
        if trainer is not None:
            trainer.callbacks = [c for c in trainer.callbacks if type(c) is not GeoTIFFPredictionWriter]

    def on_predict_end(self) -> None:
        """Close the streamed files (``parquet_joint``) so their footers are written."""
        self.close_writers()

    def close_writers(self) -> None:
        """Finish every open output file."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    # -- writing -----------------------------------------------------------------------------------
    def _layer_dir(self, layer: int, modality: str | None) -> Path:
        path = self.output_path / f"layer_{layer:02d}"
        return path / modality if modality else path

    def _write(
        self,
        tensor: Tensor,
        file_ids: list[str],
        georef: list[dict[str, Any]],
        layer: int,
        modality: str | None = None,
    ) -> None:
        directory = self._layer_dir(layer, modality)
        directory.mkdir(parents=True, exist_ok=True)
        values = tensor.detach().float().cpu().numpy()
        if self.output_format == "tiff":
            self._each(lambda b: _write_tiff(directory, file_ids[b], values[b], georef[b]), len(file_ids))
        elif self.output_format == "parquet":

            def one_file(b: int) -> None:
                path = directory / f"{Path(file_ids[b]).stem}_embedding.parquet"
                self._write_rows(path, [file_ids[b]], values[b : b + 1], [georef[b]], layer, modality, False)

            self._each(one_file, len(file_ids))
        elif self.output_format == "parquet_joint":
            self._write_rows(directory / "embeddings.parquet", file_ids, values, georef, layer, modality)
        else:
            path = directory / "embeddings.csv"
            _append_neuco(path, file_ids, values, fresh=str(path) not in self._writers)
            self._writers.setdefault(str(path), _Closed())

    def _each(self, write: Any, count: int) -> None:
        """Run ``write(b)`` for every sample, on ``num_workers`` threads when there are several."""
        workers = min(count, max(1, int(self.num_workers)))
        if workers <= 1:
            for b in range(count):
                write(b)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(write, range(count)))

    def _write_rows(
        self,
        path: Path,
        file_ids: list[str],
        values: np.ndarray,
        georef: list[dict[str, Any]],
        layer: int,
        modality: str | None,
        keep_open: bool = True,
    ) -> None:
        """Rows of ``(file id, layer, vector, footprint)``; temporal outputs give one row per time step."""
        from terratorch.embeddings.geoparquet import GeoParquetWriter

        ids, vectors, shapes, crs, steps = [], [], [], [], []
        for b, file_id in enumerate(file_ids):
            sample = values[b]
            temporal = sample.ndim == 2 and self._is_temporal()  # pooled (T, D)
            for t, vector in enumerate(sample if temporal else [sample]):
                ids.append(Path(str(file_id)).stem)
                vectors.append(np.asarray(vector).reshape(-1))
                shapes.append(georef[b].get("footprint"))
                crs.append(georef[b].get("crs"))
                steps.append(t if temporal else None)
        extra_columns = (["modality"] if modality else []) + (
            ["time_index"] if any(s is not None for s in steps) else []
        )
        extra = {"modality": [modality] * len(ids), "time_index": steps}
        if not keep_open:
            with GeoParquetWriter(path, extra_columns=extra_columns) as writer:
                writer.write_batch(ids, layer, np.stack(vectors), shapes, crs, extra)
            return
        key = str(path)
        if key not in self._writers:
            self._writers[key] = GeoParquetWriter(path, extra_columns=extra_columns)
        self._writers[key].write_batch(ids, layer, np.stack(vectors), shapes, crs, extra)

    def _is_temporal(self) -> bool:
        args = self.model_args
        return (
            bool(args.get("backbone_use_temporal"))
            and args.get("backbone_temporal_pooling", "mean") == "keep"
        )

    def _georeference(self, file_id: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """``{"crs", "transform", "shape", "footprint"}`` of one sample (empty when unknown)."""
        return georeference(file_id, metadata, input_shape=self.input_shape, pixel_size=self.pixel_size)

    def _save_summary(self, embeddings: Sequence[Any]) -> None:
        """Write ``configuration_summary.json`` once (model, layers, output shapes)."""
        if self._config_saved:
            return
        self._config_saved = True
        from terratorch.models.backbone_adapter import channel_list_of

        try:
            n_outputs = len(channel_list_of(self.model.encoder))
        except TypeError:
            n_outputs = None

        def shape_of(output: Any) -> Any:
            if isinstance(output, Mapping):
                return {k: list(v.shape[1:]) for k, v in output.items()}
            return list(output.shape[1:])

        summary = {
            "created_utc": datetime.now(timezone.utc).isoformat(),
            "output_dir": str(self.output_path.absolute()),
            "output_format": self.output_format,
            "backbone": str(self.model_args.get("backbone")),
            "backbone_total_params_million": sum(p.numel() for p in self.model.parameters()) / 1e6,
            "has_cls": self.has_cls,
            "embedding_pooling": self.embedding_pooling,
            "model_layer_count": n_outputs,
            "n_layers_saved": len(self.embedding_indices),
            "layers": [
                {
                    "output_folder_name": f"layer_{i:02d}",
                    "requested_index": requested,
                    "layer_number": (requested % n_outputs) + 1 if n_outputs else None,
                    "layer_output_shape": shape_of(output),
                }
                for i, (requested, output) in enumerate(zip(self.embedding_indices, embeddings, strict=False))
            ],
        }
        (self.output_path / "configuration_summary.json").write_text(json.dumps(summary, indent=2))


def build_embedding_model(model_args: Mapping[str, Any]) -> EmbeddingModel:
    """The backbone of ``model_args`` (``backbone``, ``backbone_*``) with its ``necks``.

    Raises:
        ValueError: ``backbone`` is missing, or an argument is neither ``backbone_*`` nor known.
    """
    from terratorch.models.encoder_decoder_factory import (
        build_backbone,
        find_patch_size,
        split_temporal_kwargs,
        wrap_encoder,
    )
    from terratorch.models.necks import NeckSequential, build_neck_list

    args = dict(model_args)
    if "backbone" not in args:
        raise ValueError("EmbeddingGenerationTask needs model_args.backbone (a BACKBONE_REGISTRY name).")
    backbone = args.pop("backbone")
    necks = args.pop("necks", None) or []
    padding = args.pop("padding", None)
    backbone_args = dict(args.pop("backbone_kwargs", None) or {})
    for key in list(args):
        if key.startswith("backbone_"):
            backbone_args[key[len("backbone_") :]] = args.pop(key)
    args.pop("num_classes", None)  # harmless leftovers of fine-tuning configs
    if args:
        raise ValueError(
            f"EmbeddingGenerationTask: model_args {sorted(args)} are not used; the task builds only a "
            "backbone (arguments must be 'backbone', 'backbone_*', 'necks' or 'padding')."
        )
    temporal, backbone_args = split_temporal_kwargs(backbone_args)
    encoder = build_backbone(backbone, backbone_args)
    patch_size = backbone_args.get("patch_size") or find_patch_size(encoder)
    padding = padding if padding is not None else backbone_args.get("padding", "reflect")
    encoder = wrap_encoder(encoder, temporal, None)
    from terratorch.models.backbone_adapter import channel_list_of

    modules, _ = build_neck_list(necks, channel_list_of(encoder))
    return EmbeddingModel(encoder, NeckSequential(*modules) if modules else None, patch_size, padding)


# ----------------------------------------------------------------------------- batch helpers

#: Metadata keys a dataset may provide per sample, and their aliases (the reference's list).
METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "file_id": ("file_id",),
    "product_id": ("product_id",),
    "time": ("time", "time_", "timestamp"),
    "grid_cell": ("grid_cell",),
    "grid_row_u": ("grid_row_u",),
    "grid_col_r": ("grid_col_r",),
    "geometry": ("geometry",),
    "utm_footprint": ("utm_footprint",),
    "crs": ("crs", "utm_crs"),
    "pixel_bbox": ("pixel_bbox",),
    "bounds": ("bounds",),
    "geotransform": ("geotransform",),
    "raster_shape": ("raster_shape",),
    "center_lat": ("center_lat", "centre_lat", "lat"),
    "center_lon": ("center_lon", "centre_lon", "lon"),
}


def pull_metadata(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Known metadata fields of a batch (first alias present wins); the batch is not changed."""
    found: dict[str, Any] = {}
    for key, aliases in METADATA_ALIASES.items():
        for alias in aliases:
            if data is not None and alias in data and data[alias] is not None:
                found[key] = data[alias]
                break
    return found


def _pop_ids(batch: dict[str, Any], x: Any, key: str) -> list[Any]:
    if isinstance(x, dict) and key in x:
        ids = x.pop(key)
    elif key in batch:
        ids = batch[key]
    else:
        raise KeyError(
            f"embed_file_key {key!r} is not in the batch (keys: {sorted(batch)}); set embed_file_key to the "
            "key holding each sample's file name."
        )
    if isinstance(ids, Mapping):  # multimodal: one file per modality, the first names the sample
        ids = next(iter(ids.values()))
    if isinstance(ids, Tensor | np.ndarray):
        ids = ids.tolist()
    return list(ids)


def _select(metadata: Mapping[str, Any], b: int, batch_size: int) -> dict[str, Any]:
    """Sample ``b``'s metadata: per-sample sequences/tensors are indexed, anything else is shared."""
    chosen = {}
    for key, value in metadata.items():
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        per_sample = (isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == batch_size) or (
            isinstance(value, list | tuple) and len(value) == batch_size
        )
        if per_sample:
            value = value[b]
        chosen[key] = value.tolist() if isinstance(value, np.ndarray) else value
    return chosen


def georeference(
    file_id: Any,
    metadata: Mapping[str, Any],
    *,
    input_shape: tuple[int, int] | None = None,
    pixel_size: float = 10.0,
) -> dict[str, Any]:
    """CRS, transform, raster shape and footprint of a sample, from its metadata or its file's header.

    Priority: ``crs`` + ``geotransform`` (GDAL order) + ``raster_shape``; ``crs`` + ``bounds``; the
    header of the file ``file_id`` names; ``center_lat``/``center_lon`` with ``pixel_size`` (an
    approximate EPSG:4326 footprint). Returns ``{}`` when none applies.
    """
    from affine import Affine
    from shapely.geometry import box

    crs = metadata.get("crs")
    geotransform, shape = metadata.get("geotransform"), metadata.get("raster_shape")
    if crs is not None and geotransform is not None and shape is not None and len(geotransform) == 6:
        x0, px, rx, y0, ry, py = (float(v) for v in geotransform)
        transform = Affine(px, rx, x0, ry, py, y0)
        height, width = int(shape[0]), int(shape[1])
        return _described(crs, transform, (height, width))
    bounds = metadata.get("bounds")
    if crs is not None and bounds is not None and len(bounds) == 4 and input_shape is not None:
        from rasterio.transform import from_bounds

        left, bottom, right, top = (float(v) for v in bounds)
        transform = from_bounds(left, bottom, right, top, input_shape[1], input_shape[0])
        return _described(crs, transform, input_shape)
    path = Path(str(file_id))
    if path.is_file():
        from terratorch.io.geotiff import read_header

        try:
            header = read_header(path)
        except Exception:  # not a raster: no georeference
            header = None
        if header is not None and header.crs is not None:
            return _described(header.crs, header.transform, (header.height, header.width))
    lat, lon = metadata.get("center_lat"), metadata.get("center_lon")
    if lat is not None and lon is not None and input_shape is not None:
        from pyproj import Geod

        geod = Geod(ellps="WGS84")
        half_w, half_h = input_shape[1] * pixel_size / 2, input_shape[0] * pixel_size / 2
        west, _, _ = geod.fwd(float(lon), float(lat), 270, half_w)
        east, _, _ = geod.fwd(float(lon), float(lat), 90, half_w)
        _, south, _ = geod.fwd(float(lon), float(lat), 180, half_h)
        _, north, _ = geod.fwd(float(lon), float(lat), 0, half_h)
        from rasterio.transform import from_bounds

        transform = from_bounds(west, south, east, north, input_shape[1], input_shape[0])
        return {
            "crs": "EPSG:4326",
            "transform": transform,
            "shape": input_shape,
            "footprint": box(west, south, east, north),
        }
    return {}


def _described(crs: Any, transform: Any, shape: tuple[int, int]) -> dict[str, Any]:
    from shapely.geometry import box

    height, width = shape
    corners = [transform @ (c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))]
    xs, ys = zip(*corners, strict=True)
    return {
        "crs": crs,
        "transform": transform,
        "shape": (int(height), int(width)),
        "footprint": box(min(xs), min(ys), max(xs), max(ys)),
    }


def _write_tiff(directory: Path, file_id: Any, array: np.ndarray, georef: Mapping[str, Any]) -> Path:
    """``<stem>_embedding.tif``: ``(C, h, w)`` bands on the input's footprint (transform scaled to it)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from terratorch.io.geotiff import scaled_transform, writing

    if array.ndim == 1:
        array = array.reshape(-1, 1, 1)
    elif array.ndim == 2:
        array = array[None]
    elif array.ndim == 4:  # temporal grids (T, C, h, w): time steps become band groups
        array = array.reshape(-1, *array.shape[-2:])
    elif array.ndim != 3:
        raise ValueError(f"Cannot write an embedding of shape {array.shape} as a GeoTIFF (expected C, h, w).")
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": int(array.shape[1]),
        "width": int(array.shape[2]),
        "count": int(array.shape[0]),
        "dtype": "float32",
    }
    if georef.get("crs") is not None:
        profile["crs"] = georef["crs"]
        profile["transform"] = scaled_transform(georef["transform"], georef["shape"], tuple(array.shape[1:]))
    path = directory / f"{Path(str(file_id)).stem}_embedding.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with writing(path), rasterio.open(path, "w", **profile) as dst:
            dst.write(array.astype(np.float32))
    return path


class _Closed:
    """Placeholder for an output that needs no closing (a CSV appended per batch)."""

    def close(self) -> None:
        """Nothing to finish."""


def _append_neuco(path: Path, file_ids: Sequence[Any], values: np.ndarray, fresh: bool) -> None:
    """Append ``id, 1..D`` rows to a NeuCo-Bench CSV; ``fresh`` starts the file (with its header)."""
    import csv

    vectors = values.reshape(values.shape[0], -1)
    if values.ndim != 2:
        raise ValueError(
            f"neuco_csv needs one vector per sample, got embeddings of shape {values.shape}; set "
            "embedding_pooling (mean, max, min or cls)."
        )
    with open(path, "w" if fresh else "a", newline="") as handle:
        writer = csv.writer(handle)
        if fresh:
            writer.writerow(["id", *range(1, vectors.shape[1] + 1)])
        for file_id, vector in zip(file_ids, vectors, strict=True):
            writer.writerow([Path(Path(str(file_id)).stem).stem, *(float(v) for v in vector)])
