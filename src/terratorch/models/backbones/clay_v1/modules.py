"""Building blocks of the Clay v1 encoder, with the module names (and so the state-dict layout) of
the published checkpoints and of TerraTorch 1.2.

The patch embedding (:class:`DynamicEmbedding`) has no fixed input width: a small transformer turns
the sine/cosine encoding of each band's central wavelength into that band's convolution kernel, so
the same weights read any set of bands whose wavelengths are known (:data:`WAVELENGTHS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.choices import unknown_choice
from terratorch.models.backbones.clay_v1.utils import posemb_sincos_1d, posemb_sincos_2d_with_gsd

__all__ = [
    "WAVELENGTHS",
    "Attention",
    "Datacuber",
    "DynamicEmbedding",
    "EmbeddingEncoder",
    "Encoder",
    "FCBlock",
    "FeedForward",
    "Transformer",
    "WavesTransformer",
    "band_wavelengths",
]

#: Central wavelength (micrometres) of each band name Clay v1 knows: the Clay/STAC spellings
#: (``blue``, ``nir``, ``swir16``, ...) and the HLS/Sentinel enum spellings (``BLUE``, ``NIR_NARROW``, ...).
WAVELENGTHS: dict[str, float] = {
    "blue": 0.493,
    "green": 0.56,
    "red": 0.665,
    "rededge1": 0.704,
    "rededge2": 0.74,
    "rededge3": 0.783,
    "nir": 0.842,
    "nir08": 0.865,
    "swir16": 1.61,
    "swir22": 2.19,
    "vv": 3.5,
    "vh": 4.0,
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


def band_wavelengths(bands: Sequence[object]) -> list[float]:
    """Central wavelength (µm) of each band: a name in :data:`WAVELENGTHS` (or an enum member whose value
    is one), or a float taken as the wavelength itself.

    TerraTorch 1.2 silently used 0.0 for unknown names, which feeds the model a wrong band; here an
    unknown name is an error listing the known ones.

    Raises:
        ValueError: A band is neither a known name nor a float wavelength.
    """
    waves = []
    for position, band in enumerate(bands):
        if isinstance(band, float):
            waves.append(band)
            continue
        name = band.value if isinstance(band, Enum) else band
        if not isinstance(name, str) or name not in WAVELENGTHS:
            raise ValueError(
                unknown_choice("Clay v1 band", str(name), WAVELENGTHS, where=f"bands[{position}]", limit=40)
                + " Pass a float to give a wavelength in micrometres directly."
            )
        waves.append(WAVELENGTHS[name])
    return waves


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """``[B, N, H*D]`` → ``[B, H, N, D]``."""
    batch, tokens, _ = t.shape
    return t.reshape(batch, tokens, heads, -1).transpose(1, 2)


class FeedForward(nn.Module):
    """Pre-norm MLP of a transformer block (``net``: LayerNorm, Linear, GELU, Linear)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim]`` → ``[B, N, dim]`` (without the residual)."""
        return self.net(x)


class Attention(nn.Module):
    """Pre-norm multi-head self-attention without biases (Clay's ``to_qkv``/``to_out`` layout)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64) -> None:
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.attend = nn.Softmax(dim=-1)
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim]`` → ``[B, N, dim]`` (without the residual)."""
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).flatten(2))


class Transformer(nn.Module):
    """Stack of ``depth`` (Attention, FeedForward) residual blocks with optional visual prompt tuning.

    With ``vpt=True`` each block gets ``vpt_n_tokens`` learned prompt tokens inserted after the class
    token before the block and removed after it, so the outputs keep the input's token count.
    ``forward`` returns every block's output; the last one goes through the final ``norm``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        vpt: bool = False,
        vpt_n_tokens: int | None = None,
        vpt_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.vpt = vpt
        self.vpt_n_tokens = vpt_n_tokens
        self.vpt_dropout = vpt_dropout
        if vpt:
            if vpt_n_tokens is None:
                raise ValueError("vpt_n_tokens must be provided when using VPT (vpt=True).")
            self.vpt_prompt_embeddings = nn.ParameterList(
                [nn.Parameter(torch.zeros(1, vpt_n_tokens, dim)) for _ in range(depth)]
            )
            self.vpt_dropout_layers = nn.ModuleList([nn.Dropout(vpt_dropout) for _ in range(depth)])
            bound = math.sqrt(6.0 / float(3 * 8**2 + dim))
            for prompt in self.vpt_prompt_embeddings:
                nn.init.uniform_(prompt, -bound, bound)
        self.layers = nn.ModuleList(
            [
                nn.ModuleList([Attention(dim, heads=heads, dim_head=dim_head), FeedForward(dim, mlp_dim)])
                for _ in range(depth)
            ]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, 1 + L, dim]`` (class token first) → list of ``depth`` tensors of the same shape."""
        out = []
        for idx, (attn, ff) in enumerate(self.layers):
            if self.vpt:
                prompts = self.vpt_dropout_layers[idx](
                    self.vpt_prompt_embeddings[idx].expand(x.shape[0], -1, -1)
                )
                x = torch.cat((x[:, :1], prompts, x[:, 1:]), dim=1)
            x = attn(x) + x
            x = ff(x) + x
            if self.vpt:
                x = torch.cat((x[:, :1], x[:, 1 + self.vpt_n_tokens :]), dim=1)
            out.append(x)
        out[-1] = self.norm(x)
        return out


class FCBlock(nn.Module):
    """Residual two-layer GELU MLP applied to the wavelength encodings."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(size, size)
        self.l2 = nn.Linear(size, size)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, size]`` → ``[N, size]``."""
        return x + F.gelu(self.l2(F.gelu(self.l1(x))))


class WavesTransformer(nn.Module):
    """Generates per-band kernels (and one bias) from wavelength encodings with a small transformer.

    Learned ``weight_tokens`` and a ``bias_token`` are attended together with the band tokens; each band
    token (plus its input) is projected to a flattened kernel by ``fc_weight``, the bias token to the
    embedding bias by ``fc_bias`` (absent for the decoder).
    """

    def __init__(
        self,
        wave_dim: int,
        output_dim: int,
        num_latent_tokens: int,
        embed_dim: int,
        is_decoder: bool,
        num_heads: int = 4,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        self.num_latent_tokens = num_latent_tokens
        self.is_decoder = is_decoder
        layer = nn.TransformerEncoderLayer(
            d_model=wave_dim,
            nhead=num_heads,
            activation="gelu",
            dropout=0,
            norm_first=False,
            batch_first=False,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(wave_dim, output_dim)
        self.fc_bias = None if is_decoder else nn.Linear(wave_dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.randn(num_latent_tokens, wave_dim) * 0.02)
        self.bias_token = nn.Parameter(torch.randn(1, wave_dim) * 0.02)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``[C, wave_dim]`` band encodings → (``[C, output_dim]`` kernels, ``[embed_dim]`` bias or None)."""
        tokens = torch.cat([self.weight_tokens, x, self.bias_token], dim=0)
        out = self.encoder(tokens)
        bands = slice(self.num_latent_tokens, -1)
        weights = self.fc_weight(out[bands] + tokens[bands])
        bias = None if self.fc_bias is None else self.fc_bias(out[-1])
        return weights, bias


class DynamicEmbedding(nn.Module):
    """Patch embedding whose kernel is generated from the bands' wavelengths.

    The encoder form (``is_decoder=False``) convolves ``[B, C, H, W]`` with a generated
    ``[embed_dim, C, p, p]`` kernel (stride ``p``) and returns ``[B, (H/p)*(W/p), embed_dim]`` tokens.
    """

    def __init__(
        self, wave_dim: int, num_latent_tokens: int, patch_size: int, embed_dim: int, is_decoder: bool = False
    ) -> None:
        super().__init__()
        self.wave_dim = wave_dim
        self.num_latent_tokens = num_latent_tokens
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.is_decoder = is_decoder
        self.output_dim = (patch_size**2) * embed_dim
        self.weight_generator = WavesTransformer(
            wave_dim, self.output_dim, num_latent_tokens, embed_dim, is_decoder
        )
        self.fclayer = FCBlock(wave_dim)
        self.initialize_weights()

    def forward(self, batch: Tensor, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Embed ``batch`` with kernels made for ``waves`` (``[C]`` µm); returns (tokens, wave encodings)."""
        waves = self.fclayer(posemb_sincos_1d(waves, self.wave_dim))
        weight, bias = self.weight_generator(waves)
        p = self.patch_size
        if self.is_decoder:
            # [C, (p p D)] -> [(C p p), D]: a linear map from decoder tokens back to pixels
            kernel = weight.reshape(weight.shape[0] * p * p, self.embed_dim)
            return F.linear(batch, kernel * 0.02, bias=bias), waves
        # [C, (D p p)] -> [D, C, p, p]
        kernel = weight.reshape(weight.shape[0], -1, p, p).transpose(0, 1)
        out = F.conv2d(batch, kernel * 0.02, bias=bias, stride=p)
        return out.flatten(2).transpose(1, 2), waves

    def initialize_weights(self) -> None:
        """Xavier-uniform weights and zero biases for every linear layer (as Clay initialises them)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)


class Encoder(nn.Module):
    """Clay v1 masked-autoencoder encoder: dynamic patch embedding, position/metadata encoding,
    random patch masking (``mask_ratio``, ``shuffle``), class token and :class:`Transformer`.

    The last 8 channels of every token carry the date (``time``, 4 values) and location (``latlon``,
    4 values) inputs; the others a sine/cosine grid encoding scaled by the ground sample distance.
    """

    def __init__(
        self,
        mask_ratio: float,
        patch_size: int,
        shuffle: bool,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_ratio: float,
        vpt: bool = False,
        vpt_n_tokens: int | None = None,
        vpt_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.shuffle = shuffle
        self.dim = dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.patch_embedding = DynamicEmbedding(
            wave_dim=128, num_latent_tokens=128, patch_size=patch_size, embed_dim=dim, is_decoder=False
        )
        self.transformer = Transformer(
            dim=dim,
            depth=depth,
            heads=heads,
            dim_head=dim_head,
            mlp_dim=int(dim * mlp_ratio),
            vpt=vpt,
            vpt_n_tokens=vpt_n_tokens,
            vpt_dropout=vpt_dropout,
        )

    def to_patch_embed(self, cube: Tensor, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Patch tokens ``[B, L, dim]`` of ``cube`` and the wave encodings ``[C, 128]``."""
        return self.patch_embedding(cube, waves)

    def _encode(
        self, patches: Tensor, time: Tensor, latlon: Tensor, gsd: float | Tensor, grid: int
    ) -> Tensor:
        batch, tokens, _ = patches.shape
        if tokens != grid * grid:
            raise ValueError(
                f"Clay v1 got {tokens} patches but its position encoding is for a {grid}x{grid} grid: "
                "give square images of the img_size the model was built with (or build it with "
                "img_size=<your image side>)."
            )
        meta = torch.hstack((time, latlon)).to(patches.device).detach()
        if meta.shape != (batch, 8):
            raise ValueError(
                f"Clay v1 needs time and latlon of 4 values per sample each (together [B, 8]); got time "
                f"{tuple(time.shape)} and latlon {tuple(latlon.shape)}."
            )
        pos = posemb_sincos_2d_with_gsd(h=grid, w=grid, dim=self.dim - 8, gsd=gsd).to(patches.device).detach()
        encoding = torch.cat((pos.expand(batch, -1, -1), meta[:, None, :].expand(-1, tokens, -1)), dim=-1)
        return patches + encoding

    def add_encodings(self, patches: Tensor, time: Tensor, latlon: Tensor, gsd: float | Tensor) -> Tensor:
        """Add position (grid from the token count) and time/location encodings to ``[B, L, dim]`` patches."""
        grid = int(math.sqrt(patches.shape[1]))
        self.num_patches = grid**2
        return self._encode(patches, time, latlon, gsd, grid)

    def mask_out(self, patches: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Drop ``mask_ratio`` of the patches (random order if ``shuffle``, else the first ones).

        Returns:
            The kept patches ``[B, L', dim]``, their indices ``[B, L']``, the masked indices
            ``[B, L - L']`` and the mask ``[B, L]`` (1 = masked) in the original patch order.
        """
        batch, tokens, _ = patches.shape
        if self.shuffle:
            noise = torch.randn((batch, tokens), device=patches.device)
        else:
            noise = torch.arange(batch * tokens, device=patches.device).reshape(batch, tokens)
        order = torch.argsort(noise, dim=-1)
        restore = torch.argsort(order, dim=-1)
        n_masked = int(self.mask_ratio * self.num_patches)
        masked_indices, unmasked_indices = order[:, :n_masked], order[:, n_masked:]
        mask = torch.zeros((batch, tokens), device=patches.device)
        mask[:, :n_masked] = 1
        mask = torch.gather(mask, dim=1, index=restore)
        rows = torch.arange(batch, device=patches.device)[:, None]
        return patches[rows, unmasked_indices, :], unmasked_indices, masked_indices, mask

    def _tokens(self, datacube: dict[str, Any], masked: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        cube = datacube["pixels"]
        patches, _ = self.to_patch_embed(cube, datacube["waves"])
        patches = self.add_encodings(patches, datacube["time"], datacube["latlon"], datacube["gsd"])
        extra: tuple[Tensor, ...] = ()
        if masked:
            patches, *rest = self.mask_out(patches)
            extra = tuple(rest)
        cls = self.cls_token.expand(cube.shape[0], -1, -1)
        return torch.cat((cls, patches), dim=1), extra

    def forward(self, datacube: dict[str, Any]) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        """Encode a datacube (``pixels``, ``time``, ``latlon``, ``gsd``, ``waves``) with masking.

        Returns:
            The block outputs ``[B, 1 + L', dim]``, the unmasked and masked indices and the mask.
        """
        tokens, (unmasked_indices, masked_indices, mask) = self._tokens(datacube, masked=True)
        return self.transformer(tokens), unmasked_indices, masked_indices, mask


class EmbeddingEncoder(Encoder):
    """Clay v1 encoder for embeddings and fine-tuning: no masking, position grid fixed by ``img_size``."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_ratio: float,
        vpt: bool = False,
        vpt_n_tokens: int | None = None,
        vpt_dropout: float = 0.0,
    ) -> None:
        super().__init__(
            mask_ratio=0.0,
            shuffle=False,
            patch_size=patch_size,
            dim=dim,
            depth=depth,
            heads=heads,
            dim_head=dim_head,
            mlp_ratio=mlp_ratio,
            vpt=vpt,
            vpt_n_tokens=vpt_n_tokens,
            vpt_dropout=vpt_dropout,
        )
        self.img_size = img_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2

    def add_encodings(self, patches: Tensor, time: Tensor, latlon: Tensor, gsd: float | Tensor) -> Tensor:
        """Add the ``img_size`` grid encoding and time/location encodings to ``[B, L, dim]`` patches."""
        return self._encode(patches, time, latlon, gsd, self.grid_size)

    def forward(self, datacube: dict[str, Any]) -> list[Tensor]:  # type: ignore[override]
        """Every block's output ``[B, 1 + L, dim]`` (class token first) for a datacube."""
        tokens, _ = self._tokens(datacube, masked=False)
        return self.transformer(tokens)


class Datacuber(nn.Module):
    """Packs an image batch and its optional metadata into the datacube dict the encoder reads.

    Missing metadata gets Clay's neutral values: zero date and location (4 values each), gsd 1.0, and
    the wavelengths of ``bands``.
    """

    def __init__(self, bands: Sequence[object] | None = None) -> None:
        super().__init__()
        self.bands = bands
        # checked here, so a wrong band name fails when the model is built, not at the first batch
        self._waves = None if bands is None else band_wavelengths(bands)

    def forward(
        self,
        x: Tensor,
        time: Tensor | None = None,
        latlon: Tensor | None = None,
        waves: Tensor | None = None,
        gsd: float | None = None,
    ) -> dict[str, Tensor | float]:
        """The datacube of ``x`` ``[B, C, H, W]``; ``waves`` (``[C]`` µm) overrides the bands' wavelengths."""
        batch = x.shape[0]
        if waves is None:
            if self._waves is None:
                raise ValueError(
                    "Datacuber has no bands: build it with bands=[...] or pass waves=[C] to forward."
                )
            waves = torch.tensor(self._waves, device=x.device)
        if waves.shape[-1] != x.shape[1]:
            raise ValueError(
                f"Clay v1 input has {x.shape[1]} channels but {waves.shape[-1]} band wavelengths "
                f"(bands={self.bands}); give one band per input channel."
            )
        return {
            "pixels": x,
            "time": torch.zeros((batch, 4), device=x.device) if time is None else time,
            "latlon": torch.zeros((batch, 4), device=x.device) if latlon is None else latlon,
            "gsd": 1.0 if gsd is None else gsd,
            "waves": waves,
        }

    def _parse_wavelengths(self, bands: Sequence[object], channels: int) -> Tensor:
        """Wavelengths of ``bands`` as a tensor (the 1.2 helper; ``channels`` is unused there too)."""
        return torch.tensor(band_wavelengths(bands))
