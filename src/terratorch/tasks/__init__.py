"""Lightning tasks: segmentation, regression, classification, reconstruction, embedding generation.

Attributes resolve lazily (PEP 562), so ``import terratorch.tasks`` does not import Lightning;
``from terratorch.tasks import SemanticSegmentationTask`` works as usual. Submodules:
:mod:`~terratorch.tasks.losses`, :mod:`~terratorch.tasks.metrics`, :mod:`~terratorch.tasks.optim`
(and its public alias :mod:`~terratorch.tasks.optimizer_factory`), :mod:`~terratorch.tasks.plotting`,
:mod:`~terratorch.tasks.tiled_inference`.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "TerraTorchTask": "terratorch.tasks.base",
    "SemanticSegmentationTask": "terratorch.tasks.segmentation",
    "PixelwiseRegressionTask": "terratorch.tasks.regression",
    "ClassificationTask": "terratorch.tasks.classification_tasks",
    "MultiLabelClassificationTask": "terratorch.tasks.multilabel_classification",
    "ScalarRegressionTask": "terratorch.tasks.scalar_regression",
    "ReconstructionTask": "terratorch.tasks.reconstruction",
    "EmbeddingGenerationTask": "terratorch.tasks.embedding_generation",
    "ObjectDetectionTask": "terratorch.tasks.object_detection",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
