"""TerraMind as a backbone: the any-modality encoder, returning one token tensor per block.

:class:`TerraMindViT` embeds each given modality (see :mod:`.embeddings`), concatenates the tokens,
runs the transformer blocks and merges the per-modality tokens of every block output according to
``merge_method``. It keeps TerraTorch 1.2's class name, arguments, attribute names and state-dict
layout, so fine-tuned checkpoints of the reference load into it.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.choices import unknown_choice
from terratorch.models.backbones.terramind.embeddings import (
    ImageEncoderEmbedding,
    ImageTokenEncoderEmbedding,
    build_modality_embeddings,
)
from terratorch.models.backbones.terramind.layers import Block, LayerNorm
from terratorch.models.backbones.terramind.modalities import MODALITY_ALIASES, MODALITY_INFO

__all__ = ["MERGE_METHODS", "MergeMethodError", "TerraMindViT"]

#: Accepted ``merge_method`` values.
MERGE_METHODS: tuple[str | None, ...] = ("mean", "max", "concat", "dict", None)
_STACKING = ("mean", "max", "concat")
_DEFAULT_NORM = partial(LayerNorm, eps=1e-6)
_TOKENISED = {k for k, v in MODALITY_INFO.items() if v["kind"] in ("image_tokens", "sequence")}


class MergeMethodError(ValueError, NotImplementedError):
    """``merge_method`` is not one of :data:`MERGE_METHODS` (``NotImplementedError`` in TerraTorch 1.2)."""


def _shape(value: Any) -> Any:
    if isinstance(value, Tensor):
        return tuple(value.shape)
    if isinstance(value, Mapping) and isinstance(value.get("tensor"), Tensor):
        return tuple(value["tensor"].shape)
    return type(value).__name__


class TerraMindViT(nn.Module):
    """TerraMind encoder for fine-tuning: raw (or tokenised) modalities in, block outputs out.

    Args:
        img_size: Image size the position tables are built for (other sizes are interpolated).
        modalities: Modality names/aliases (``"S2L2A"``, ``"S1GRD"``, ``"DEM"``, ``"LULC"``, ...), dicts
            ``{"name": num_channels}`` for new modalities (or ``{"name": nn.Module}``), or one such
            dict. None: a single new modality ``{"image": in_chans}``.
        merge_method: How each block output is returned: ``"mean"`` / ``"max"`` over the image
            modalities (``B, N, D``), ``"concat"`` along the width (``B, N, D * M``; missing
            modalities get a learned token), ``"dict"`` (``{modality: (B, N_m, D)}``, every
            modality), or None (all tokens, ``B, sum N_m, D``). Sequence modalities are dropped by the
            first three.
        patch_size: Patch size of new modalities (pretrained ones use 16).
        in_chans: Channels of the default new modality.
        dim: Token width.
        encoder_depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width over ``dim``.
        qkv_bias: Bias in the ``qkv`` projections.
        proj_bias: Bias in the attention output projections.
        mlp_bias: Biases in the feed-forwards.
        num_register_tokens: Learned tokens prepended to the sequence.
        drop_path_rate: Stochastic depth, rising linearly to this rate over the blocks.
        drop_rate: Dropout after projections.
        attn_drop_rate: Dropout on attention weights.
        modality_drop_rate: In training, drop each input modality but one with this probability.
        act_layer: Feed-forward activation class.
        norm_layer: Norm factory (called with ``dim``).
        gated_mlp: SwiGLU feed-forwards.
        qk_norm: Normalise queries and keys.
        encoder_norm: Norm after the last block (applied to the last output).
        tokenizer_dict: Optional ``{modality key: factory(pretrained=...)}`` of tokenizers that turn raw
            inputs of tokenised modalities into ids (the ``terramind_v1_*`` builders pass those of LULC
            and NDVI); token-id inputs are always accepted, and without a tokenizer they are required.
        pretrained: Passed to the tokenizer factories.
    """

    def __init__(
        self,
        img_size: int = 224,
        modalities: Sequence[str | Mapping[str, int | nn.Module]]
        | Mapping[str, int | nn.Module]
        | None = None,
        merge_method: str | None = "mean",
        patch_size: int = 16,
        in_chans: int = 3,
        dim: int = 768,
        encoder_depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        mlp_bias: bool = True,
        num_register_tokens: int = 0,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        modality_drop_rate: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = _DEFAULT_NORM,
        gated_mlp: bool = False,
        qk_norm: bool = False,
        encoder_norm: bool = True,
        tokenizer_dict: Mapping[str, Callable[..., nn.Module]] | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if merge_method not in MERGE_METHODS:
            raise MergeMethodError(
                unknown_choice("merge_method", str(merge_method), ["mean", "max", "concat", "dict", "None"])
            )
        if not 0.0 <= modality_drop_rate <= 1.0:
            raise ValueError(f"modality_drop_rate must be in [0, 1], got {modality_drop_rate}.")
        if modalities is None or len(modalities) == 0:
            modalities = [{"image": in_chans}]
        elif isinstance(modalities, (str, Mapping)):
            modalities = [modalities]
        elif not isinstance(modalities, Sequence):
            raise ValueError(
                "modalities must be None, a list of modality names and {'<name>': <num_channels>} dicts, "
                f"or one such dict; got {type(modalities).__name__}."
            )
        embeddings, mapping = build_modality_embeddings(list(modalities), img_size, dim, patch_size)
        self.encoder_embeddings = nn.ModuleDict(embeddings)
        self.mod_name_mapping: dict[str, str] = mapping
        self.modalities: list[str] = list(mapping)
        self.img_size = img_size
        self.merge_method = merge_method
        self.image_modalities: list[str] = [
            key
            for key, module in self.encoder_embeddings.items()
            if isinstance(module, (ImageEncoderEmbedding, ImageTokenEncoderEmbedding))
        ]
        self.modality_drop_rate = modality_drop_rate
        if merge_method == "concat":
            # stands in for each missing image modality; TerraTorch 1.2 leaves it uninitialised
            self.missing_mod_token = nn.Parameter(torch.zeros(dim))
        rates = torch.linspace(0, drop_path_rate, encoder_depth, device="cpu").tolist()  # meta-safe
        self.encoder = nn.ModuleList(
            [
                Block(
                    dim=dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    proj_bias=proj_bias,
                    mlp_bias=mlp_bias,
                    drop_path=rates[i],
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    gated_mlp=gated_mlp,
                    qk_norm=qk_norm,
                )
                for i in range(encoder_depth)
            ]
        )
        width = dim * len(self.image_modalities) if merge_method == "concat" else dim
        self.out_channels: list[int] = [width] * encoder_depth
        self.encoder_norm = norm_layer(dim) if encoder_norm else nn.Identity()
        self.num_register_tokens = num_register_tokens
        self.register_tokens: nn.Parameter | None = None
        if num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim))
            nn.init.normal_(self.register_tokens, std=0.02)
        tokenizers = {}
        for key in self.encoder_embeddings:
            if tokenizer_dict is not None and key in tokenizer_dict:
                tokenizers[key] = tokenizer_dict[key](pretrained=pretrained)
        self.tokenizer = nn.ModuleDict(tokenizers)
        self._grid: tuple[int, int] | None = None
        self.init_weights()
        if merge_method == "concat":
            nn.init.normal_(self.missing_mod_token, std=0.02)

    def init_weights(self) -> None:
        """MAE-style initialisation: Xavier-uniform linears (q, k, v treated separately), unit norms."""
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
                nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters excluded from weight decay (those the embeddings name)."""
        names: set[str] = set()
        for key, module in self.encoder_embeddings.items():
            if hasattr(module, "no_weight_decay"):
                names |= {f"encoder_embeddings.{key}.{n}" for n in module.no_weight_decay()}
        return names

    # ------------------------------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------------------------------
    def _input_name(self, name: str) -> str | None:
        """The configured modality an input key refers to: its own name (any case), a short alias
        (``S2L2A``) or the canonical key. No substring matching, so keys like ``dem_mask`` stay unknown."""
        if name in self.mod_name_mapping:
            return name
        lowered = name.lower()
        for user in self.mod_name_mapping:
            if user.lower() == lowered:
                return user
        aliases = {alias.lower(): key for alias, key in MODALITY_ALIASES.items()}
        key = name if name in MODALITY_INFO else aliases.get(lowered)
        return next((user for user, k in self.mod_name_mapping.items() if k == key), None)

    def _collect(self, d: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if d is not None and not isinstance(d, Mapping):
            d = {self.modalities[0]: d}
        given = {**(d or {}), **kwargs}
        if not given:
            raise ValueError(
                f"No input given to TerraMindViT; pass a tensor (for {self.modalities[0]!r}) or a dict "
                f"with some of {self.modalities}."
            )
        inputs: dict[str, Any] = {}
        for name, value in given.items():
            target = self._input_name(str(name))
            if target is None:
                warnings.warn(
                    f"Unknown input modality {name!r} ignored; this TerraMind encoder takes "
                    f"{self.modalities}.",
                    UserWarning,
                    stacklevel=3,
                )
                continue
            inputs[target] = value
        if not inputs:
            shapes = {str(k): _shape(v) for k, v in given.items()}
            raise ValueError(
                f"None of the input modalities {shapes} is configured; this TerraMind encoder takes "
                f"{self.modalities} (keys or their aliases)."
            )
        return inputs

    def _check_grids(self, inputs: Mapping[str, Any]) -> tuple[int, int] | None:
        """Token grid of each image input; stacking merges need one grid for all. Returns the first."""
        grids = {}
        for name, value in inputs.items():
            key = self.mod_name_mapping[name]
            if key in self.image_modalities:
                grid = self._token_grid(value, key)
                if grid is not None:
                    grids[name] = grid
        if self.merge_method in _STACKING and len(set(grids.values())) > 1:
            shapes = ", ".join(f"{m}: {_shape(inputs[m])} ({g[0]}x{g[1]} tokens)" for m, g in grids.items())
            raise ValueError(
                f"merge_method={self.merge_method!r} needs every image modality on the same token grid, but "
                f"the inputs differ: {shapes}. Resize the inputs to one spatial size (or use "
                "merge_method='dict' / None)."
            )
        return next(iter(grids.values()), None)

    def _check_tokens(self, inputs: Mapping[str, Any], counts: Mapping[str, int]) -> None:
        """Token counts (after embedding) of the image inputs must agree; used by the TiM encoder."""
        image_counts = {m: n for m, n in counts.items() if self.mod_name_mapping[m] in self.image_modalities}
        if len(set(image_counts.values())) > 1:
            shapes = ", ".join(f"{m}: {_shape(inputs[m])} ({n} tokens)" for m, n in image_counts.items())
            raise ValueError(
                f"merge_method={self.merge_method!r} needs every image modality on the same token grid, but "
                f"the inputs differ: {shapes}. Resize the inputs to one spatial size (or use "
                "merge_method='dict' / None)."
            )

    def _needs_tokenizer(self, key: str, value: Any) -> bool:
        """Whether ``value`` is a raw input for the tokenizer of ``key`` (not already token ids).

        Raw inputs are float maps (``B, C, H, W``) or integer class maps ``B, 1, H, W``; integer
        ``B, H/16, W/16`` grids are token ids and pass through (the reference tokenizes every input).
        """
        return (
            key in self.tokenizer
            and isinstance(value, Tensor)
            and (value.is_floating_point() or value.dim() == 4)
        )

    def _tokenize(self, key: str, value: Any) -> Any:
        """Token ids of a raw input of a tokenised modality; other inputs are returned unchanged."""
        if not self._needs_tokenizer(key, value):
            return value
        tokenizer = self.tokenizer[key]
        classes = int(getattr(tokenizer, "n_channels", 1))
        if classes > 1 and value.dim() == 4 and value.shape[1] == 1 and not torch.equal(value, value.round()):
            raise TypeError(
                f"{key} is a tokenised modality: pass integer token ids (B, H/16, W/16), or what its "
                f"tokenizer reads: class ids (B, 1, H, W) or one-hot maps (B, {classes}, H, W). Got a "
                f"{value.dtype} tensor of shape {tuple(value.shape)} with non-integer values."
            )
        encoded = tokenizer.encode(value, value.device)
        return encoded[-1] if key in self.image_modalities else encoded["tensor"]

    def _embed(self, name: str, value: Any) -> dict[str, Tensor]:
        key = self.mod_name_mapping[name]
        value = self._tokenize(key, value)
        if isinstance(value, Tensor) and value.is_floating_point() and key in _TOKENISED:
            raise TypeError(
                f"{name!r} ({key}) is a tokenised modality: pass integer token ids (B, H/16, W/16 for "
                f"images), got a {value.dtype} tensor of shape {tuple(value.shape)}. Raw inputs need the "
                "modality's tokenizer (tokenizer_dict; TerraMind v1 builds those of LULC and NDVI)."
            )
        return self.encoder_embeddings[key](value)

    # ------------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------------
    def forward(self, d: dict[str, Any] | Tensor | None = None, **kwargs: Any) -> list[Any]:
        """Encode the given modalities; missing ones are simply left out.

        Args:
            d: A dict ``{modality: tensor}`` (names as configured, or their aliases), or one tensor for
                the first configured modality. Raw images are ``(B, C, H, W)``; tokenised images are
                ids ``(B, h, w)``.
            **kwargs: More inputs as ``modality=tensor``.

        Returns:
            One entry per block: ``(B, N, D)`` tensors (``(B, N, D * M)`` for ``concat``), dicts for
            ``merge_method="dict"``. The last entry is normalised by ``encoder_norm``.
        """
        inputs = self._collect(d, kwargs)
        names = list(inputs)
        if self.training and self.modality_drop_rate:
            for name in random.sample(names, k=len(names) - 1):
                if random.random() < self.modality_drop_rate:
                    inputs.pop(name)
            names = list(inputs)
        self._grid = self._check_grids(inputs)
        tokens, counts = [], {}
        for name in names:
            embedded = self._embed(name, inputs[name])
            tokens.append(embedded["x"] + embedded["emb"])
            counts[name] = embedded["x"].shape[-2]
        x = torch.cat(tokens, dim=1)
        num_tokens = [counts[n] for n in names]
        is_image = [self.mod_name_mapping[n] in self.image_modalities for n in names]
        if self.register_tokens is not None:
            x = torch.cat([self.register_tokens.expand(x.shape[0], -1, -1), x], dim=1)
            if self.merge_method == "dict":
                names.insert(0, "register_tokens")
                num_tokens.insert(0, self.num_register_tokens)
        out = []
        for block in self.encoder:
            x = block(x)
            out.append(x)
        out[-1] = self.encoder_norm(x)
        return self._merge(out, names, num_tokens, is_image)

    def _token_grid(self, value: Any, key: str) -> tuple[int, int] | None:
        tensor = value["tensor"] if isinstance(value, Mapping) else value
        if not isinstance(tensor, Tensor):
            return None
        module = self.encoder_embeddings[key]
        if isinstance(module, ImageEncoderEmbedding) and tensor.ndim == 4:
            return tensor.shape[-2] // module.patch_size[0], tensor.shape[-1] // module.patch_size[1]
        if tensor.ndim == 3 and not tensor.is_floating_point():
            return int(tensor.shape[1]), int(tensor.shape[2])
        return None

    def _merge(
        self, out: list[Tensor], names: list[str], num_tokens: list[int], is_image: list[bool]
    ) -> list[Any]:
        if self.merge_method is None:
            return out
        if self.merge_method == "dict":
            return [dict(zip(names, torch.split(x, num_tokens, dim=1), strict=True)) for x in out]

        def image_stack(x: Tensor) -> Tensor:  # (B, M, N, D) over the present image modalities
            x = x[:, self.num_register_tokens :]
            parts = [
                part for part, keep in zip(torch.split(x, num_tokens, dim=1), is_image, strict=True) if keep
            ]
            if not parts:
                raise ValueError(
                    f"merge_method={self.merge_method!r} merges image modalities, but only sequence "
                    f"modalities were given ({names}); use merge_method='dict' or None."
                )
            return torch.stack(parts, dim=1)

        stacks = [image_stack(x) for x in out]
        if self.merge_method == "mean":
            return [x.mean(dim=1) for x in stacks]
        if self.merge_method == "max":
            return [x.max(dim=1)[0] for x in stacks]
        missing = len(self.image_modalities) - stacks[-1].shape[1]
        if missing > 0:
            batch, _, length, _ = stacks[-1].shape
            fill = self.missing_mod_token.expand(batch, missing, length, -1)
            stacks = [torch.cat([x, fill], dim=1) for x in stacks]
        return [torch.cat(x.unbind(dim=1), dim=-1) for x in stacks]

    def prepare_features_for_image_model(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Token outputs ``(B, N, D)`` → maps ``(B, D, h, w)`` on the token grid of the last input.

        Works for ``mean``/``max``/``concat`` (and ``None`` with one image modality); 4-D inputs pass
        through. Necks such as ``ReshapeTokensToImage`` (``remove_cls_token: False``) do the same.

        Raises:
            ValueError: ``dict`` outputs, or a token count that fits no grid.
        """
        maps = []
        for x in features:
            if isinstance(x, Mapping):
                raise ValueError(
                    "merge_method='dict' outputs cannot be turned into image maps; use 'mean', 'max' or "
                    "'concat' with an image decoder."
                )
            if x.ndim == 4:
                maps.append(x)
                continue
            batch, length, width = x.shape
            grid = self._grid
            if grid is None or grid[0] * grid[1] != length:
                side = math.isqrt(length)
                if side * side != length:
                    raise ValueError(
                        f"Cannot reshape {length} tokens into an image grid (merge_method="
                        f"{self.merge_method!r}); with several modalities use 'mean', 'max' or 'concat'."
                    )
                grid = (side, side)
            maps.append(x.transpose(1, 2).reshape(batch, width, grid[0], grid[1]).contiguous())
        return maps
