"""TerraTorch: fine-tune and benchmark geospatial foundation models.

This module imports nothing heavy; ``terratorch.models``, ``terratorch.tasks`` and friends load
their dependencies when first used.
"""

__version__ = "0.1.0"
