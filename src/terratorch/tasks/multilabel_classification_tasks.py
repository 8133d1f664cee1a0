"""The reference's import path of :class:`MultiLabelClassificationTask`.

Implemented in :mod:`terratorch.tasks.multilabel_classification`.
"""

from __future__ import annotations

from terratorch.tasks.multilabel_classification import MultiLabelClassificationTask

__all__ = ["MultiLabelClassificationTask"]
