"""Serve a fine-tuned model's predictions over HTTP (``terratorch serve``, see ``docs/serving.md``).

The reference ships a vLLM IOProcessor plugin; vLLM needs a CUDA GPU and pins its own torch, so
TerraTorch serves with a plain FastAPI/uvicorn app instead:

- :class:`~terratorch.serve.predictor.Predictor`: a task and datamodule built from a fit config and
  checkpoint, predicting single GeoTIFF files exactly as ``terratorch predict`` would.
- :class:`~terratorch.serve.batching.RequestBatcher`: batches concurrent requests into one forward.
- :func:`~terratorch.serve.app.create_app`: the FastAPI app (``/predict``, ``/health``, ``/metadata``).

Names are loaded on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

__all__ = ["Predictor", "RequestBatcher", "RequestError", "create_app"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Predictor": "terratorch.serve.predictor",
        "RequestError": "terratorch.serve.predictor",
        "RequestBatcher": "terratorch.serve.batching",
        "create_app": "terratorch.serve.app",
    },
)
