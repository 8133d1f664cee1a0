"""The reference's loss-combination helper at its import path (``terratorch.tasks.loss_handler``).

Our tasks combine losses with :class:`terratorch.tasks.losses.CombinedLoss` (returns the total);
this :class:`CombinedLoss` keeps the reference's interface for user code that builds one directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["CombinedLoss"]


class CombinedLoss(nn.Module):
    """Several losses on the same prediction and target, reported separately and as a total.

    Args:
        losses: Loss modules by name.
        weight: One weight per loss, in the order of ``losses``; ``None`` sums them unweighted.

    ``forward`` returns ``{name: loss, ..., "loss": total}``.
    """

    def __init__(self, losses: Mapping[str, nn.Module], weight: Sequence[float] | None = None) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        if weight is not None and len(weight) != len(self.losses):
            raise ValueError(
                f"CombinedLoss: {len(weight)} weights for {len(self.losses)} losses {list(self.losses)}."
            )
        self.weight = torch.as_tensor(list(weight), dtype=torch.float32) if weight is not None else None

    def forward(self, y_hat: Tensor, ground_truth: Tensor) -> dict[str, Tensor]:
        parts = {name: criterion(y_hat, ground_truth) for name, criterion in self.losses.items()}
        stacked = torch.stack(list(parts.values()))
        if self.weight is not None:
            stacked = stacked * self.weight.to(stacked.device, stacked.dtype)
        return {**parts, "loss": stacked.sum()}
