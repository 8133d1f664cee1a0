"""The Clay v1.5 masked autoencoder (``ClayMAE``): encoder, pixel decoder and a frozen teacher.

State-dict layout of the published Clay v1.5 Lightning checkpoint below its ``model.`` prefix:
``encoder.*`` (:class:`Encoder`), ``decoder.*`` (:class:`Decoder`), ``proj.*`` (class token projected
to the teacher's width) and ``teacher.*`` (a timm model). The published weights are the ``large``
size (:data:`CLAY_MAE_SIZES`), patch size 8.

Position encodings are computed from the token count (square grids of any size). The last 8 channels
of every token carry the date (``time``, 4 values) and location (``latlon``, 4 values) of the sample.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.clay_v15.backbone import Transformer
from terratorch.models.backbones.clay_v15.factory import DynamicEmbedding
from terratorch.models.backbones.clay_v15.utils import posemb_sincos_2d_with_gsd

__all__ = [
    "CLAY_MAE_SIZES",
    "ClayMAE",
    "Decoder",
    "Encoder",
    "clay_mae_base",
    "clay_mae_large",
    "clay_mae_small",
    "clay_mae_tiny",
]

_ENCODER_SIZE = ("dim", "depth", "heads", "dim_head", "mlp_ratio")
_DECODER_SIZE = tuple(f"decoder_{k}" for k in _ENCODER_SIZE)


def _size(encoder: tuple[int, ...], decoder: tuple[int, ...]) -> dict[str, Any]:
    return dict(zip(_ENCODER_SIZE + _DECODER_SIZE, encoder + decoder, strict=True))


#: Encoder and decoder sizes (width, blocks, heads, head width, MLP ratio) of the Clay v1.5 MAE
#: variants; ``large`` is the published one.
CLAY_MAE_SIZES: dict[str, dict[str, Any]] = {
    "tiny": _size((192, 6, 4, 48, 2), (96, 3, 2, 48, 2)),
    "small": _size((384, 6, 6, 64, 2), (192, 4, 4, 64, 2)),
    "base": _size((768, 12, 12, 64, 4), (512, 4, 4, 64, 4)),
    "large": _size((1024, 24, 16, 64, 4), (512, 4, 4, 64, 4)),
}

#: Width of the wavelength encodings and number of latent tokens of every dynamic embedding.
WAVE_DIM = 128


def _gsd_tensor(gsd: float | Tensor, device: torch.device) -> Tensor:
    return torch.as_tensor(gsd, dtype=torch.float32, device=device)


def _metadata_encoding(
    batch: int, grid: int, dim: int, time: Tensor, latlon: Tensor, gsd: float | Tensor, device: torch.device
) -> Tensor:
    """``[B, grid*grid, dim]``: the gsd-scaled grid encoding followed by the 8 time/location values."""
    meta = torch.hstack((time, latlon)).to(device).detach()
    if meta.shape != (batch, 8):
        raise ValueError(
            f"Clay v1.5 needs time and latlon of 4 values per sample each (together [B, 8]); got time "
            f"{tuple(time.shape)} and latlon {tuple(latlon.shape)} for a batch of {batch}."
        )
    # the grid is built on the CPU (as Clay does), so the gsd goes there too
    cpu_gsd = _gsd_tensor(gsd, torch.device("cpu"))
    pos = posemb_sincos_2d_with_gsd(h=grid, w=grid, dim=dim - 8, gsd=cpu_gsd).to(device)
    tokens = grid * grid
    return torch.cat((pos.detach().expand(batch, -1, -1), meta[:, None, :].expand(-1, tokens, -1)), dim=-1)


def _grid_side(tokens: int) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"Clay v1.5 needs a square patch grid, got {tokens} patches; give square images.")
    return side


class Encoder(nn.Module):
    """Clay v1.5 encoder: dynamic patch embedding, position/metadata encoding, patch masking, class
    token and :class:`~.backbone.Transformer`.

    Args:
        mask_ratio: Share of the patches dropped (0 for embeddings and fine-tuning).
        patch_size: Side of a patch in pixels.
        shuffle: Mask a random subset; ``False`` masks the first patches in row-major order.
        dim: Token width.
        depth: Transformer blocks.
        heads: Attention heads.
        dim_head: Width of each head.
        mlp_ratio: MLP width as a multiple of ``dim``.
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
    ) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.shuffle = shuffle
        self.dim = dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.patch_embedding = DynamicEmbedding(
            wave_dim=WAVE_DIM,
            num_latent_tokens=WAVE_DIM,
            patch_size=patch_size,
            embed_dim=dim,
            is_decoder=False,
        )
        self.transformer = Transformer(
            dim=dim,
            depth=depth,
            heads=heads,
            dim_head=dim_head,
            mlp_dim=int(dim * mlp_ratio),
            fused_attn=True,
        )

    def to_patch_embed(self, cube: Tensor, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Patch tokens ``[B, L, dim]`` of ``cube`` ``[B, C, H, W]`` and the wave encodings ``[C, 128]``."""
        return self.patch_embedding(cube, waves)

    def add_encodings(self, patches: Tensor, time: Tensor, latlon: Tensor, gsd: float | Tensor) -> Tensor:
        """Add the position (grid from the token count) and time/location encodings to the patches."""
        batch, tokens, _ = patches.shape
        grid = _grid_side(tokens)
        self.num_patches = tokens
        return patches + _metadata_encoding(batch, grid, self.dim, time, latlon, gsd, patches.device)

    def mask_out(self, patches: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Drop ``mask_ratio`` of the patches.

        Returns:
            The kept patches ``[B, L', dim]``, their indices ``[B, L']``, the masked indices
            ``[B, L - L']`` and the mask ``[B, L]`` (1 = masked) in the original patch order.
        """
        batch, tokens, _ = patches.shape
        if self.shuffle:
            noise = torch.randn((batch, tokens), device=patches.device)
        else:
            noise = torch.arange(batch * tokens, device=patches.device).reshape(batch, tokens)
        order = noise.argsort(dim=-1)
        n_masked = int(self.mask_ratio * tokens)
        masked_indices, unmasked_indices = order[:, :n_masked], order[:, n_masked:]
        mask = torch.zeros((batch, tokens), device=patches.device)
        mask[:, :n_masked] = 1
        mask = mask.gather(1, order.argsort(dim=-1))
        rows = torch.arange(batch, device=patches.device)[:, None]
        return patches[rows, unmasked_indices, :], unmasked_indices, masked_indices, mask

    def tokens(self, datacube: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The transformer input ``[B, 1 + L', dim]`` (class token first) and the masking outputs."""
        cube = datacube["pixels"]
        patches, _ = self.to_patch_embed(cube, datacube["waves"])
        patches = self.add_encodings(patches, datacube["time"], datacube["latlon"], datacube["gsd"])
        kept, unmasked_indices, masked_indices, mask = self.mask_out(patches)
        cls = self.cls_token.expand(cube.shape[0], -1, -1)
        return torch.cat((cls, kept), dim=1), unmasked_indices, masked_indices, mask

    def forward(self, datacube: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode a datacube (``pixels`` ``[B, C, H, W]``, ``time`` and ``latlon`` ``[B, 4]``, ``gsd``,
        ``waves`` ``[C]`` in µm).

        Returns:
            The encoded tokens ``[B, 1 + L', dim]``, the unmasked and masked indices and the mask.
        """
        tokens, unmasked_indices, masked_indices, mask = self.tokens(datacube)
        return self.transformer(tokens), unmasked_indices, masked_indices, mask


class Decoder(nn.Module):
    """Clay v1.5 MAE decoder: re-inserts mask tokens, runs a small transformer and maps every patch
    token back to pixels with a wavelength-conditioned linear layer (``embed_to_pixels``).
    """

    def __init__(
        self,
        mask_ratio: float,
        patch_size: int,
        encoder_dim: int,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.encoder_dim = encoder_dim
        self.dim = dim
        self.enc_to_dec = nn.Linear(encoder_dim, dim) if encoder_dim != dim else nn.Identity()
        self.mask_patch = nn.Parameter(torch.randn(dim))
        self.transformer = Transformer(
            dim=dim,
            depth=depth,
            heads=heads,
            dim_head=dim_head,
            mlp_dim=int(dim * mlp_ratio),
            fused_attn=True,
        )
        self.embed_to_pixels = DynamicEmbedding(
            wave_dim=WAVE_DIM,
            num_latent_tokens=WAVE_DIM,
            patch_size=patch_size,
            embed_dim=dim,
            is_decoder=True,
        )

    def reconstruct_and_add_encoding(
        self,
        unmasked_patches: Tensor,
        unmasked_indices: Tensor,
        masked_indices: Tensor,
        masked_matrix: Tensor,
        time: Tensor,
        latlon: Tensor,
        gsd: float | Tensor,
    ) -> Tensor:
        """The full ``[B, 1 + L, dim]`` decoder input: class token, kept patches and mask tokens in
        their original order, each with its position/metadata encoding."""
        batch, tokens = masked_matrix.shape
        grid = _grid_side(tokens)
        self.num_patches = tokens
        device = unmasked_patches.device
        cls, kept = unmasked_patches[:, :1, :], unmasked_patches[:, 1:, :]
        encoding = _metadata_encoding(batch, grid, self.dim, time, latlon, gsd, device)
        rows = torch.arange(batch, device=device)[:, None]
        masked = (
            self.mask_patch.expand(batch, masked_indices.shape[1], -1) + encoding[rows, masked_indices, :]
        )
        kept = kept + encoding[rows, unmasked_indices, :]
        patches = torch.zeros((batch, tokens, self.dim), device=device, dtype=kept.dtype)
        patches[rows, unmasked_indices, :] = kept
        patches[rows, masked_indices, :] = masked
        return torch.cat((cls, patches), dim=1)

    def forward(
        self,
        encoded_unmasked_patches: Tensor,
        unmasked_indices: Tensor,
        masked_indices: Tensor,
        masked_matrix: Tensor,
        time: Tensor,
        latlon: Tensor,
        gsd: float | Tensor,
        waves: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Reconstructed patches ``[B, L, C * p * p]`` (no class token) and the wave encodings."""
        tokens = self.enc_to_dec(encoded_unmasked_patches)
        tokens = self.reconstruct_and_add_encoding(
            tokens, unmasked_indices, masked_indices, masked_matrix, time, latlon, gsd
        )
        pixels, waves = self.embed_to_pixels(self.transformer(tokens), waves)
        return pixels[:, 1:, :], waves


def _entry(metadata: Any, *path: str) -> Any:
    """``metadata[a][b]...`` for nested dicts (or ``python-box`` objects, which are dicts too)."""
    node = metadata
    for position, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(path[:position]) or "metadata"
            keys = sorted(node) if isinstance(node, Mapping) else []
            raise KeyError(f"Clay v1.5 metadata has no {key!r} under {where!r} (it has {keys}).")
        node = node[key]
    return node


class ClayMAE(nn.Module):
    """Clay v1.5 masked autoencoder with a representation loss against a frozen timm teacher.

    Args:
        mask_ratio: Share of patches masked in training.
        patch_size: Patch side in pixels.
        norm_pix_loss: Normalise each target patch before the L1 reconstruction loss.
        shuffle: Mask random patches (else the first ones).
        metadata: Per platform: ``bands.wavelength`` (name → µm), ``gsd`` and ``rgb_indices`` (Clay's
            ``metadata.yaml`` as nested dicts or a ``Box``).
        teacher: timm model name (or an already built module exposing ``num_features``) whose
            embedding of the RGB bands the class token learns to predict.
        dolls: Matryoshka sizes (accepted as in Clay; the published model does not use them).
        doll_weights: Weights of the Matryoshka losses (likewise unused).
        dim, depth, heads, dim_head, mlp_ratio: Encoder size.
        decoder_dim, decoder_depth, decoder_heads, decoder_dim_head, decoder_mlp_ratio: Decoder size.
        teacher_pretrained: Ours: load the teacher's pretrained timm weights (True, as Clay and 1.2 do).
            They must be available offline (local Hugging Face/torch cache, see
            :func:`terratorch.models.backbone_adapter.resolve_timm_pretrained`); ``False`` keeps the
            teacher random (for tests, or when the teacher weights come with a Clay checkpoint).
        **kwargs: Ignored (1.2 ignored them too).
    """

    def __init__(
        self,
        mask_ratio: float,
        patch_size: int,
        norm_pix_loss: bool,
        shuffle: bool,
        metadata: Mapping[str, Any],
        teacher: str | nn.Module,
        dolls: Sequence[int],
        doll_weights: Sequence[float],
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_ratio: float,
        decoder_dim: int,
        decoder_depth: int,
        decoder_heads: int,
        decoder_dim_head: int,
        decoder_mlp_ratio: float,
        teacher_pretrained: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.norm_pix_loss = norm_pix_loss
        self.shuffle = shuffle
        self.metadata = metadata
        self.dolls = list(dolls)
        self.doll_weights = list(doll_weights)
        self.teacher = (
            teacher if isinstance(teacher, nn.Module) else _build_teacher(teacher, teacher_pretrained)
        )
        self.teacher_chip_size = 518
        self.proj = nn.Linear(dim, int(self.teacher.num_features))
        self.encoder = Encoder(
            mask_ratio=mask_ratio,
            patch_size=patch_size,
            shuffle=shuffle,
            dim=dim,
            depth=depth,
            heads=heads,
            dim_head=dim_head,
            mlp_ratio=mlp_ratio,
        )
        self.decoder = Decoder(
            mask_ratio=mask_ratio,
            patch_size=patch_size,
            encoder_dim=dim,
            dim=decoder_dim,
            depth=decoder_depth,
            heads=decoder_heads,
            dim_head=decoder_dim_head,
            mlp_ratio=decoder_mlp_ratio,
        )
        self.freeze_teacher()

    def freeze_teacher(self) -> None:
        """Stop gradients through the teacher and keep it in eval mode."""
        for param in self.teacher.parameters():
            param.requires_grad = False
        self.teacher.eval()

    def teacher_resize(self, rgb: Tensor) -> Tensor:
        """Resize ``[B, 3, H, W]`` to the teacher's ``518 x 518`` input (bilinear, antialiased)."""
        size = (self.teacher_chip_size, self.teacher_chip_size)
        return F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True)

    def per_pixel_loss(self, cube: Tensor, pixels: Tensor, masked_matrix: Tensor) -> Tensor:
        """Mean L1 error over the masked patches between ``cube`` ``[B, C, H, W]`` and the
        reconstruction ``pixels`` ``[B, L, C * p * p]``."""
        batch, channels, height, width = cube.shape
        p = self.patch_size
        patches = (
            cube.reshape(batch, channels, height // p, p, width // p, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(batch, (height // p) * (width // p), channels * p * p)
        )
        if self.norm_pix_loss:
            mean = patches.mean(dim=-1, keepdim=True)
            var = patches.var(dim=-1, keepdim=True)
            patches = (patches - mean) / (var + 1e-6) ** 0.5
        loss = F.l1_loss(patches, pixels, reduction="none").mean(dim=-1)
        return (loss * masked_matrix).sum() / masked_matrix.sum()

    def forward(self, datacube: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Training losses ``(loss, reconstruction_loss, representation_loss)`` of a datacube.

        ``datacube`` holds ``pixels`` ``[B, C, H, W]``, ``time`` and ``latlon`` ``[B, 4]`` and ``platform``
        (a list of platform names, the first one is used; a plain name is accepted too). As in Clay, a
        sample with a non-zero location has all (10 %) or half (20 %) of its channels zeroed at random.
        """
        platform = datacube["platform"]
        platform = platform if isinstance(platform, str) else platform[0]
        pixels = datacube["pixels"]
        wavelengths = _entry(self.metadata, platform, "bands", "wavelength")
        waves = torch.tensor(list(wavelengths.values()), dtype=torch.float32, device=pixels.device)
        gsd = _gsd_tensor(_entry(self.metadata, platform, "gsd"), pixels.device)
        dropped = pixels.clone()
        batch, channels = pixels.shape[:2]
        for i in range(batch):
            if torch.any(datacube["latlon"][i] != 0):
                draw = random.random()
                if draw < 0.1:
                    dropped[i] = 0
                elif draw < 0.3:
                    dropped[i, torch.randperm(channels)[: channels // 2]] = 0
        encoded, unmasked_indices, masked_indices, mask = self.encoder(
            {
                "pixels": dropped,
                "time": datacube["time"],
                "latlon": datacube["latlon"],
                "gsd": gsd,
                "waves": waves,
            }
        )
        reconstruction, _ = self.decoder(
            encoded, unmasked_indices, masked_indices, mask, datacube["time"], datacube["latlon"], gsd, waves
        )
        reconstruction_loss = self.per_pixel_loss(pixels, reconstruction, mask)
        if platform == "modis":  # Clay scales MODIS down: its reconstruction loss is about 10x the others'
            reconstruction_loss = reconstruction_loss / 10
        representation = self.proj(encoded[:, 0, :])
        with torch.no_grad():
            if platform == "sentinel-1-rtc":
                vv, vh = pixels[:, 0], pixels[:, 1]
                rgb = torch.stack((vv, vh, (vv + vh) / 2), dim=1)
            else:
                rgb = pixels[:, list(_entry(self.metadata, platform, "rgb_indices"))]
            target = self.teacher(self.teacher_resize(rgb))
        representation_loss = 1.0 - F.cosine_similarity(representation, target).mean()
        loss = 0.9 * reconstruction_loss + 0.1 * representation_loss
        return loss, reconstruction_loss, representation_loss


def _build_teacher(name: str, pretrained: bool) -> nn.Module:
    """A timm feature extractor (``num_classes=0``); pretrained weights come from local files only."""
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0}
    if pretrained:
        from terratorch.models.backbone_adapter import resolve_timm_pretrained

        kwargs["pretrained_cfg_overlay"] = resolve_timm_pretrained(name, None)
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def _sized(size: str, kwargs: dict[str, Any]) -> ClayMAE:
    return ClayMAE(**{**CLAY_MAE_SIZES[size], **kwargs})


def clay_mae_tiny(**kwargs: Any) -> ClayMAE:
    """Clay v1.5 MAE, tiny size (encoder 192 wide, 6 blocks); ``kwargs`` override sizes too."""
    return _sized("tiny", kwargs)


def clay_mae_small(**kwargs: Any) -> ClayMAE:
    """Clay v1.5 MAE, small size (encoder 384 wide, 6 blocks)."""
    return _sized("small", kwargs)


def clay_mae_base(**kwargs: Any) -> ClayMAE:
    """Clay v1.5 MAE, base size (encoder 768 wide, 12 blocks)."""
    return _sized("base", kwargs)


def clay_mae_large(**kwargs: Any) -> ClayMAE:
    """Clay v1.5 MAE, large size (encoder 1024 wide, 24 blocks): the size of the published weights."""
    return _sized("large", kwargs)
