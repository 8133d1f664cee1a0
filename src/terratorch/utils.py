"""Small shared helpers; ``InvalidModelError`` is re-exported here for backward compatibility."""

from terratorch.registry.registry import InvalidModelError

__all__ = ["InvalidModelError"]
