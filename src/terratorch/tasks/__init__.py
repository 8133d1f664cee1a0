"""Lightning tasks for fine-tuning: segmentation, regression, classification, reconstruction.

Attributes resolve lazily (PEP 562), so ``import terratorch.tasks`` does not import Lightning;
``from terratorch.tasks import SemanticSegmentationTask`` works as usual. Submodules:
:mod:`~terratorch.tasks.losses`, :mod:`~terratorch.tasks.metrics`, :mod:`~terratorch.tasks.optim`
(and its public alias :mod:`~terratorch.tasks.optimizer_factory`), :mod:`~terratorch.tasks.plotting`,
:mod:`~terratorch.tasks.tiled_inference`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "TerraTorchTask": "terratorch.tasks.base",
    "SemanticSegmentationTask": "terratorch.tasks.segmentation",
    "PixelwiseRegressionTask": "terratorch.tasks.regression",
    "ClassificationTask": "terratorch.tasks.classification",
    "MultiLabelClassificationTask": "terratorch.tasks.multilabel_classification",
    "ScalarRegressionTask": "terratorch.tasks.scalar_regression",
    "ReconstructionTask": "terratorch.tasks.reconstruction",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terratorch.tasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
