"""The reference's import path of the regression tasks.

Implemented in :mod:`terratorch.tasks.regression` and :mod:`terratorch.tasks.scalar_regression`.
"""

from __future__ import annotations

from terratorch.tasks.regression import PixelwiseRegressionTask
from terratorch.tasks.scalar_regression import ScalarRegressionTask

__all__ = ["PixelwiseRegressionTask", "ScalarRegressionTask"]
