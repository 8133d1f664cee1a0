"""The HTTP app of ``terratorch serve``: FastAPI endpoints around a ``Predictor``.

Endpoints (see ``docs/serving.md``):

- ``POST /predict``: a GeoTIFF as a multipart upload (field ``file``), as the raw request body
  (``Content-Type: image/tiff``), or a server-side file as JSON ``{"path": ...}``. Answers the
  prediction GeoTIFF (``image/tiff``), or JSON for per-image tasks and for
  ``"out_data_format": "b64_json"``.
- ``GET /health``: ``{"status": "ok"}`` while the server can take requests.
- ``GET /metadata``: model, task, expected bands, classes, tiling, batching settings and
  counters, limits, version.

Every refused request gets a 4xx with a JSON ``{"detail": "..."}`` saying what was wrong and what
is valid; the server keeps serving. Concurrent requests are batched by
:class:`~terratorch.serve.batching.RequestBatcher`.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from terratorch.choices import unknown_choice
from terratorch.serve.batching import RequestBatcher
from terratorch.serve.predictor import PerImagePrediction, Predictor, RequestError
from terratorch.serve.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_WAIT_MS

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

#: Keys of a JSON request: ours (``path``) and the reference vLLM plugin's ``RequestData`` names.
JSON_KEYS = ("path", "data_format", "data", "out_data_format")
OUT_FORMATS = ("tiff", "b64_json")
RAW_TYPES = ("image/tiff", "image/geotiff", "application/octet-stream")
_JSON_LIMIT = 1 << 20  # a JSON request names a file; it is never large


class _TooLargeError(Exception):
    """The request body passed the upload limit while being read."""


def create_app(
    predictor: Predictor,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    path_root: str | Path | None = None,
) -> FastAPI:
    """Build the FastAPI app serving ``predictor``.

    Args:
        predictor: The loaded model (:meth:`Predictor.from_config`).
        max_batch: Most concurrent requests run in one forward pass.
        max_wait_ms: Longest time the first request of a batch waits for others.
        max_upload_mb: Largest accepted request body in MiB (larger ones get 413).
        path_root: When set, ``{"path": ...}`` requests may only name files under this folder
            (relative paths are resolved against it); otherwise any file the server can read.

    Raises:
        ValueError: A non-positive limit.
    """
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be > 0, got {max_upload_mb}.")
    batcher: RequestBatcher[dict[str, Any], Any] = RequestBatcher(
        lambda samples: _predict_each_on_failure(predictor, samples),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
    )
    limit = int(max_upload_mb * 1024 * 1024)
    root = Path(path_root).resolve() if path_root is not None else None
    model_info = predictor.metadata()
    work: dict[str, Path] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        work["dir"] = Path(tempfile.mkdtemp(prefix="terratorch-serve-"))
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            shutil.rmtree(work["dir"], ignore_errors=True)

    app = FastAPI(
        title="TerraTorch model server",
        summary=f"{model_info['task']} predictions for GeoTIFF files",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.get("/health")
    async def health() -> JSONResponse:
        """``{"status": "ok"}`` while requests are accepted (503 ``stopping`` during shutdown)."""
        if batcher.running:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "stopping"}, status_code=503)

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        """The model, what it expects, and the batching settings and counters."""
        from terratorch import __version__

        return {
            **model_info,
            "version": __version__,
            "batching": {
                "max_batch": batcher.max_batch,
                "max_wait_ms": batcher.max_wait_ms,
                "stats": batcher.stats.as_dict(),
            },
            "limits": {"max_upload_mb": max_upload_mb, "path_root": str(root) if root else None},
            "inputs": {
                "multipart": "POST /predict with a form field 'file' holding a GeoTIFF",
                "raw": f"POST /predict with the GeoTIFF as body, Content-Type one of {list(RAW_TYPES)}",
                "json": 'POST /predict with {"path": "<server-side file>"} (optional "out_data_format": '
                '"tiff" or "b64_json")',
            },
        }

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Predict one GeoTIFF; answer the prediction GeoTIFF (or JSON, see the module)."""
        scratch = Path(tempfile.mkdtemp(dir=work["dir"]))
        try:
            source, name, out_format = await _receive(request, scratch, limit, root)
            await run_in_threadpool(predictor.check_raster, source, name)
            sample = await run_in_threadpool(predictor.load_sample, source, name)
            try:
                result, batch_size = await batcher.submit(sample)
            except Exception as error:
                logger.exception("prediction of %s failed", name)
                return JSONResponse(
                    {"detail": f"prediction of {name} failed: {type(error).__name__}: {error}"},
                    status_code=500,
                )
            headers = {"X-Batch-Size": str(batch_size)}
            if isinstance(result, PerImagePrediction):
                body = {"filename": name, "prediction": result.prediction}
                if result.probabilities is not None:
                    body["probabilities"] = result.probabilities
                return JSONResponse(body, headers=headers)
            data = await run_in_threadpool(_written_bytes, predictor, result, source, scratch / "out")
            output_name = predictor.output_name(name)
            if out_format == "b64_json":
                encoded = base64.b64encode(data).decode("ascii")
                body = {
                    "data_format": "b64_json",
                    "data": encoded,
                    "filename": output_name,
                    "request_id": None,
                }
                return JSONResponse(body, headers=headers)
            headers["Content-Disposition"] = f'attachment; filename="{_header_safe(output_name)}"'
            return Response(data, media_type="image/tiff", headers=headers)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return app


def _written_bytes(predictor: Predictor, prediction: Any, source: Path, output_dir: Path) -> bytes:
    """The prediction GeoTIFF of ``source`` as bytes (written to ``output_dir`` first)."""
    return predictor.write(prediction, source, output_dir).read_bytes()


def _header_safe(name: str) -> str:
    """``name`` with characters that cannot appear in a quoted latin-1 header value replaced by ``_``."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)


def _predict_each_on_failure(predictor: Predictor, samples: list[dict[str, Any]]) -> list[Any]:
    """Predict a batch; if it fails, predict each sample alone so one bad input fails only itself."""
    try:
        return predictor.predict(samples)
    except Exception as error:
        if len(samples) == 1:
            return [error]
    results: list[Any] = []
    for sample in samples:
        try:
            results.extend(predictor.predict([sample]))
        except Exception as error:
            results.append(error)
    return results


# ----------------------------------------------------------------------------- reading requests


async def _receive(request: Request, scratch: Path, limit: int, root: Path | None) -> tuple[Path, str, str]:
    """The request's input as ``(file on the server, name for messages, output format)``.

    Raises:
        RequestError: 413 body over ``limit``, 415 unsupported content type, 400 malformed body,
            404/403/422 for a bad ``path``.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, _too_large(int(length), limit))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            source, name = await _multipart_upload(_limited(request, limit), scratch)
            return source, name, "tiff"
        if content_type in RAW_TYPES:
            name = _safe_name(request.query_params.get("filename"))
            source = scratch / "in" / name
            source.parent.mkdir()
            with source.open("wb") as handle:
                async for chunk in _limited(request, limit).stream():
                    handle.write(chunk)
            if source.stat().st_size == 0:
                raise RequestError(400, "the request body is empty; send the GeoTIFF bytes as the body.")
            return source, name, "tiff"
        if content_type == "application/json":
            body = b""
            async for chunk in _limited(request, min(limit, _JSON_LIMIT)).stream():
                body += chunk
            return _json_request(body, root)
    except _TooLargeError:
        raise RequestError(413, _too_large(None, limit)) from None
    shown = content_type or "none"
    raise RequestError(
        415,
        f"unsupported Content-Type {shown!r}; send a multipart/form-data upload with a 'file' field, a raw "
        f'GeoTIFF body ({", ".join(RAW_TYPES)}), or application/json {{"path": ...}}.',
    )


def _too_large(size: int | None, limit: int) -> str:
    given = f"{size / 2**20:.1f} MiB" if size is not None else "more than that"
    return (
        f"the upload is too large ({given}); this server accepts at most {limit / 2**20:.4g} MiB per request "
        '(--max-upload-mb). Send a smaller raster, or a server-side path as JSON {"path": ...}.'
    )


def _limited(request: Request, limit: int) -> Request:
    """The same request, whose body raises :class:`_TooLargeError` once more than ``limit`` bytes arrive."""
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        if message.get("type") == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLargeError
        return message

    return Request(request.scope, receive)


def _safe_name(name: str | None) -> str:
    """A plain file name for an upload (no folders; ``upload.tif`` when none is usable)."""
    base = Path(name or "").name.strip()
    if not base or base in (".", "..") or any(ord(c) < 32 for c in base):
        return "upload.tif"
    return base


async def _multipart_upload(request: Request, scratch: Path) -> tuple[Path, str]:
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            fields = sorted(form.keys())
            raise RequestError(
                422,
                f"the multipart upload has no file in a field named 'file' (fields: {fields or 'none'}); "
                "send the GeoTIFF as -F file=@scene.tif.",
            )
        name = _safe_name(upload.filename)
        source = scratch / "in" / name
        source.parent.mkdir()
        with source.open("wb") as handle:
            await run_in_threadpool(shutil.copyfileobj, upload.file, handle)
        if source.stat().st_size == 0:
            raise RequestError(400, f"the uploaded file {name} is empty.")
        return source, name
    finally:
        await form.close()


def _json_request(body: bytes, root: Path | None) -> tuple[Path, str, str]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(
            400, f'the JSON body is malformed ({error}); send {{"path": "scene.tif"}}.'
        ) from None
    if not isinstance(payload, dict):
        raise RequestError(
            422, f'the JSON body must be an object like {{"path": ...}}, not {type(payload).__name__}.'
        )
    for key in payload:
        if key not in JSON_KEYS:
            raise RequestError(422, unknown_choice("request key", key, JSON_KEYS, where="the JSON body"))
    out_format = payload.get("out_data_format") or "tiff"
    if out_format not in OUT_FORMATS:
        raise RequestError(422, unknown_choice("out_data_format", str(out_format), OUT_FORMATS))
    if "path" in payload:
        value = payload["path"]
    else:  # the reference vLLM plugin's RequestData: {"data_format": "path", "data": ...}
        data_format = payload.get("data_format")
        if data_format != "path":
            raise RequestError(
                422,
                f"data_format {data_format!r} is not supported: this server reads server-side files "
                "(data_format 'path', or simply {\"path\": ...}) and uploads; it does not download URLs.",
            )
        value = payload.get("data")
    if not isinstance(value, str) or not value:
        raise RequestError(422, 'the JSON body needs "path": a file name on the server, as a string.')
    return _resolve_path(value, root), value, out_format


def _resolve_path(value: str, root: Path | None) -> Path:
    path = Path(value).expanduser()
    if root is not None:
        path = (root / path).resolve()
        if not path.is_relative_to(root):
            raise RequestError(
                403, f"{value} is outside the folder this server reads from ({root}, --path-root)."
            )
    where = f" under {root}" if root is not None else ""
    if not path.exists():
        raise RequestError(
            404, f"no file {value!r} on the server{where}; give the path of an existing GeoTIFF."
        )
    if not path.is_file():
        raise RequestError(422, f"{value!r} is not a file (a directory?); give the path of one GeoTIFF.")
    return path
