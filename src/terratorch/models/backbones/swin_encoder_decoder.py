"""A Swin Transformer in the mmsegmentation parameter layout, padding inputs of any size.

This is the transformer behind ``prithvi_swin_B`` / ``prithvi_swin_L``. Its ``state_dict`` keys are
those of the reference release (``patch_embed.projection``, ``stages.N.blocks.M.attn.w_msa.*``,
``stages.N.blocks.M.ffn.layers.*``, ``stages.N.downsample.{norm,reduction}``, ``stages.N.norm``), so
checkpoints fine-tuned with it load unchanged. Unlike timm's Swin, inputs need not be a multiple of
the patch or window size: the image is padded (replicate, bottom/right) to the patch size, every
window attention pads its map to the window size and every patch merging pads odd maps (zeros).

Each stage returns ``(features, tokens, hw)``: the normalised ``(B, H, W, C)`` map of the stage
first (what timm's ``FeatureListNet`` keeps), then the downsampled tokens and their size for the
next stage.

The module path and :class:`MMSegSwinTransformer` (name, parameters, defaults) are the reference
release's; the building blocks (:class:`PatchEmbed`, :class:`SwinFFN`, ...) are this package's own
and their constructors differ from the reference's mmcv-style ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from timm.layers import DropPath
from timm.layers.classifier import ClassifierHead
from torch import Tensor, nn

__all__ = [
    "MMSegSwinTransformer",
    "PatchEmbed",
    "PatchMerging",
    "ShiftWindowMSA",
    "SwinBlock",
    "SwinBlockSequence",
    "SwinFFN",
    "WindowMSA",
    "relative_position_index",
]

#: Logit added between tokens of different shifted-window regions.
MASK_VALUE = -100.0


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise ValueError(f"Expected an int or a pair of ints, got {value!r}.")
    return value  # type: ignore[return-value]


def relative_position_index(window_size: tuple[int, int]) -> Tensor:
    """``(N, N)`` index into the bias table for every (query, key) pair of a window (``N = Wh*Ww``)."""
    wh, ww = window_size
    rows, cols = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # 2, N
    delta = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (delta[0] + wh - 1) * (2 * ww - 1) + (delta[1] + ww - 1)


def _pad_bottom_right(x: Tensor, multiple: tuple[int, int], mode: str = "constant") -> Tensor:
    """Pad a ``(B, C, H, W)`` map at the bottom/right up to multiples of ``multiple``."""
    pad_h = -x.shape[-2] % multiple[0]
    pad_w = -x.shape[-1] % multiple[1]
    if pad_h or pad_w:
        x = F.pad(x, [0, pad_w, 0, pad_h], mode=mode)
    return x


class PatchEmbed(nn.Module):
    """Non-overlapping convolutional patch embedding followed by a norm.

    Args:
        in_chans: Input channels.
        embed_dim: Output channels.
        patch_size: Kernel size and stride of the projection.
        norm_layer: Norm applied to the tokens (``None``: none).
        padding_mode: ``F.pad`` mode for the bottom/right padding up to ``patch_size``.
        drop_rate: Dropout on the tokens.
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dim: int = 96,
        patch_size: int | Sequence[int] = 4,
        norm_layer: Callable[[int], nn.Module] | None = nn.LayerNorm,
        padding_mode: str = "replicate",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.kernel = _pair(patch_size)
        self.padding_mode = padding_mode
        self.embed_dim = embed_dim
        self.projection = nn.Conv2d(in_chans, embed_dim, kernel_size=self.kernel, stride=self.kernel)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """``(B, C, H, W)`` image → ``(B, h*w, D)`` tokens and ``(h, w)``."""
        x = self.projection(_pad_bottom_right(x, self.kernel, self.padding_mode))
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return self.drop(x), hw


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (channel-major, like ``nn.Unfold``), norm and project.

    Args:
        in_chans: Channels of the incoming tokens.
        out_channels: Channels after the projection.
        stride: Merging stride (the kernel is 2x2).
        norm_layer: Norm over the ``4 * in_chans`` merged features (``None``: none).
    """

    def __init__(
        self,
        in_chans: int,
        out_channels: int,
        stride: int | None = None,
        norm_layer: Callable[[int], nn.Module] | None = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_channels = out_channels
        self.kernel = (2, 2)
        self.stride = _pair(stride if stride is not None else 2)
        merged = 4 * in_chans
        self.norm = norm_layer(merged) if norm_layer is not None else None
        self.reduction = nn.Linear(merged, out_channels, bias=False)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """``(B, H*W, C)`` tokens → merged ``(B, h*w, out_channels)`` and ``(h, w)``."""
        b, length, c = x.shape
        h, w = hw
        if length != h * w:
            raise ValueError(f"PatchMerging got {length} tokens for a {h}x{w} map.")
        grid = x.view(b, h, w, c).permute(0, 3, 1, 2)
        # pad so that the strided 2x2 kernel covers the whole map
        out_h, out_w = math.ceil(h / self.stride[0]), math.ceil(w / self.stride[1])
        pad_h = max((out_h - 1) * self.stride[0] + self.kernel[0] - h, 0)
        pad_w = max((out_w - 1) * self.stride[1] + self.kernel[1] - w, 0)
        if pad_h or pad_w:
            grid = F.pad(grid, [0, pad_w, 0, pad_h])
        merged = F.unfold(grid, kernel_size=self.kernel, stride=self.stride)  # B, 4C, h*w
        new_hw = (
            (grid.shape[2] - self.kernel[0]) // self.stride[0] + 1,
            (grid.shape[3] - self.kernel[1]) // self.stride[1] + 1,
        )
        merged = merged.transpose(1, 2)
        if self.norm is not None:
            merged = self.norm(merged)
        return self.reduction(merged), new_hw


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    ``relative_position_index`` is kept as a (persistent) buffer for ``state_dict`` compatibility,
    but it is a pure function of the window size: a value loaded from a checkpoint is replaced by the
    recomputed one, so a stale or zero-filled entry cannot silently break the attention.

    Args:
        embed_dim: Token channels.
        num_heads: Attention heads.
        window_size: ``(Wh, Ww)``.
        qkv_bias: Bias on the qkv projection.
        qk_scale: Query scale (default ``head_dim ** -0.5``).
        attn_drop_rate: Dropout on the attention weights.
        proj_drop_rate: Dropout after the output projection.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        window_size: tuple[int, int],
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}.")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.window_size = _pair(window_size)
        self.scale = qk_scale or (embed_dim // num_heads) ** -0.5
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        key = prefix + "relative_position_index"
        if key in state_dict and tuple(state_dict[key].shape) == tuple(self.relative_position_index.shape):
            state_dict[key] = self.relative_position_index.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B*nW, N, C)`` window tokens; ``mask`` ``(nW, N, N)`` of additive logits or ``None``."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(bw // windows, windows, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(x))


def _windows(x: Tensor, size: int) -> Tensor:
    """``(B, H, W, C)`` → ``(B * H/size * W/size, size, size, C)``."""
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c)


def _unwindows(windows: Tensor, size: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`_windows` for a ``h x w`` map."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // size, w // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class ShiftWindowMSA(nn.Module):
    """Window attention over a zero-padded map, cyclically shifted by ``shift_size`` when non-zero.

    Args:
        embed_dim: Token channels.
        num_heads: Attention heads.
        window_size: Side of the square windows.
        shift_size: Cyclic shift (``0 <= shift_size < window_size``).
        qkv_bias: See :class:`WindowMSA`.
        qk_scale: See :class:`WindowMSA`.
        attn_drop_rate: See :class:`WindowMSA`.
        proj_drop_rate: See :class:`WindowMSA`.
        drop_path_rate: Stochastic depth on the output.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size={window_size}), got {shift_size}.")
        self.window_size = window_size
        self.shift_size = shift_size
        self.w_msa = WindowMSA(
            embed_dim,
            num_heads,
            (window_size, window_size),
            qkv_bias,
            qk_scale,
            attn_drop_rate,
            proj_drop_rate,
        )
        self.drop = DropPath(drop_path_rate)

    def _shift_mask(self, h: int, w: int, like: Tensor) -> Tensor:
        """``(nW, N, N)`` additive mask separating the regions that the cyclic shift brings together."""
        ws, shift = self.window_size, self.shift_size
        regions = torch.zeros((1, h, w, 1), device=like.device, dtype=like.dtype)
        bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        label = 0
        for rows in bounds:
            for cols in bounds:
                regions[:, rows, cols, :] = label
                label += 1
        labels = _windows(regions, ws).reshape(-1, ws * ws)
        differ = labels.unsqueeze(1) - labels.unsqueeze(2)
        return differ.masked_fill(differ != 0, MASK_VALUE).masked_fill(differ == 0, 0.0)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``(B, H*W, C)`` tokens → attended tokens of the same shape."""
        b, length, c = x.shape
        h, w = hw
        if length != h * w:
            raise ValueError(f"ShiftWindowMSA got {length} tokens for a {h}x{w} map.")
        ws = self.window_size
        grid = F.pad(x.view(b, h, w, c), (0, 0, 0, -w % ws, 0, -h % ws))
        hp, wp = grid.shape[1], grid.shape[2]
        mask = None
        if self.shift_size:
            grid = torch.roll(grid, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask = self._shift_mask(hp, wp, grid)
        attended = self.w_msa(_windows(grid, ws).reshape(-1, ws * ws, c), mask=mask)
        grid = _unwindows(attended.reshape(-1, ws, ws, c), ws, hp, wp)
        if self.shift_size:
            grid = torch.roll(grid, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        out = grid[:, :h, :w, :].reshape(b, h * w, c)
        return self.drop(out)


class SwinFFN(nn.Module):
    """Two-layer MLP with residual; parameters ``layers.0.0`` (fc1) and ``layers.1`` (fc2).

    Args:
        embed_dims: Token channels.
        feedforward_channels: Hidden channels.
        act_layer: Activation class.
        ffn_drop: Dropout after each linear layer.
        drop_path_rate: Stochastic depth on the residual branch.
    """

    def __init__(
        self,
        embed_dims: int,
        feedforward_channels: int,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        ffn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, feedforward_channels), act_layer(), nn.Dropout(ffn_drop)),
            nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(ffn_drop),
        )
        self.dropout_layer = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        """``identity + MLP(x)`` (``identity`` defaults to ``x``)."""
        return (x if identity is None else identity) + self.dropout_layer(self.layers(x))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each with a residual connection.

    Args:
        embed_dim: Token channels.
        num_heads: Attention heads.
        feedforward_channels: MLP hidden channels.
        window_size: Window side.
        shift: Shift windows by ``window_size // 2``.
        qkv_bias: See :class:`WindowMSA`.
        qk_scale: See :class:`WindowMSA`.
        drop_rate: Dropout after projections.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth of both branches.
        act_layer: MLP activation class.
        norm_layer: Norm class.
        with_cp: Gradient checkpointing while training.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        feedforward_channels: int,
        window_size: int = 7,
        shift: bool = False,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = norm_layer(embed_dim)
        self.attn = ShiftWindowMSA(
            embed_dim,
            num_heads,
            window_size,
            shift_size=window_size // 2 if shift else 0,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.norm2 = norm_layer(embed_dim)
        self.ffn = SwinFFN(embed_dim, feedforward_channels, act_layer, drop_rate, drop_path_rate)

    def _forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``(B, H*W, C)`` → same shape."""
        if self.with_cp and x.requires_grad:
            return checkpoint.checkpoint(self._forward, x, hw, use_reentrant=False)
        return self._forward(x, hw)


class SwinBlockSequence(nn.Module):
    """One stage: blocks alternating plain/shifted windows, an output norm and an optional merging.

    Takes ``(tokens, hw)`` or the previous stage's ``(features, tokens, hw)`` and returns
    ``(features, tokens, hw)``: ``features`` is the normalised ``(B, H, W, C)`` map of this stage,
    ``tokens``/``hw`` the (downsampled, when there is a ``downsample``) input of the next stage.

    Args:
        embed_dim: Token channels.
        num_heads: Attention heads.
        feedforward_channels: MLP hidden channels.
        depth: Number of blocks.
        window_size: Window side.
        qkv_bias: See :class:`WindowMSA`.
        qk_scale: See :class:`WindowMSA`.
        drop_rate: See :class:`SwinBlock`.
        attn_drop_rate: See :class:`SwinBlock`.
        drop_path_rate: One rate for all blocks or a list with one per block.
        downsample: Patch merging after the blocks, or ``None``.
        act_layer: See :class:`SwinBlock`.
        norm_layer: See :class:`SwinBlock`.
        with_cp: See :class:`SwinBlock`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        feedforward_channels: int,
        depth: int,
        window_size: int = 7,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float | Sequence[float] = 0.0,
        downsample: nn.Module | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(drop_path_rate, (int, float)):
            rates = [float(drop_path_rate)] * depth
        else:
            rates = [float(r) for r in drop_path_rate]
            if len(rates) != depth:
                raise ValueError(f"Got {len(rates)} drop path rates for a stage of depth {depth}.")
        self.blocks = nn.ModuleList(
            SwinBlock(
                embed_dim,
                num_heads,
                feedforward_channels,
                window_size=window_size,
                shift=i % 2 == 1,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=rates[i],
                act_layer=act_layer,
                norm_layer=norm_layer,
                with_cp=with_cp,
            )
            for i in range(depth)
        )
        self.downsample = downsample
        self.norm = norm_layer(embed_dim)

    def forward(self, inputs: tuple[Any, ...]) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """See the class docstring."""
        x, hw = inputs[-2], inputs[-1]
        for block in self.blocks:
            x = block(x, hw)
        features = self.norm(x).view(x.shape[0], *hw, -1)
        if self.downsample is not None:
            x, hw = self.downsample(x, hw)
        return features, x, hw


class MMSegSwinTransformer(nn.Module):
    """Swin Transformer (mmsegmentation layout) with padding for any input size.

    ``forward_features`` returns the last stage's ``(features, tokens, hw)``; ``forward`` classifies
    its NHWC features with ``head``. As a timm ``features_only`` model (``feature_info`` names the
    stages) it yields the ``(B, H_i, W_i, C_i)`` map of every stage.

    Args:
        pretrain_img_size: Image size of pre-training (validated only; the model takes any size).
        in_chans: Input channels.
        embed_dim: Channels of the first stage (doubled by each merging).
        patch_size: Patch embedding size; must equal ``strides[0]``.
        window_size: Attention window side.
        mlp_ratio: MLP hidden channels per token channel.
        depths: Blocks per stage.
        num_heads: Attention heads per stage.
        strides: Patch embedding stride, then the merging stride of each later stage.
        num_classes: Classes of ``head``.
        global_pool: Pooling of ``head``.
        out_indices: Stages that a timm feature extractor returns (stored for reference).
        qkv_bias: Bias on the qkv projections.
        qk_scale: Query scale override.
        drop_rate: Dropout rate.
        attn_drop_rate: Attention dropout rate.
        drop_path_rate: Largest stochastic depth rate (linearly increasing over blocks).
        act_layer: MLP activation class.
        norm_layer: Norm class.
        with_cp: Gradient checkpointing while training.
        frozen_stages: Freeze the patch embedding (``>= 0``) and stages ``0 .. frozen_stages - 1``
            (``-1``: nothing). The reference release crashes on any value ``>= 0``; here it works.
    """

    def __init__(
        self,
        pretrain_img_size: int | tuple[int, ...] = 224,
        in_chans: int = 3,
        embed_dim: int = 96,
        patch_size: int = 4,
        window_size: int = 7,
        mlp_ratio: float = 4,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        strides: Sequence[int] = (4, 2, 2, 2),
        num_classes: int = 1000,
        global_pool: str = "avg",
        out_indices: Sequence[int] = (0, 1, 2, 3),
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        with_cp: bool = False,
        frozen_stages: int = -1,
    ) -> None:
        super().__init__()
        self.pretrain_img_size = _pair(pretrain_img_size)
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length.")
        if strides[0] != patch_size:
            raise ValueError(f"strides[0]={strides[0]} must equal patch_size={patch_size} (non-overlapping).")
        self.output_fmt = "NHWC"
        self.frozen_stages = frozen_stages
        self.out_indices = tuple(out_indices)
        self.num_layers = len(depths)
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(
            in_chans,
            embed_dim,
            patch_size,
            norm_layer=norm_layer,
            padding_mode="replicate",
            drop_rate=drop_rate,
        )
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.feature_info: list[dict[str, Any]] = []
        stages = []
        width, reduction = embed_dim, patch_size
        for i, depth in enumerate(depths):
            last = i == self.num_layers - 1
            downsample = None if last else PatchMerging(width, 2 * width, strides[i + 1], norm_layer)
            start = sum(depths[:i])
            stages.append(
                SwinBlockSequence(
                    width,
                    num_heads[i],
                    int(mlp_ratio * width),
                    depth,
                    window_size=window_size,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=rates[start : start + depth],
                    downsample=downsample,
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    with_cp=with_cp,
                )
            )
            if i > 0:
                reduction *= 2
            self.feature_info.append({"num_chs": width, "reduction": reduction, "module": f"stages.{i}"})
            if downsample is not None:
                width = downsample.out_channels
        self.stages = nn.Sequential(*stages)
        self.num_features = [int(embed_dim * 2**i) for i in range(self.num_layers)]
        self.head = ClassifierHead(
            self.num_features[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate, input_fmt="NHWC"
        )
        self._freeze_stages()

    def train(self, mode: bool = True) -> MMSegSwinTransformer:
        """Set the mode, keeping frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: list[nn.Module] = [self.patch_embed, *list(self.stages)[: self.frozen_stages]]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    @torch.jit.ignore
    def init_weights(self, mode: str = "") -> None:
        """Re-initialise with timm's ViT scheme (``""``, ``"jax"``, ``"jax_nlhb"`` or ``"moco"``)."""
        from timm.models._manipulate import named_apply
        from timm.models.vision_transformer import get_init_weights_vit

        modes = ("jax", "jax_nlhb", "moco", "")
        if mode not in modes:
            raise ValueError(f"init_weights mode must be one of {modes}, got {mode!r}.")
        head_bias = -math.log(self.num_classes) if "nlhb" in mode and self.num_classes > 0 else 0.0
        named_apply(get_init_weights_vit(mode, head_bias=head_bias), self)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Relative position bias tables are excluded from weight decay."""
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for layer-wise learning-rate decay (timm convention)."""
        return {
            "stem": r"^patch_embed",
            "blocks": r"^stages\.(\d+)"
            if coarse
            else [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.\w+\.(\d+)", None)],
        }

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier's final layer."""
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (``num_classes=0``: identity)."""
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """The last stage's ``(features, tokens, hw)``."""
        return self.stages(self.patch_embed(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Classify ``(B, H, W, C)`` features."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → class logits."""
        return self.forward_head(self.forward_features(x)[0])
