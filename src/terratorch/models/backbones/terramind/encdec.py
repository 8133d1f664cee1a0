"""The full TerraMind encoder-decoder (the model of the published weight files).

:class:`TerraMind` encodes the visible tokens of any input modalities and decodes target tokens of
tokenised modalities with cross-attention to the encoder output, the 4M recipe TerraMind was
pretrained with. It is the generator behind Thinking-in-Modalities (:mod:`.tim`) and the
``terramind_v1_*_encdec`` full models. Class, argument and parameter names are those of TerraTorch
1.2, so the published files (``TerraMind_v1_base.pt``: encoder *and* decoder tensors) load as they are.

Public names (stable): :class:`CrossAttention`, :class:`NormCrossAttention`, :class:`DecoderBlock`,
:class:`TerraMind`, :func:`build_decoder_modality_embeddings`, :func:`resolve_target_modality`.

Modality dicts (``mod_dict``) follow 4M: per canonical modality key a dict with ``tensor`` (pixels or
ids), ``input_mask`` (True: not visible to the encoder), ``target_mask`` (True: not a decoder
target) and, for sequences, ``decoder_attention_mask``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.terramind.decoder_embeddings import build_decoder_embedding
from terratorch.models.backbones.terramind.layers import (
    Attention,
    Block,
    DropPath,
    GatedMlp,
    LayerNorm,
    Mlp,
    NormAttention,
)
from terratorch.models.backbones.terramind.modalities import MODALITY_INFO, resolve_output_modality

__all__ = [
    "CrossAttention",
    "DecoderBlock",
    "NormCrossAttention",
    "TerraMind",
    "build_decoder_modality_embeddings",
    "resolve_target_modality",
]

_SEQUENCE_TYPES = ("seq", "seq_emb", "seq_token")
#: Default norm factory (TerraTorch 1.2's ``partial(LayerNorm, eps=1e-6)``; the registered sizes pass theirs).
DEFAULT_NORM: Callable[[int], nn.Module] = partial(LayerNorm, eps=1e-6)


def _cross_mask(mask: Tensor | None, device: torch.device) -> Tensor | None:
    """TerraMind's "True = do not attend" mask (``B, M`` or ``B, N, M``) → SDPA's "True = attend"."""
    if mask is None:
        return None
    if mask.dim() == 2:
        return ~mask[:, None, None, :].to(dtype=torch.bool, device=device)
    if mask.dim() == 3:
        return ~mask[:, None, :, :].to(dtype=torch.bool, device=device)
    raise ValueError(
        f"A cross-attention mask is (B, M) or (B, N, M) with True = 'do not attend', got {tuple(mask.shape)}."
    )


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` (``B, N, D``) over a ``context`` (``B, M, D``)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, dim = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(batch, length, heads, dim // heads).permute(0, 2, 1, 3)
        kv = self.kv(context).reshape(batch, context.shape[1], 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
        return q, kv[0], kv[1]

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend from ``x`` to ``context``; ``mask`` True marks pairs that must not attend."""
        batch, length, dim = x.shape
        q, k, v = self._heads(x, context)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=_cross_mask(mask, x.device),
            dropout_p=self.attn_drop.p if self.training else 0.0,
            scale=self.scale,
        )
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(batch, length, dim)))


class NormCrossAttention(CrossAttention):
    """Cross-attention with normalised queries and keys (``qk_norm=True``)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        allow_zero_attn: bool = False,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, proj_bias, attn_drop, proj_drop)
        self.allow_zero_attn = allow_zero_attn
        self.q_norm = norm_layer(dim // num_heads)
        self.k_norm = norm_layer(dim // num_heads)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend from ``x`` to ``context`` with q/k normalised per head (``mask``: ``B, N, M``)."""
        batch, length, _ = x.shape
        q, k, v = self._heads(x, context)
        attn = (self.q_norm(q) @ self.k_norm(k).transpose(-2, -1)) * self.scale
        if mask is not None:
            attn = attn.masked_fill(mask.unsqueeze(1), -torch.finfo(attn.dtype).max)
        if self.allow_zero_attn:
            attn = F.pad(attn, (0, 1)).softmax(dim=-1)[..., :-1]
        else:
            attn = attn.softmax(dim=-1)
        y = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(batch, length, -1)
        return self.proj_drop(self.proj(y))


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: self-attention, cross-attention to the encoder, feed-forward.

    Parameter names (``norm1``, ``self_attn``, ``query_norm``, ``context_norm``, ``cross_attn``,
    ``norm2``, ``mlp``) are those of the published checkpoints. Arguments as
    :class:`~terratorch.models.backbones.terramind.layers.Block`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        mlp_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        gated_mlp: bool = False,
        qk_norm: bool = False,
        allow_zero_attn: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        if qk_norm:
            self.self_attn: Attention = NormAttention(
                dim, num_heads, qkv_bias, proj_bias, norm_layer, attn_drop, drop, allow_zero_attn
            )
            self.cross_attn: CrossAttention = NormCrossAttention(
                dim, num_heads, qkv_bias, proj_bias, norm_layer, attn_drop, drop, allow_zero_attn
            )
        else:
            self.self_attn = Attention(dim, num_heads, qkv_bias, proj_bias, attn_drop, drop)
            self.cross_attn = CrossAttention(dim, num_heads, qkv_bias, proj_bias, attn_drop, drop)
        self.query_norm = norm_layer(dim)
        self.context_norm = norm_layer(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        if gated_mlp:
            self.mlp: nn.Module = GatedMlp(dim, hidden, act_layer=act_layer, bias=mlp_bias)
        else:
            self.mlp = Mlp(dim, hidden, act_layer=act_layer, bias=mlp_bias, drop=drop)

    def forward(
        self, x: Tensor, context: Tensor, sa_mask: Tensor | None = None, xa_mask: Tensor | None = None
    ) -> Tensor:
        """Decode ``x`` (``B, N, D``) against ``context`` (``B, M, D``)."""
        x = x + self.drop_path(self.self_attn(self.norm1(x), sa_mask))
        x = x + self.drop_path(self.cross_attn(self.query_norm(x), self.context_norm(context), xa_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def resolve_target_modality(name: str) -> str:
    """The tokenised key a decoder target ``name`` selects (``"LULC"`` → ``"tok_lulc@224"``).

    Raises:
        UnknownModalityError: No tokenised modality matches (the message lists the valid names).
    """
    return resolve_output_modality(name)


def build_decoder_modality_embeddings(
    modalities: Sequence[str], img_size: int | Sequence[int] = 224, dim: int = 768
) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Decoder embeddings for target ``modalities`` (names or keys) and the user name → key mapping.

    Raises:
        UnknownModalityError: A name matches no tokenised modality.
    """
    embeddings: dict[str, nn.Module] = {}
    mapping: dict[str, str] = {}
    for name in modalities:
        key = resolve_target_modality(name)
        embeddings[key] = build_decoder_embedding(key, dim, img_size)
        mapping[name] = key
    return embeddings, mapping


def _gather_tokens(values: Tensor, index: Tensor) -> Tensor:
    """``values[b, index[b]]`` for ``(B, N)`` or ``(B, N, D)`` values."""
    if values.ndim == 3:
        index = index.unsqueeze(-1).expand(-1, -1, values.shape[2])
    return torch.gather(values, 1, index)


def _first_unmasked(mask: Tensor, count: Tensor | int) -> Tensor:
    """Indices of the ``count`` leading unmasked positions, in order (stable 4M sort with a tiny ramp)."""
    ramp = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) * 1e-6
    return torch.argsort(mask + ramp, dim=1)[:, :count]


class TerraMind(nn.Module):
    """TerraMind encoder-decoder over modality dicts (see the module docstring).

    Args:
        encoder_embeddings: Canonical modality key → encoder embedding module.
        decoder_embeddings: Canonical modality key → decoder embedding module.
        modality_info: Facts per modality key (``type``, ``id``, ...); default :data:`MODALITY_INFO`.
        dim: Token width.
        encoder_depth: Encoder blocks.
        decoder_depth: Decoder blocks.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width over ``dim``.
        qkv_bias: Bias in the q/k/v projections.
        proj_bias: Bias in the attention output projections.
        mlp_bias: Biases in the feed-forwards.
        drop_path_rate_encoder: Stochastic depth of the encoder (rising over the blocks).
        drop_path_rate_decoder: Stochastic depth of the decoder.
        shared_drop_path: One rising schedule over encoder then decoder blocks.
        act_layer: Feed-forward activation class.
        norm_layer: Norm factory (called with ``dim``).
        gated_mlp: SwiGLU feed-forwards.
        qk_norm: Normalise queries and keys.
        decoder_causal_mask: Causal self-attention over all decoder tokens.
        decoder_sep_mask: Decoder tokens attend only within their own modality.
        num_register_tokens: Learned tokens prepended to the encoder input.
        use_act_checkpoint: Kept for signature compatibility (no activation checkpointing here).
        share_modality_embeddings: Tie ``mod_emb`` of modalities present in encoder and decoder.
    """

    def __init__(
        self,
        encoder_embeddings: Mapping[str, nn.Module],
        decoder_embeddings: Mapping[str, nn.Module],
        modality_info: Mapping[str, Mapping[str, Any]] | None = None,
        dim: int = 768,
        encoder_depth: int = 12,
        decoder_depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        mlp_bias: bool = True,
        drop_path_rate_encoder: float = 0.0,
        drop_path_rate_decoder: float = 0.0,
        shared_drop_path: bool = False,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = DEFAULT_NORM,
        gated_mlp: bool = False,
        qk_norm: bool = False,
        decoder_causal_mask: bool = False,
        decoder_sep_mask: bool = True,
        num_register_tokens: int = 0,
        use_act_checkpoint: bool = False,
        share_modality_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.modality_info = dict(modality_info if modality_info is not None else MODALITY_INFO)
        for key in [*encoder_embeddings, *decoder_embeddings]:
            if key not in self.modality_info:
                raise ValueError(
                    f"TerraMind modality {key!r} has no entry in modality_info; known keys: "
                    f"{sorted(self.modality_info)}."
                )
        self.dim = dim
        self.decoder_causal_mask = decoder_causal_mask
        self.decoder_sep_mask = decoder_sep_mask
        self.init_std = 0.02
        self.use_act_checkpoint = use_act_checkpoint
        self.num_register_tokens = num_register_tokens

        self.encoder_modalities = set(encoder_embeddings)
        for module in encoder_embeddings.values():
            module.init(dim_tokens=dim, init_std=self.init_std)
        self.encoder_embeddings = nn.ModuleDict(dict(encoder_embeddings))
        self.decoder_modalities = set(decoder_embeddings)
        for module in decoder_embeddings.values():
            module.init(dim_tokens=dim, init_std=self.init_std)
        self.decoder_embeddings = nn.ModuleDict(dict(decoder_embeddings))
        if share_modality_embeddings:
            self.share_modality_embeddings()

        if shared_drop_path:
            rates = torch.linspace(0, drop_path_rate_encoder, encoder_depth + decoder_depth, device="cpu")
            encoder_rates = [float(r) for r in rates[:encoder_depth]]
            decoder_rates = [float(r) for r in rates[encoder_depth:]]
        else:
            encoder_rates = [
                float(r) for r in torch.linspace(0, drop_path_rate_encoder, encoder_depth, device="cpu")
            ]
            decoder_rates = [
                float(r) for r in torch.linspace(0, drop_path_rate_decoder, decoder_depth, device="cpu")
            ]
        block_kwargs = {
            "dim": dim,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "proj_bias": proj_bias,
            "mlp_bias": mlp_bias,
            "act_layer": act_layer,
            "norm_layer": norm_layer,
            "gated_mlp": gated_mlp,
            "qk_norm": qk_norm,
        }
        self.encoder = nn.ModuleList([Block(drop_path=r, **block_kwargs) for r in encoder_rates])
        self.encoder_norm = norm_layer(dim)
        self.decoder_proj_context = nn.Linear(dim, dim)
        self.decoder = nn.ModuleList([DecoderBlock(drop_path=r, **block_kwargs) for r in decoder_rates])
        self.decoder_norm = norm_layer(dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=self.init_std)
        self.register_tokens: nn.Parameter | None = None
        if num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim))
            nn.init.normal_(self.register_tokens, std=self.init_std)
        self.init_weights()

    # ------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------
    def share_modality_embeddings(self) -> None:
        """Tie the decoder's ``mod_emb`` to the encoder's for modalities present in both."""
        for key in self.encoder_modalities & self.decoder_modalities:
            self.decoder_embeddings[key].mod_emb = self.encoder_embeddings[key].mod_emb

    def init_weights(self) -> None:
        """MAE-style init: Xavier-uniform linears (q/k/v split), unit norms, N(0, 0.02) tables."""
        for name, module in self.named_modules():
            if "tokenizer" in name:
                continue
            if isinstance(module, nn.Linear):
                fan_out = module.weight.shape[0]
                if "qkv" in name:
                    fan_out //= 3
                elif "kv" in name:
                    fan_out //= 2
                if "kv" in name:
                    bound = math.sqrt(6.0 / float(fan_out + module.weight.shape[1]))
                    nn.init.uniform_(module.weight, -bound, bound)
                else:
                    nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
            elif isinstance(module, (nn.LayerNorm, LayerNorm)):
                nn.init.constant_(module.weight, 1.0)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.init_std)
            elif isinstance(module, nn.Conv2d) and ".proj" in name:
                weight = module.weight.data
                nn.init.xavier_uniform_(weight.view([weight.shape[0], -1]))

    def get_num_layers_encoder(self) -> int:
        """Number of encoder blocks."""
        return len(self.encoder)

    def get_num_layers_decoder(self) -> int:
        """Number of decoder blocks."""
        return len(self.decoder)

    def get_num_layers(self) -> int:
        """Encoder plus decoder blocks."""
        return self.get_num_layers_encoder() + self.get_num_layers_decoder()

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters the embeddings exclude from weight decay."""
        names: set[str] = set()
        for side in ("encoder_embeddings", "decoder_embeddings"):
            for key, module in getattr(self, side).items():
                if hasattr(module, "no_weight_decay"):
                    names |= {f"{side}.{key}.{n}" for n in module.no_weight_decay()}
        return names

    # ------------------------------------------------------------------------------------------
    # token selection
    # ------------------------------------------------------------------------------------------
    def _modality_ids(self, like: Tensor, key: str) -> Tensor:
        return torch.full_like(like, self.modality_info[key]["id"], dtype=torch.int)

    def cat_encoder_tensors(
        self, mod_dict: Mapping[str, Mapping[str, Tensor]]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Concatenate tokens ``x``, embeddings ``emb``, input masks and modality ids over the modalities."""
        tokens = torch.cat([d["x"] for d in mod_dict.values()], dim=1)
        emb = torch.cat([d["emb"] for d in mod_dict.values()], dim=1)
        mask = torch.cat([d["input_mask"] for d in mod_dict.values()], dim=1)
        ids = torch.cat([self._modality_ids(d["input_mask"], k) for k, d in mod_dict.items()], dim=1)
        return tokens, emb, mask, ids

    def cat_decoder_tensors(
        self, mod_dict: Mapping[str, Mapping[str, Tensor]]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Concatenate the decoder inputs of the targets, in a random modality order (as in 4M).

        Sequence targets are shifted (inputs ``[:-1]``, targets ``ids[1:]``); image targets feed the
        mask token. Returns tokens, embeddings, target masks, target ids, attention masks, modality ids.
        """
        items = random.sample(list(mod_dict.items()), len(mod_dict))
        tokens, emb, mask, targets, attention, ids = [], [], [], [], [], []
        for key, d in items:
            if self.modality_info[key]["type"] in _SEQUENCE_TYPES:
                tokens.append(d["x"][:, :-1])
                targets.append(d["ids"][:, 1:])
                emb.append(d["emb"][:, :-1])
                mask.append(torch.logical_or(d["target_mask"][:, 1:], d["target_mask"][:, :-1]))
                attention.append(d["decoder_attention_mask"][:, :-1])
                ids.append(self._modality_ids(d["ids"][:, :-1], key))
            else:
                tokens.append(torch.zeros_like(d["x"]) + self.mask_token)
                targets.append(d["ids"])
                emb.append(d["emb"])
                mask.append(d["target_mask"])
                attention.append(d["decoder_attention_mask"])
                ids.append(self._modality_ids(d["ids"], key))
        cat = partial(torch.cat, dim=1)
        return cat(tokens), cat(emb), cat(mask), cat(targets), cat(attention), cat(ids)

    def _prepend_registers(
        self, tokens: Tensor, emb: Tensor, mask: Tensor, ids: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.register_tokens is None:
            return tokens, emb, mask, ids
        batch, count = tokens.shape[0], self.num_register_tokens
        registers = self.register_tokens.expand(batch, -1, -1)
        tokens = torch.cat([registers, tokens], dim=1)
        emb = torch.cat([torch.zeros_like(registers), emb], dim=1)
        mask = torch.cat([torch.zeros((batch, count), dtype=torch.bool, device=mask.device), mask], dim=1)
        ids = torch.cat([torch.full((batch, count), -1, dtype=torch.int, device=ids.device), ids], dim=1)
        return tokens, emb, mask, ids

    def select_encoder_tokens(
        self, mod_dict: Mapping[str, Mapping[str, Tensor]], num_encoder_tokens: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Keep the first ``num_encoder_tokens`` visible tokens (plus register tokens), zeroing padding.

        Returns tokens ``(B, N, D)``, embeddings ``(B, N, D)``, the mask ``(B, 1, N)`` (True: padding)
        and modality ids ``(B, N)`` (-1 for padding and registers).
        """
        tokens, emb, mask, ids = self.cat_encoder_tensors(mod_dict)
        keep = _first_unmasked(mask, num_encoder_tokens)
        tokens, emb = _gather_tokens(tokens, keep), _gather_tokens(emb, keep)
        mask, ids = torch.gather(mask, 1, keep), torch.gather(ids, 1, keep)
        tokens, emb, mask, ids = self._prepend_registers(tokens, emb, mask, ids)
        tokens[mask] = 0.0
        emb[mask] = 0.0
        ids[mask] = -1
        return tokens, emb, mask.unsqueeze(1), ids

    def forward_mask_encoder(
        self, mod_dict: Mapping[str, Mapping[str, Tensor]], num_encoder_tokens: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """TerraTorch 1.2 name of :meth:`select_encoder_tokens`."""
        return self.select_encoder_tokens(mod_dict, num_encoder_tokens)

    def forward_mask_decoder(
        self, mod_dict: Mapping[str, Mapping[str, Tensor]], num_decoder_tokens: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Keep the first ``num_decoder_tokens`` targets; returns tokens, emb, mask ``(B, 1, M)``, target
        ids, the full self-attention mask ``(B, M, M)`` and modality ids."""
        tokens, emb, mask, targets, attention, ids = self.cat_decoder_tensors(mod_dict)
        keep = _first_unmasked(mask, num_decoder_tokens)
        tokens, emb = _gather_tokens(tokens, keep), _gather_tokens(emb, keep)
        mask, targets = torch.gather(mask, 1, keep), torch.gather(targets, 1, keep)
        attention, ids = torch.gather(attention, 1, keep), torch.gather(ids, 1, keep)
        tokens[mask] = 0.0
        emb[mask] = 0.0
        targets[mask] = 0
        attention = self.adapt_decoder_attention_mask(attention, ids)
        ids[mask] = -1
        return tokens, emb, mask.unsqueeze(1), targets, attention, ids

    def adapt_decoder_attention_mask(
        self, decoder_attention_mask: Tensor, mod_mask: Tensor | None = None
    ) -> Tensor:
        """Expand the compressed decoder attention mask ``(B, M)`` to ``(B, M, M)`` (True: do not attend).

        Each entry counts how many following tokens form a fully connected group (``[4, 0, 0, 0]``:
        all attend to each other; ``[1, 1, 1, 1]``: causal). With ``decoder_sep_mask`` tokens attend
        only within their modality.
        """
        batch, length = decoder_attention_mask.shape
        device = decoder_attention_mask.device
        if self.decoder_causal_mask:
            adapted = (
                torch.ones((length, length), dtype=torch.bool, device=device).triu(1).expand(batch, -1, -1)
            )
        else:
            columns = torch.arange(length, device=device).expand(batch, length, length)
            adapted = columns >= torch.cumsum(decoder_attention_mask, dim=-1).unsqueeze(-1)
        if self.decoder_sep_mask and mod_mask is not None:
            adapted = adapted | (mod_mask.unsqueeze(1) != mod_mask.unsqueeze(2))
        return adapted

    # ------------------------------------------------------------------------------------------
    # transformer
    # ------------------------------------------------------------------------------------------
    def forward_encoder(self, x: Tensor, encoder_mask: Tensor) -> Tensor:
        """Encoder blocks then ``encoder_norm`` over ``x`` (``B, N, D``); ``encoder_mask``: ``(B, 1, N)``."""
        for block in self.encoder:
            x = block(x, mask=encoder_mask)
        return self.encoder_norm(x)

    def forward_decoder(
        self, y: Tensor, context: Tensor, encoder_mask: Tensor | None, decoder_attention_mask: Tensor | None
    ) -> Tensor:
        """Decoder blocks then ``decoder_norm`` over ``y`` (``B, M, D``), cross-attending to ``context``."""
        for block in self.decoder:
            y = block(y, context, sa_mask=decoder_attention_mask, xa_mask=encoder_mask)
        return self.decoder_norm(y)

    def forward_logits(
        self,
        y: Tensor,
        decoder_mod_dict: Mapping[str, Any],
        decoder_mod_mask: Tensor,
        return_all_logits: bool = False,
    ) -> dict[str, Tensor]:
        """Logits per target modality: of its own tokens ``(n, V)`` (every token: ``return_all_logits``)."""
        logits = {}
        for key in decoder_mod_dict:
            embedding = self.decoder_embeddings[key]
            if return_all_logits:
                logits[key] = embedding.forward_logits(y)
            else:
                logits[key] = embedding.forward_logits(y[decoder_mod_mask == self.modality_info[key]["id"]])
        return logits

    def forward_loss(
        self,
        y: Tensor,
        target_ids: Tensor,
        decoder_mod_dict: Mapping[str, Any],
        decoder_mod_mask: Tensor,
        loss_type: str,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy of the targets: averaged per modality (``"mod"``) or per token (``"token"``).

        Raises:
            ValueError: ``loss_type`` is not ``mod``/``modality``/``token``.
        """
        if loss_type not in ("mod", "modality", "token"):
            raise ValueError(f"loss_type must be 'mod' (or 'modality') or 'token', got {loss_type!r}.")
        losses: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for key in decoder_mod_dict:
            selected = decoder_mod_mask == self.modality_info[key]["id"]
            logits = self.decoder_embeddings[key].forward_logits(y[selected])
            if logits.numel() == 0:
                losses[key] = torch.zeros(1, device=logits.device)
                counts[key] = 0
            else:
                losses[key] = F.cross_entropy(logits, target_ids[selected].long(), reduction="mean")
                counts[key] = logits.numel()
        if loss_type == "token":
            total = sum(losses[k] * counts[k] for k in losses) / sum(counts.values())
        else:
            total = sum(losses.values()) / len(losses)
        return total, losses

    def forward(
        self,
        mod_dict: Mapping[str, dict[str, Tensor]],
        num_encoder_tokens: int,
        num_decoder_tokens: int,
        loss_type: str = "mod",
        return_logits: bool = False,
    ) -> dict[str, Tensor] | tuple[Tensor, dict[str, Tensor]]:
        """Masked-modeling pass: encode visible tokens, decode targets.

        Args:
            mod_dict: Modality dicts keyed by canonical modality key.
            num_encoder_tokens: Visible tokens kept for the encoder.
            num_decoder_tokens: Target tokens kept for the decoder.
            loss_type: ``"mod"`` (mean of per-modality losses) or ``"token"`` (mean over tokens).
            return_logits: Return ``{modality: logits of every decoder token}`` instead of the loss.

        Returns:
            The logits, or ``(loss, {modality: loss})``.
        """
        encoder_dict = {
            k: self.encoder_embeddings[k](d) for k, d in mod_dict.items() if k in self.encoder_embeddings
        }
        tokens, emb, encoder_mask, _ = self.select_encoder_tokens(encoder_dict, num_encoder_tokens)
        decoder_dict = {
            k: self.decoder_embeddings[k].forward_embed(d)
            for k, d in mod_dict.items()
            if k in self.decoder_embeddings
        }
        y_tokens, y_emb, _, target_ids, attention, decoder_ids = self.forward_mask_decoder(
            decoder_dict, num_decoder_tokens
        )
        x = self.forward_encoder(tokens + emb, encoder_mask=encoder_mask)
        context = self.decoder_proj_context(x) + emb
        y = self.forward_decoder(y_tokens + y_emb, context, encoder_mask, attention)
        if return_logits:
            return self.forward_logits(y, decoder_dict, decoder_ids, return_all_logits=True)
        return self.forward_loss(y, target_ids, decoder_dict, decoder_ids, loss_type)

    # ------------------------------------------------------------------------------------------
    # freezing (TerraTorch 1.2 helpers)
    # ------------------------------------------------------------------------------------------
    def _set_grad(self, side: str, flag: bool, embeddings: bool, skip: str = "") -> None:
        for part in (getattr(self, side), getattr(self, f"{side}_norm")):
            part.requires_grad_(flag)
        if embeddings:
            getattr(self, f"{side}_embeddings").requires_grad_(flag)
        elif skip:
            frozen = skip.split("-")
            for name, param in getattr(self, f"{side}_embeddings").named_parameters():
                if name.split(".")[0] in frozen:
                    param.requires_grad = flag

    def freeze_encoder(self, freeze_embeddings: bool = True) -> None:
        """Freeze encoder blocks and norm (and its embeddings)."""
        self._set_grad("encoder", False, freeze_embeddings)

    def freeze_encoder_except_specific_embeddings(self, frozen_embedding_domain: str) -> None:
        """Freeze the encoder and the embeddings of the ``-``-separated modalities."""
        self._set_grad("encoder", False, False, frozen_embedding_domain)

    def unfreeze_encoder(self, unfreeze_embeddings: bool = True) -> None:
        """Unfreeze encoder blocks and norm (and its embeddings)."""
        self._set_grad("encoder", True, unfreeze_embeddings)

    def freeze_decoder(self, freeze_embeddings: bool = True) -> None:
        """Freeze decoder blocks and norm (and its embeddings)."""
        self._set_grad("decoder", False, freeze_embeddings)

    def freeze_decoder_except_specific_embeddings(self, frozen_embedding_domain: str) -> None:
        """Freeze the decoder and the decoder embeddings of the ``-``-separated modalities."""
        self._set_grad("decoder", False, False, frozen_embedding_domain)

    def unfreeze_decoder(self, unfreeze_embeddings: bool = True) -> None:
        """Unfreeze decoder blocks and norm (and its embeddings)."""
        self._set_grad("decoder", True, unfreeze_embeddings)

    def freeze_shared_params(self) -> None:
        """Freeze encoder and decoder, keeping the embeddings trainable."""
        self.freeze_encoder(freeze_embeddings=False)
        self.freeze_decoder(freeze_embeddings=False)

    def freeze_params_except_specific_embeddings(self, frozen_embedding_domain: str) -> None:
        """Freeze encoder, decoder and the embeddings of the given modalities."""
        self.freeze_encoder_except_specific_embeddings(frozen_embedding_domain)
        self.freeze_decoder_except_specific_embeddings(frozen_embedding_domain)

    def unfreeze_shared_params(self) -> None:
        """Unfreeze encoder and decoder blocks (embeddings unchanged)."""
        self.unfreeze_encoder(unfreeze_embeddings=False)
        self.unfreeze_decoder(unfreeze_embeddings=False)

    def unfreeze_all(self) -> None:
        """Unfreeze everything."""
        self.unfreeze_encoder(unfreeze_embeddings=True)
        self.unfreeze_decoder(unfreeze_embeddings=True)
