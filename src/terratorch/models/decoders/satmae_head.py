"""Masked-autoencoder reconstruction heads for SatMAE-style ViT encoders (tokens → image patches)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["SatMAEHead", "SatMAEHeadViT"]


class _SatMAEBase(nn.Module):
    """Shared layers: token embedding, transformer blocks, norm and per-patch pixel prediction.

    Args:
        embed_dim: Width of the encoder tokens; for a tuple its second entry is used.
        out_channels: Width of the decoder tokens.
        bias: Whether the token embedding has a bias.
        num_heads: Attention heads of every block.
        mlp_ratio: MLP expansion of every block.
        patch_size: Side of the square patches predicted per token.
        num_patches: Number of patch tokens (the position table has one more row, for the cls
            token).
        depth: Number of transformer blocks.
        norm_layer: Normalisation layer class.
        in_chans: Channels of the reconstructed image.
    """

    def __init__(
        self,
        embed_dim: int | tuple[int, ...] | None = None,
        out_channels: int | None = None,
        bias: bool = True,
        num_heads: int | None = None,
        mlp_ratio: float | None = None,
        patch_size: int | None = None,
        num_patches: int = 1,
        depth: int | None = None,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        in_chans: int | None = None,
    ) -> None:
        super().__init__()
        required = {
            "embed_dim": embed_dim,
            "out_channels": out_channels,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "patch_size": patch_size,
            "depth": depth,
            "in_chans": in_chans,
        }
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"{type(self).__name__} needs {missing} (they have no usable default).")
        from timm.models.vision_transformer import Block

        self.embed_dim = embed_dim[1] if isinstance(embed_dim, tuple) else embed_dim
        self.out_channels = out_channels
        self.bias = bias
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.norm_layer = norm_layer
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.num_patches = num_patches
        self.depth = depth
        self.decoder_embed = nn.Linear(self.embed_dim, out_channels, bias=bias)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, out_channels))
        # a fixed table (not trained), kept as a parameter so checkpoints carry it
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, out_channels), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(out_channels, num_heads, mlp_ratio, qkv_bias=True, qk_norm=None, norm_layer=norm_layer)
            for _ in range(depth)
        )
        self.decoder_norm = norm_layer(out_channels)
        self.decoder_pred = nn.Linear(out_channels, patch_size**2 * in_chans, bias=True)

    def unpatchify(self, x: Tensor, p: int, c: int) -> Tensor:
        """``(N, L, p * p * c)`` patch predictions on a square grid → images ``(N, c, H, W)``."""
        side = int(x.shape[1] ** 0.5)
        if side * side != x.shape[1]:
            raise ValueError(f"{type(self).__name__}: {x.shape[1]} patch tokens do not form a square grid.")
        x = x.reshape(x.shape[0], side, side, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, side * p, side * p)

    def _decode(self, x: Tensor) -> Tensor:
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return self.unpatchify(x[:, 1:, :], self.patch_size, self.in_chans)


@TERRATORCH_DECODER_REGISTRY.register
class SatMAEHead(_SatMAEBase):
    """MAE decoder: embed the kept tokens, re-insert mask tokens in original order, add the position
    table, run the blocks and predict the pixels of every patch.

    ``forward(x, ids_restore)`` takes the encoder tokens ``(N, 1 + kept, embed_dim)`` (cls first)
    and the restore permutation ``(N, num_patches)``; it returns ``(N, in_chans, H, W)``. See
    :class:`_SatMAEBase` for the arguments.
    """

    def forward(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        """Reconstruct the images from kept tokens and the restore permutation."""
        x = self.decoder_embed(x)
        masked = ids_restore.shape[1] + 1 - x.shape[1]
        tokens = torch.cat([x[:, 1:, :], self.mask_token.repeat(x.shape[0], masked, 1)], dim=1)
        index = ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2])
        x = torch.cat([x[:, :1, :], torch.gather(tokens, dim=1, index=index)], dim=1)
        return self._decode(x + self.decoder_pos_embed)


class SatMAEHeadViT(_SatMAEBase):
    """Like :class:`SatMAEHead` without masking: ``forward(x)`` stacks the list ``x`` on a new first
    axis and decodes every token (no mask tokens, no position table; the first token is treated as
    cls and dropped). Not registered, as in 1.2.
    """

    def forward(self, x: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        """Reconstruct images from a list of token tensors."""
        return self._decode(self.decoder_embed(torch.stack(list(x), dim=0)))
