"""Writing object detections as GeoJSON, one FeatureCollection per input image.

``terratorch predict`` with an :class:`~terratorch.tasks.object_detection.ObjectDetectionTask` attaches
:class:`GeoJSONDetectionWriter` (the task's ``make_prediction_writer``) instead of the GeoTIFF writer.
Each predicted box becomes a polygon: in the input's CRS when the input file is georeferenced (its
corners mapped through the raster's affine transform, so rotated grids stay exact), in pixel
coordinates (``x`` = column, ``y`` = row, origin at the top-left corner) otherwise. Feature properties
are ``score``, ``label``, ``class_name`` (from the task's ``class_names``, else null) and
``box_pixels`` (``[x_min, y_min, x_max, y_max]`` in the image's pixels). The CRS is stated in the
collection's ``crs`` member (``{"type": "name", "properties": {"name": "EPSG:32632"}}``), which GDAL,
QGIS and geopandas read; RFC 7946 readers that assume WGS 84 need a reprojection first. Boxes must be
in the pixels of the file: predict transforms must not crop or resize.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

__all__ = ["GeoJSONDetectionWriter", "detections_to_geojson"]


def _ring(box: Sequence[float], transform: Any) -> list[list[float]]:
    """Closed counter-clockwise ring of a pixel box, mapped through ``transform`` (None: pixels)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    points = [list(transform * c) if transform is not None else [c[0], c[1]] for c in corners]
    area = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(points, points[1:] + points[:1]))
    if area < 0:  # clockwise in output coordinates: reverse (RFC 7946 exterior rings are CCW)
        points.reverse()
    return [[float(p[0]), float(p[1])] for p in [*points, points[0]]]


def detections_to_geojson(
    detections: Mapping[str, Tensor],
    transform: Any = None,
    crs: str | None = None,
    class_name: Any = None,
    name: str | None = None,
) -> dict[str, Any]:
    """One image's detections as a GeoJSON FeatureCollection (dict).

    Args:
        detections: ``boxes`` ``(N, 4)`` xyxy pixels, ``scores`` ``(N,)``, ``labels`` ``(N,)``.
        transform: The image's ``affine.Affine`` pixel → CRS transform; None keeps pixel coordinates.
        crs: The CRS as text (``"EPSG:32632"``, WKT); stated in the collection's ``crs`` member.
        class_name: ``label -> name or None`` (None: no names).
        name: Collection name (the input's stem).
    """
    boxes = detections["boxes"].detach().cpu().reshape(-1, 4).tolist()
    scores = detections["scores"].detach().cpu().reshape(-1).tolist()
    labels = [int(v) for v in detections["labels"].detach().cpu().reshape(-1).tolist()]
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels for one image.")
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_ring(box, transform)]},
            "properties": {
                "score": float(score),
                "label": label,
                "class_name": class_name(label) if class_name is not None else None,
                "box_pixels": [float(v) for v in box],
            },
        }
        for box, score, label in zip(boxes, scores, labels)
    ]
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    if name is not None:
        collection["name"] = name
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    collection["features"] = features
    return collection


def _crs_text(crs: Any) -> str:
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _georeference(source: Path | None) -> tuple[Any, str | None]:
    """``(transform, crs text)`` of a georeferenced raster; ``(None, None)`` for anything else."""
    if source is None or not source.is_file():
        return None, None
    from terratorch.io.geotiff import GeoTIFFError, read_header

    try:
        header = read_header(source)
    except GeoTIFFError:
        return None, None  # not a raster rasterio reads: pixel coordinates
    if header.crs is None:
        return None, None
    return header.transform, _crs_text(header.crs)


def _resolve(source: Path, root: Any) -> Path:
    """``source`` as given when it exists, else below the datamodule's ``predict_data_root``
    (datasets that report bare file names)."""
    if source.is_file() or root is None or source.is_absolute():
        return source
    candidate = Path(str(root)) / source
    return candidate if candidate.is_file() else source


class GeoJSONDetectionWriter(BasePredictionWriter):
    """Write each image's detections to ``<output_file_prefix><input stem>_pred.geojson``.

    Names repeated within one run get ``_pred_1``, ``_pred_2``, ...; images without a ``filename``
    in the batch are named ``image_<n>`` and stay in pixel coordinates.

    Args:
        output_dir: Directory for the outputs (created).
        output_file_prefix: Prefix of every output file name.
    """

    def __init__(self, output_dir: str | Path, output_file_prefix: str = "") -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.output_file_prefix = output_file_prefix
        self._used: set[str] = set()
        self._count = 0
        self.written: list[Path] = []

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        """Reset the names of the previous run and create ``output_dir``."""
        self._used.clear()
        self._count = 0
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
        """Write one GeoJSON per image of ``prediction["prediction"]`` (a list of detection dicts)."""
        detections = prediction.get("prediction") if isinstance(prediction, Mapping) else None
        if not isinstance(detections, (list, tuple)):
            raise TypeError(
                "GeoJSONDetectionWriter needs predict_step to return "
                "{'prediction': [per-image detection dicts]}; "
                f"got {type(prediction).__name__}."
            )
        files = prediction.get("filename")
        if files is None and isinstance(batch, Mapping):
            files = batch.get("filename")
        if files is not None and len(files) != len(detections):
            raise ValueError(
                f"Batch {batch_idx} has {len(detections)} predictions for {len(files)} file names."
            )
        namer = getattr(pl_module, "class_name", None)
        root = getattr(getattr(trainer, "datamodule", None), "predict_data_root", None)
        for i, item in enumerate(detections):
            source = _resolve(Path(str(files[i])), root) if files is not None else None
            self.written.append(self.write_one(item, source, namer))

    def write_one(
        self, detections: Mapping[str, Tensor], source: Path | None, class_name: Any = None
    ) -> Path:
        """Write one image's detections georeferenced like ``source`` (pixels if it has no CRS)."""
        transform, crs = _georeference(source)
        stem = source.stem if source is not None else f"image_{self._count}"
        self._count += 1
        collection = detections_to_geojson(detections, transform, crs, class_name, name=stem)
        path = self.output_dir / self._unique_name(stem)
        path.write_text(json.dumps(collection))
        return path

    def _unique_name(self, stem: str) -> str:
        base = f"{self.output_file_prefix}{stem}_pred"
        name, counter = f"{base}.geojson", 0
        while name in self._used:
            counter += 1
            name = f"{base}_{counter}.geojson"
        self._used.add(name)
        return name
