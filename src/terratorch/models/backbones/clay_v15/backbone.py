"""Pre-norm ViT blocks of Clay v1.5 (``Transformer.layers.<i>.0`` attention, ``.1`` MLP, then ``norm``).

Same state-dict layout as Clay v1's blocks; unlike v1, :meth:`Transformer.forward` returns only the
final (normalised) tokens, as the Clay v1.5 model does. :meth:`Transformer.forward_blocks` also
returns the intermediate block outputs, which the fine-tuning backbone exposes as features.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.clay_v1.modules import FeedForward

__all__ = ["Attention", "FeedForward", "Transformer"]


class Attention(nn.Module):
    """Pre-norm multi-head self-attention without biases (``norm``, ``to_qkv``, ``to_out``).

    Args:
        dim: Token width.
        heads: Attention heads.
        dim_head: Width of each head.
        fused_attn: Use ``scaled_dot_product_attention``; ``False`` computes the softmax explicitly
            (same result, for exporters that lack the fused kernel).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, fused_attn: bool = True) -> None:
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.scale = dim_head**-0.5
        self.fused_attn = fused_attn
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim]`` → ``[B, N, dim]`` (without the residual)."""
        batch, tokens, _ = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            out = ((q @ k.transpose(-1, -2)) * self.scale).softmax(dim=-1) @ v
        return self.to_out(out.transpose(1, 2).flatten(2))


class Transformer(nn.Module):
    """``depth`` residual (Attention, FeedForward) blocks followed by a final LayerNorm ``norm``."""

    def __init__(
        self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, fused_attn: bool = True
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        Attention(dim, heads=heads, dim_head=dim_head, fused_attn=fused_attn),
                        FeedForward(dim, mlp_dim),
                    ]
                )
                for _ in range(depth)
            ]
        )

    def forward_blocks(self, x: Tensor) -> list[Tensor]:
        """Every block's output ``[B, N, dim]``; the last one after the final ``norm``."""
        outputs = []
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
            outputs.append(x)
        outputs[-1] = self.norm(x)
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim]`` → the normalised output of the last block."""
        return self.forward_blocks(x)[-1]
