"""Task heads: the last layers turning a decoder's output into predictions.

* :class:`SegmentationHead`: ``(B, C, H, W) -> (B, num_classes, H, W)`` logits.
* :class:`RegressionHead`: ``(B, C, H, W) -> (B, num_outputs, H', W')``; the model squeezes one channel.
* :class:`ScalarHead` (``ClassificationHead`` is its deprecated name): ``-> (B, num_outputs)``.

Each keeps its layers in ``self.head`` so checkpoints of the reference release load unchanged.
"""

from terratorch.models.heads.regression_head import PixelShuffleUpscale, RegressionHead
from terratorch.models.heads.scalar_head import ClassificationHead, ScalarHead
from terratorch.models.heads.segmentation_head import SegmentationHead

__all__ = ["ClassificationHead", "PixelShuffleUpscale", "RegressionHead", "ScalarHead", "SegmentationHead"]
