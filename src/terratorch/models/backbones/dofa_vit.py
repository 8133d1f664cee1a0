"""DOFA (Dynamic One-For-All) ViT encoders: one network for any set of bands, told their wavelengths.

The patch embedding is not a fixed convolution: a small transformer turns the wavelength of each input
band into that band's slice of the convolution kernel, so the same weights serve Sentinel-2, Landsat,
SAR or hyperspectral inputs. Band names map to wavelengths through :data:`WAVELENGTHS` (the table of
TerraTorch 1.2); numbers are taken as wavelengths in micrometres.

Registered builders: ``dofa_small_patch16_224``, ``dofa_base_patch16_224`` and ``dofa_large_patch16_224``.
Each returns a :class:`DOFAEncoderWrapper` whose ``dofa_model`` has the parameter layout of torchgeo's
``DOFA``, so the published torchgeo weight files and TerraTorch 1.2 fine-tuned checkpoints load as they
are. The wrapper returns the token sequences ``(B, 1 + h*w, E)`` (class token first) of the blocks in
``out_indices``; add the ``ReshapeTokensToImage`` neck to feed convolutional decoders.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import sincos_1d_like
from terratorch.models.weights import (
    CheckpointMismatchError,
    PretrainedWeightsNotFoundError,
    load_pretrained_weights,
    read_checkpoint,
    resolve_weights_file,
)
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = [
    "DOFA",
    "WAVELENGTHS",
    "DOFAEmbedding",
    "DOFAEncoderWrapper",
    "PublishedWeights",
    "UnknownBandError",
    "dofa_base_patch16_224",
    "dofa_large_patch16_224",
    "dofa_small_patch16_224",
    "get_wavelenghts",
    "get_wavelengths",
    "load_dofa_weights",
    "resize_pos_embed",
    "waves_list",
]

#: Central wavelength (micrometres) of each band name DOFA understands (TerraTorch 1.2's table).
#: SAR polarisations get the C-band wavelength in centimetres (5.405), as DOFA was trained with.
WAVELENGTHS: dict[str, float] = {
    "COASTAL_AEROSOL": 0.44,
    "BLUE": 0.49,
    "GREEN": 0.56,
    "RED": 0.665,
    "RED_EDGE_1": 0.705,
    "RED_EDGE_2": 0.74,
    "RED_EDGE_3": 0.783,
    "NIR_BROAD": 0.832,
    "NIR_NARROW": 0.864,
    "WATER_VAPOR": 0.945,
    "CIRRUS": 1.373,
    "SWIR_1": 1.61,
    "SWIR_2": 2.20,
    "THERMAL_INFRARED_1": 10.90,
    "THERMAL_INFRARED_12": 12.00,
    "VV": 5.405,
    "VH": 5.405,
    "ASC_VV": 5.405,
    "ASC_VH": 5.405,
    "DSC_VV": 5.405,
    "DSC_VH": 5.405,
    "VV-VH": 5.405,
}
#: TerraTorch 1.2's name of :data:`WAVELENGTHS`.
waves_list = WAVELENGTHS

#: Width of the wavelength embedding that drives the weight generator (fixed in the published models).
DYNAMIC_EMBED_DIM = 128
#: Parameters of the classifier and its norm: the published files lack them, encoders never use them.
_CLASSIFIER_PREFIXES = ("fc_norm.", "norm.", "head.")


class UnknownBandError(ValueError, KeyError):
    """A band name without a known wavelength."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _band_wavelength(band: object) -> float:
    if isinstance(band, bool):
        raise TypeError(f"DOFA band {band!r}: expected a band name or a wavelength in micrometres.")
    if isinstance(band, (int, float)):
        return float(band)
    if isinstance(band, Enum):
        band = band.value
    if not isinstance(band, str):
        raise TypeError(
            f"DOFA band {band!r} ({type(band).__name__}): expected a band name or a wavelength in "
            "micrometres."
        )
    name = band.split(".")[-1].strip().upper()  # "HLSBands.RED" spellings of 1.2 configs
    if name not in WAVELENGTHS:
        close = [known for known in WAVELENGTHS if name and name in known]
        close += [m for m in difflib.get_close_matches(name, list(WAVELENGTHS), n=3) if m not in close]
        hint = f" Did you mean {close}?" if close else ""
        raise UnknownBandError(
            f"DOFA does not know the wavelength of band {band!r}.{hint} Known bands: {list(WAVELENGTHS)}; "
            "or give the wavelength in micrometres as a number (e.g. 0.665)."
        )
    return WAVELENGTHS[name]


def get_wavelengths(model_bands: Sequence[object]) -> list[float]:
    """Wavelengths (micrometres) of ``model_bands``: names from :data:`WAVELENGTHS` or numbers.

    Raises:
        UnknownBandError: A name is not in the table (the message lists the known ones).
    """
    if isinstance(model_bands, (str, bytes)) or not isinstance(model_bands, Sequence) or not model_bands:
        raise ValueError(f"DOFA needs model_bands, a non-empty list of band names; got {model_bands!r}.")
    return [_band_wavelength(band) for band in model_bands]


#: TerraTorch 1.2's spelling of :func:`get_wavelengths`.
get_wavelenghts = get_wavelengths


# ----------------------------------------------------------------------------------------------
# the network (parameter names of torchgeo's DOFA)
# ----------------------------------------------------------------------------------------------
class _WeightGenerator(nn.Module):
    """Transformer that reads one token per band and writes that band's kernel slice, plus a bias."""

    def __init__(self, input_dim: int, output_dim: int, embed_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=input_dim, nhead=num_heads, activation="gelu", dropout=0.0, batch_first=False
        )
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(input_dim, output_dim)
        self.fc_bias = nn.Linear(input_dim, embed_dim)
        self.wt_num = 128
        self.weight_tokens = nn.Parameter(torch.empty(self.wt_num, input_dim).normal_(std=0.02))
        self.bias_token = nn.Parameter(torch.empty(1, input_dim).normal_(std=0.02))

    def forward(self, band_tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``(C, D)`` band tokens → kernel slices ``(C, output_dim)`` and bias ``(embed_dim,)``."""
        sequence = torch.cat([self.weight_tokens, band_tokens, self.bias_token], dim=0)
        encoded = self.transformer_encoder(sequence)
        weights = self.fc_weight(encoded[self.wt_num : -1] + band_tokens)
        return weights, self.fc_bias(encoded[-1])


class _ResidualMLP(nn.Module):
    """``x + relu(w2(relu(w1(x))))``: refines the sin-cos wavelength embedding."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(size, size)
        self.w2 = nn.Linear(size, size)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class DOFAEmbedding(nn.Module):
    """Wavelength-conditioned patch embedding: a convolution whose kernel is generated per band.

    Args:
        dynamic_embed_dim: Width of the wavelength embedding.
        kernel_size: Patch size (kernel and stride of the convolution).
        embed_dim: Token width.
    """

    #: Scale of the generated kernel and bias (part of the published models).
    scaler = 0.01

    def __init__(self, dynamic_embed_dim: int, kernel_size: int = 3, embed_dim: int = 1024) -> None:
        super().__init__()
        self.dynamic_embed_dim = dynamic_embed_dim
        self.kernel_size = kernel_size
        self.embed_dim = embed_dim
        self.patch_size = (kernel_size, kernel_size)
        self.weight_generator = _WeightGenerator(
            dynamic_embed_dim, kernel_size * kernel_size * embed_dim, embed_dim
        )
        self.fclayer = _ResidualMLP(dynamic_embed_dim)
        for module in (*self.weight_generator.modules(), *self.fclayer.modules()):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, 0.01)

    def kernel(self, wavelengths: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(E, C, k, k)`` convolution weight and ``(E,)`` bias for bands of these wavelengths (μm)."""
        bands = wavelengths.shape[0]
        tokens = self.fclayer(sincos_1d_like(self.dynamic_embed_dim, wavelengths * 1000))
        weight, bias = self.weight_generator(tokens)
        k = self.kernel_size
        weight = weight.view(bands, k, k, self.embed_dim).permute(3, 0, 1, 2)
        return weight * self.scaler, bias.view(self.embed_dim) * self.scaler

    def forward(self, x: Tensor, wavelengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W)`` → tokens ``(B, h*w, E)`` and the band embeddings (torchgeo's return pair).

        The convolution pads one pixel on each side, as the published models were trained.
        """
        if x.shape[1] != wavelengths.shape[0]:
            raise ValueError(
                f"DOFA input has {x.shape[1]} bands but {wavelengths.shape[0]} wavelengths were given "
                "(model_bands): they must match one to one."
            )
        weight, bias = self.kernel(wavelengths)
        tokens = F.conv2d(x, weight, bias=bias, stride=self.kernel_size, padding=1)
        return tokens.flatten(2).transpose(1, 2), wavelengths


class DOFA(nn.Module):
    """DOFA vision transformer with the parameter layout of torchgeo's ``DOFA`` (and its weight files).

    ``pos_embed`` is a fixed table (``requires_grad=False``) for the ``img_size`` grid, zeros until
    weights are loaded. ``fc_norm``/``norm`` and ``head`` belong to the classifier that the published
    models were built with; encoders do not use them.

    Args:
        img_size: Nominal input size (sets the position table).
        patch_size: Patch size.
        drop_rate: Dropout before the classifier head.
        embed_dim: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        dynamic_embed_dim: Width of the wavelength embedding (the published models use 128).
        num_classes: Classes of the classifier head (0: identity).
        global_pool: Classifier pools the tokens (``fc_norm``) rather than reading the class token (``norm``).
        mlp_ratio: Hidden width of the block MLPs relative to ``embed_dim``.
        norm_layer: Norm of the blocks and the classifier (default ``LayerNorm(eps=1e-6)``).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        drop_rate: float = 0.0,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        dynamic_embed_dim: int = DYNAMIC_EMBED_DIM,
        num_classes: int = 45,
        global_pool: bool = True,
        mlp_ratio: float = 4.0,
        norm_layer: Any = None,
    ) -> None:
        from timm.models.vision_transformer import Block

        super().__init__()
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.dynamic_embed_dim = dynamic_embed_dim
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.mlp_ratio = mlp_ratio
        if global_pool:
            self.fc_norm = norm_layer(embed_dim)
        else:
            self.norm = norm_layer(embed_dim)
        # the published models fix the generator width at 128 whatever dynamic_embed_dim says
        self.patch_embed = DOFAEmbedding(DYNAMIC_EMBED_DIM, kernel_size=patch_size, embed_dim=embed_dim)
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(depth)
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def embed(self, x: Tensor, wavelengths: Tensor, interpolation: str = "bilinear") -> Tensor:
        """Tokens with position embedding and the class token in front: ``(B, 1 + h*w, E)``.

        Inputs whose token grid differs from ``img_size``'s get the position table resized
        (``interpolation``) on the fly.
        """
        tokens, _ = self.patch_embed(x, wavelengths)
        grid = _token_grid(x.shape[-2:], self.patch_size)
        pos_embed = self.pos_embed
        if grid != (self.grid_size, self.grid_size):
            pos_embed = resize_pos_embed(pos_embed, grid, (self.grid_size, self.grid_size), interpolation)
        cls_token = (self.cls_token + pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls_token, tokens + pos_embed[:, 1:]], dim=1)

    def forward_features(self, x: Tensor, wavelengths: Sequence[float] | Tensor) -> Tensor:
        """The pooled (``global_pool``) or class-token representation ``(B, E)``."""
        tokens = self.embed(x, _as_wavelength_tensor(wavelengths, x))
        for block in self.blocks:
            tokens = block(tokens)
        if self.global_pool:
            return self.fc_norm(tokens[:, 1:].mean(dim=1))
        return self.norm(tokens)[:, 0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Classifier on the output of :meth:`forward_features`."""
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor, wavelengths: Sequence[float] | Tensor) -> Tensor:
        """Class scores ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x, wavelengths))


def _token_grid(image_hw: Sequence[int], patch_size: int) -> tuple[int, int]:
    """Token grid of DOFA's padded (1 px) convolution with kernel and stride ``patch_size``."""
    h, w = (int(s) for s in image_hw)
    return (h + 2 - patch_size) // patch_size + 1, (w + 2 - patch_size) // patch_size + 1


def _as_wavelength_tensor(wavelengths: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(wavelengths, dtype=torch.float32, device=like.device).float()


def resize_pos_embed(
    pos_embed: Tensor, input_shape: Sequence[int], pos_shape: Sequence[int], mode: str = "bilinear"
) -> Tensor:
    """Fit a ``(1, 1 + h*w, E)`` position table (class row first) to another ``(h', w')`` token grid.

    Args:
        pos_embed: The table, built for ``pos_shape``.
        input_shape: Token grid ``(h', w')`` wanted.
        pos_shape: Token grid ``(h, w)`` of ``pos_embed``.
        mode: ``F.interpolate`` mode (``"bilinear"``, ``"bicubic"``, ...); corners are not aligned.
    """
    if pos_embed.ndim != 3:
        raise ValueError(f"pos_embed must be (1, 1 + h*w, E); got shape {tuple(pos_embed.shape)}.")
    h, w = (int(s) for s in pos_shape)
    embed_dim = pos_embed.shape[-1]
    table = pos_embed[:, -h * w :].reshape(1, h, w, embed_dim).permute(0, 3, 1, 2)
    align = None if mode in ("nearest", "area", "nearest-exact") else False
    table = F.interpolate(table, size=tuple(int(s) for s in input_shape), mode=mode, align_corners=align)
    return torch.cat([pos_embed[:, :1], table.flatten(2).transpose(1, 2)], dim=1)


# ----------------------------------------------------------------------------------------------
# the encoder wrapper
# ----------------------------------------------------------------------------------------------
class DOFAEncoderWrapper(nn.Module):
    """A :class:`DOFA` used as an encoder: the token sequences of chosen blocks for fixed bands.

    Args:
        dofa_model: The network (its parameters live under ``dofa_model.``, as in TerraTorch 1.2).
        wavelengths: Wavelength (μm) of each input band, in channel order.
        weights: The published weights the model was built for (kept for reference only).
        out_indices: Blocks whose outputs are returned, in block order; negative indices count from the
            end (default ``[-1]``, the last block).
        pos_interpolation_mode: How the position table is resized for inputs of another size.
    """

    def __init__(
        self,
        dofa_model: DOFA,
        wavelengths: Sequence[float],
        weights: Any = None,
        out_indices: Sequence[int] | None = None,
        pos_interpolation_mode: str = "bilinear",
    ) -> None:
        super().__init__()
        self.dofa_model = dofa_model
        self.weights = weights
        self.wavelengths = [float(w) for w in wavelengths]
        self.pos_interpolation_mode = pos_interpolation_mode
        depth = len(dofa_model.blocks)
        self.out_indices = list(out_indices) if out_indices else [-1]
        for index in self.out_indices:
            if not -depth <= index < depth:
                raise ValueError(
                    f"out_indices {self.out_indices}: {index} is not a block of this {depth}-block DOFA."
                )
        self._selected = sorted({index % depth for index in self.out_indices})
        self.out_channels = [dofa_model.embed_dim] * len(self._selected)

    def forward(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """``(B, C, H, W)`` → one ``(B, 1 + h*w, E)`` token sequence per selected block.

        Extra keyword arguments (metadata other backbones take) are ignored.
        """
        wavelengths = _as_wavelength_tensor(self.wavelengths, x)
        tokens = self.dofa_model.embed(x, wavelengths, self.pos_interpolation_mode)
        outputs = []
        for index, block in enumerate(self.dofa_model.blocks[: self._selected[-1] + 1]):
            tokens = block(tokens)
            if index in self._selected:
                outputs.append(tokens)
        return outputs


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishedWeights:
    """A weight file torchgeo publishes (the ``url`` of its ``Weights`` enum member)."""

    name: str
    url: str


_HF_DOFA = "https://hf.co/torchgeo/dofa/resolve/b8db318b64a90b9e085ec04ba8851233c5893666/"
DOFA_BASE_WEIGHTS = PublishedWeights(
    "DOFABase16_Weights.DOFA_MAE", _HF_DOFA + "dofa_base_patch16_224-a0275954.pth"
)
DOFA_LARGE_WEIGHTS = PublishedWeights(
    "DOFALarge16_Weights.DOFA_MAE", _HF_DOFA + "dofa_large_patch16_224-0ff904d3.pth"
)


def _hf_location(url: str) -> tuple[str | None, list[str]]:
    """``https://hf.co/<owner>/<repo>/resolve/<rev>/<file>`` → (``owner/repo``, [``file``])."""
    for host in ("https://hf.co/", "https://huggingface.co/"):
        if url.startswith(host) and "/resolve/" in url:
            repo, rest = url[len(host) :].split("/resolve/", 1)
            return repo, [rest.split("/", 1)[-1]]
    return None, []


def weights_file(ckpt_data: str | os.PathLike[str] | None, weights: Any, model_name: str) -> Path:
    """The local file to load: ``ckpt_data`` (a path or an ``https://hf.co/...`` address), else ``weights``.

    Addresses and published weights are looked up in the local Hugging Face and torch hub caches (where
    torchgeo keeps them) and downloaded only when downloads are allowed.

    Raises:
        PretrainedWeightsNotFoundError: Nothing found; the message names the file(s) looked for.
    """
    if ckpt_data is not None and not str(ckpt_data).startswith(("https://", "http://")):
        return resolve_weights_file(ckpt_data, model_name=model_name)
    url = str(ckpt_data) if ckpt_data is not None else getattr(weights, "url", None)
    if url is None:
        raise PretrainedWeightsNotFoundError(
            f"pretrained=True but {model_name} has no published weights and no ckpt_data was given; pass "
            "ckpt_data='/path/to/weights.pth' or pretrained=False."
        )
    repo, filenames = _hf_location(url)
    return resolve_weights_file(hf_repo_id=repo, hf_filenames=filenames, url=url, model_name=model_name)


def _strip_wrapper(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys of a saved :class:`DOFAEncoderWrapper` (``[...]dofa_model.x``) → the network's (``x``)."""
    marker = "dofa_model."
    if not any(marker in key for key in state):
        return dict(state)
    return {key.split(marker, 1)[1]: value for key, value in state.items() if marker in key}


def load_dofa_weights(
    model: DOFA,
    mode: str = "bilinear",
    ckpt_data: str | os.PathLike[str] | None = None,
    weights: Any = None,
    input_size: int = 224,
    patch_size: int = 16,
    *,
    allow_partial: bool = False,
) -> DOFA:
    """Load a DOFA weight file (torchgeo layout, or a saved encoder) into ``model``.

    A position table of another grid is resized (``mode``) to the model's; a classifier head of another
    size is dropped. The classifier norm and head may be absent (the published files lack them);
    anything else missing is an error unless ``allow_partial``.

    Args:
        model: The network to fill.
        mode: Interpolation of the position table.
        ckpt_data: Local file or ``https://hf.co/...`` address; takes precedence over ``weights``.
        weights: Published weights (:class:`PublishedWeights` or torchgeo's enum member: anything with
            a ``url``).
        input_size: Kept for TerraTorch 1.2 calls; the grid is read from ``model``.
        patch_size: Kept for TerraTorch 1.2 calls; the patch size is read from ``model``.
        allow_partial: Load what fits and warn about the rest.
    """
    del input_size, patch_size  # the model knows its grid
    path = weights_file(ckpt_data, weights, f"DOFA (embed_dim {model.embed_dim})")
    state = _strip_wrapper(read_checkpoint(path))
    target = model.state_dict()

    def fit(state: dict[str, Tensor]) -> dict[str, Tensor]:
        table = state.get("pos_embed")
        if table is not None and table.shape != target["pos_embed"].shape:
            side = math.isqrt(table.shape[1] - 1)
            if side * side != table.shape[1] - 1:
                raise CheckpointMismatchError(
                    f"pos_embed of {str(path)!r} has {table.shape[1]} rows, not 1 + a square grid."
                )
            state["pos_embed"] = resize_pos_embed(
                table, (model.grid_size, model.grid_size), (side, side), mode
            )
        for key in ("head.weight", "head.bias"):
            if key in state and key in target and state[key].shape != target[key].shape:
                del state[key]
        return state

    load_pretrained_weights(
        model,
        state,
        source=repr(str(path)),
        allow_partial=allow_partial,
        ignore_missing=_CLASSIFIER_PREFIXES,
        ignore_unexpected=_CLASSIFIER_PREFIXES,
        state_dict_hook=fit,
    )
    return model


# ----------------------------------------------------------------------------------------------
# registered builders
# ----------------------------------------------------------------------------------------------
_SIZES: dict[str, dict[str, int]] = {
    "dofa_small_patch16_224": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "dofa_base_patch16_224": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "dofa_large_patch16_224": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
}
_PUBLISHED = {"dofa_base_patch16_224": DOFA_BASE_WEIGHTS, "dofa_large_patch16_224": DOFA_LARGE_WEIGHTS}


def dofa_metadata(name: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``name`` (mirrored in ``terratorch.registry.manifest``)."""
    size = _SIZES[name]
    meta: dict[str, Any] = {"family": "dofa", **size, "patch_size": 16, "out_channels": [size["embed_dim"]]}
    if name in _PUBLISHED:
        meta["url"] = _PUBLISHED[name].url
    return meta


def _build(
    name: str,
    model_bands: Sequence[object],
    pretrained: bool,
    ckpt_data: str | os.PathLike[str] | None,
    weights: Any,
    out_indices: Sequence[int] | None,
    pos_interpolation_mode: str,
    input_size: int | None,
    kwargs: dict[str, Any],
) -> DOFAEncoderWrapper:
    wavelengths = get_wavelengths(model_bands)
    for key in ("patch_size", *_SIZES[name]):
        if key in kwargs:
            raise TypeError(f"{name} fixes {key}; choose another dofa_* backbone instead of passing {key}=.")
    if input_size is not None and "img_size" not in kwargs:
        kwargs["img_size"] = input_size
    model = DOFA(patch_size=16, **_SIZES[name], **kwargs)
    if pretrained:
        load_dofa_weights(model, pos_interpolation_mode, ckpt_data, weights)
    elif ckpt_data is not None:
        warnings.warn(
            f"{name}: ckpt_data={str(ckpt_data)!r} is ignored because pretrained=False.",
            UserWarning,
            stacklevel=3,
        )
    return DOFAEncoderWrapper(model, wavelengths, weights, out_indices, pos_interpolation_mode)


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=dofa_metadata("dofa_small_patch16_224"))
def dofa_small_patch16_224(
    model_bands: Sequence[object],
    input_size: int = 224,
    pretrained: bool = False,
    ckpt_data: str | os.PathLike[str] | None = None,
    weights: Any = None,
    out_indices: Sequence[int] | None = None,
    pos_interpolation_mode: str = "bilinear",
    **kwargs: Any,
) -> DOFAEncoderWrapper:
    """DOFA small (embed_dim 384, 12 blocks); no published weights, so ``pretrained`` needs ``ckpt_data``.

    ``model_bands`` name the input bands (or give wavelengths in μm); ``input_size`` is the default of
    ``img_size``; other keyword arguments (``img_size``, ``num_classes``, ``global_pool``, ...) go to
    :class:`DOFA`.
    """
    return _build(
        "dofa_small_patch16_224",
        model_bands,
        pretrained,
        ckpt_data,
        weights,
        out_indices,
        pos_interpolation_mode,
        input_size,
        kwargs,
    )


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=dofa_metadata("dofa_base_patch16_224"))
def dofa_base_patch16_224(
    model_bands: Sequence[object],
    pretrained: bool = False,
    ckpt_data: str | os.PathLike[str] | None = None,
    weights: Any = DOFA_BASE_WEIGHTS,
    out_indices: Sequence[int] | None = None,
    pos_interpolation_mode: str = "bilinear",
    input_size: int | None = None,
    **kwargs: Any,
) -> DOFAEncoderWrapper:
    """DOFA base (embed_dim 768, 12 blocks); ``pretrained`` loads ``ckpt_data`` or torchgeo's DOFA_MAE file.

    See :func:`dofa_small_patch16_224` for the arguments.
    """
    return _build(
        "dofa_base_patch16_224",
        model_bands,
        pretrained,
        ckpt_data,
        weights,
        out_indices,
        pos_interpolation_mode,
        input_size,
        kwargs,
    )


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=dofa_metadata("dofa_large_patch16_224"))
def dofa_large_patch16_224(
    model_bands: Sequence[object],
    pretrained: bool = False,
    ckpt_data: str | os.PathLike[str] | None = None,
    weights: Any = DOFA_LARGE_WEIGHTS,
    out_indices: Sequence[int] | None = None,
    pos_interpolation_mode: str = "bilinear",
    input_size: int | None = None,
    **kwargs: Any,
) -> DOFAEncoderWrapper:
    """DOFA large (embed_dim 1024, 24 blocks); ``pretrained`` loads ``ckpt_data`` or torchgeo's DOFA_MAE file.

    See :func:`dofa_small_patch16_224` for the arguments.
    """
    return _build(
        "dofa_large_patch16_224",
        model_bands,
        pretrained,
        ckpt_data,
        weights,
        out_indices,
        pos_interpolation_mode,
        input_size,
        kwargs,
    )
