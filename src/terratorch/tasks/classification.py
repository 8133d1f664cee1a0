"""Former home of :class:`ClassificationTask`; it lives in :mod:`terratorch.tasks.classification_tasks`
(the reference's module path). Kept so ``terratorch.tasks.classification`` imports keep working."""

from __future__ import annotations

from terratorch.tasks.classification_tasks import ClassificationTask

__all__ = ["ClassificationTask"]
