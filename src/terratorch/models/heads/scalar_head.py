"""Per-image head: pools decoder output into ``(B, num_outputs)`` logits or values."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import Tensor, nn

from terratorch.models.heads._common import check_channels

__all__ = ["ClassificationHead", "ScalarHead"]


class ScalarHead(nn.Module):
    """Classification / scalar-regression head: an MLP applied per position, averaged over positions.

    Inputs ``(B, C, H, W)``, ``(B, C, L)`` and ``(B, C)`` are read with channels in dimension 1, as the
    reference release does; ours also accepts token sequences ``(B, L, C)`` (recognised when only the
    last dimension equals ``in_dim``). ``self.head`` is ``nn.Sequential([hidden, dropout, Linear])`` with
    hidden blocks ``Sequential(Linear, ReLU)``, so keys read ``head.head.0.<i>.0.*`` and ``head.head.2.*``.

    Args:
        in_dim: Channels ``C`` of the input.
        num_outputs: Number of outputs (scalar regression). Takes precedence over ``num_classes``.
        num_classes: Number of classes (classification).
        dim_list: Widths of hidden layers.
        dropout: Dropout probability before the last layer.
        linear_after_pool: True: average over positions first, then run the MLP (cheaper). False
            (default): run the MLP per position and average the outputs.
    """

    def __init__(
        self,
        in_dim: int,
        num_outputs: int | None = None,
        num_classes: int | None = None,
        dim_list: Sequence[int] | None = None,
        dropout: float = 0,
        linear_after_pool: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if num_outputs is None and num_classes is None:
            raise ValueError(
                f"{owner}: give num_classes (classification) or num_outputs (scalar regression)."
            )
        if num_outputs is not None and num_classes is not None:
            warnings.warn(
                f"{owner}: both num_outputs and num_classes given; using num_outputs.", stacklevel=2
            )
        self.num_classes = num_classes
        self.num_outputs = num_outputs if num_outputs is not None else num_classes
        if self.num_outputs < 1:
            which = "num_outputs" if num_outputs is not None else "num_classes"
            raise ValueError(f"{owner}: {which} must be >= 1, got {self.num_outputs}.")
        self.in_dim = in_dim
        self.linear_after_pool = linear_after_pool
        width = in_dim
        if dim_list is None:
            hidden: nn.Module = nn.Identity()
        else:
            blocks = []
            for dim in dim_list:
                blocks.append(nn.Sequential(nn.Linear(width, dim), nn.ReLU()))
                width = dim
            hidden = nn.Sequential(*blocks)
        drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Sequential(hidden, drop, nn.Linear(width, self.num_outputs))

    @property
    def in_channels(self) -> int:
        """Alias of ``in_dim``."""
        return self.in_dim

    def _positions(self, x: Tensor) -> Tensor:
        """``(B, N, C)``: positions x channels."""
        owner = type(self).__name__
        if x.dim() == 3 and x.shape[1] != self.in_dim and x.shape[2] == self.in_dim:
            return x  # tokens (B, L, C)
        if x.dim() < 2:
            raise ValueError(
                f"{owner} expects (B, C, H, W), (B, L, C) or (B, C) inputs, got shape {tuple(x.shape)}."
            )
        check_channels(owner, self.in_dim, x.shape[1], x.shape)
        return x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``(B, num_outputs)``."""
        positions = self._positions(x)
        if self.linear_after_pool:
            return self.head(positions.mean(dim=1))
        return self.head(positions).mean(dim=1)


class ClassificationHead(ScalarHead):
    """Deprecated name of :class:`ScalarHead` (warns, then behaves the same)."""

    def __init__(self, *args, **kwargs) -> None:
        warnings.warn("ClassificationHead is deprecated; use ScalarHead.", DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
