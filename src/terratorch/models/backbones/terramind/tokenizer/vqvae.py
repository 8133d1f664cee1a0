"""VQ-VAE tokenizers: a ViT encoder, a 1x1 projection to the latent, a finite scalar quantizer and
(for :class:`VQVAE`) a ViT decoder.

State-dict names follow the published TerraMind tokenizer checkpoints: ``encoder.*``,
``quant_proj.*``, ``decoder.*``, ``post_quant_proj.*`` (the quantizer holds no persistent state).
"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor, nn

from terratorch.models.backbones.terramind.tokenizer.fsq import FiniteScalarQuantizer
from terratorch.models.backbones.terramind.tokenizer.vit_codec import build_vit

logger = logging.getLogger(__name__)

#: Quantizers we implement (the reference also has ``lucid`` and ``memcodes``, unused by TerraMind v1).
QUANTIZERS = ("fsq",)


class VQ(nn.Module):
    """Encoder and quantizer of a tokenizer: raw ``[B, C, H, W]`` maps to ``[B, H/P, W/P]`` token ids.

    Args:
        image_size: Training image size (sets the position-embedding grid).
        image_size_enc: Encoder image size if different (default ``image_size``).
        n_channels: Input channels (classes for a class map such as LULC).
        enc_type: Encoder preset, ``vit_{s,b,l}_enc``.
        patch_proj: Patchify the input (else the encoder reads a feature grid).
        post_mlp: Residual tanh MLP after the encoder blocks.
        patch_size: Encoder patch size; one token per patch.
        quant_type: Quantizer; only ``"fsq"`` (what every TerraMind v1 tokenizer uses).
        codebook_size: FSQ levels, e.g. ``"7-5-5-5-5"``.
        latent_dim: Latent channels; must equal the number of FSQ levels.
        **kwargs: Options of the reference's training setup that do not change inference
            (``encoder_type``, ``prediction_type``, ``clip_sample``, ...); ignored, as the reference does.

    Attributes:
        missing_weights: Set (to the reason) when pretrained weights were asked for but not found;
            ``encode`` then raises instead of tokenizing with random weights.

    Raises:
        ValueError: Unknown ``quant_type``/``enc_type`` or ``latent_dim`` not matching the levels.
    """

    def __init__(
        self,
        image_size: int = 224,
        image_size_enc: int | None = None,
        n_channels: int = 12,
        enc_type: str = "vit_b_enc",
        patch_proj: bool = True,
        post_mlp: bool = False,
        patch_size: int = 16,
        quant_type: str = "fsq",
        codebook_size: str = "8-8-8-6-5",
        latent_dim: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if quant_type not in QUANTIZERS:
            from terratorch.choices import unknown_choice

            raise ValueError(unknown_choice("tokenizer quant_type", quant_type, QUANTIZERS))
        if kwargs:
            logger.debug("Tokenizer options without effect at inference: %s", sorted(kwargs))
        self.image_size = image_size
        self.n_channels = n_channels
        self.enc_type = enc_type
        self.patch_proj = patch_proj
        self.post_mlp = post_mlp
        self.patch_size = patch_size
        self.quant_type = quant_type
        self.codebook_size = codebook_size
        self.latent_dim = latent_dim
        if not enc_type.endswith("_enc"):
            raise ValueError(
                f"enc_type must be an encoder preset (vit_s_enc, vit_b_enc, vit_l_enc), got {enc_type!r}."
            )
        self.encoder = build_vit(
            enc_type,
            in_channels=n_channels,
            patch_size=patch_size,
            resolution=image_size_enc or image_size,
            patch_proj=patch_proj,
            post_mlp=post_mlp,
        )
        self.enc_dim = self.encoder.dim_tokens
        self.quant_proj = nn.Conv2d(self.enc_dim, latent_dim, 1)
        self.quantize = FiniteScalarQuantizer(codebook_size=codebook_size)
        #: Why the weights are random although pretrained ones were asked for (``encode`` then refuses).
        self.missing_weights: str | None = None
        levels = int(self.quantize._levels.numel())
        if levels != latent_dim:
            raise ValueError(
                f"latent_dim ({latent_dim}) must equal the number of FSQ levels in codebook_size "
                f"{codebook_size!r} ({levels})."
            )

    def encode(self, x: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Encode and quantize ``x`` (``[B, C, H, W]``, or class ids ``[B, H, W]``/``[B, 1, H, W]``).

        Extra positional/keyword arguments (the reference's callers pass a device) are ignored.

        Raises:
            PretrainedWeightsNotFoundError: The tokenizer's pretrained weights were not found when built.

        Returns:
            The quantized latent ``[B, latent_dim, H/P, W/P]``, the (zero) codebook loss and the int32
            token ids ``[B, H/P, W/P]``.
        """
        if self.missing_weights is not None:
            from terratorch.models.weights import PretrainedWeightsNotFoundError

            raise PretrainedWeightsNotFoundError(self.missing_weights)
        h = self.quant_proj(self.encoder(x))
        return self.quantize(h)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # weights loaded later (a fine-tuned checkpoint holding the tokenizer) clear the flag
        if f"{prefix}quant_proj.weight" in state_dict:
            self.missing_weights = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def tokenize(self, x: Tensor) -> Tensor:
        """Token ids ``[B, H/P, W/P]`` of ``x``."""
        return self.encode(x)[-1]

    def tokens_to_embedding(self, tokens: Tensor) -> Tensor:
        """The quantized latent ``[B, latent_dim, H, W]`` of a token grid ``[B, H, W]``."""
        return self.quantize.indices_to_embedding(tokens)

    def decode_quant(self, quant: Tensor, **kwargs: Any) -> Tensor:
        """Decode a quantized latent; this encoder-only tokenizer has no decoder.

        Raises:
            NotImplementedError: Always; use a :class:`VQVAE` to decode.
        """
        raise NotImplementedError(
            f"{type(self).__name__} is encoder-only (it tokenizes, it cannot decode); decoding needs the "
            "tokenizer's decoder, which is not part of this model."
        )

    def decode_tokens(self, tokens: Tensor, **kwargs: Any) -> Tensor:
        """Decode a token grid ``[B, H, W]`` to ``[B, C, H*P, W*P]``."""
        kwargs.pop("image_size", None)
        return self.decode_quant(self.tokens_to_embedding(tokens), **kwargs)

    def forward(self, x: Tensor, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """The quantized latent and codebook loss of ``x``."""
        quant, loss, _ = self.encode(x)
        return quant, loss


class VQVAE(VQ):
    """VQ-VAE tokenizer with a ViT decoder (the LULC tokenizer): encode to tokens and decode back.

    Args:
        dec_type: Decoder preset, ``vit_{s,b,l}_dec``.
        image_size_dec: Decoder image size if different (default ``image_size``).
        patch_size_dec: Decoder patch size (default the encoder's).
        out_conv: ConvNeXt blocks after the decoder; not used by TerraMind v1 and not supported.
        **kwargs: :class:`VQ` arguments.

    Raises:
        ValueError: ``out_conv=True`` or a non-decoder ``dec_type``.
    """

    def __init__(
        self,
        dec_type: str = "vit_b_dec",
        image_size_dec: int | None = None,
        patch_size_dec: int | None = None,
        out_conv: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if out_conv:
            raise ValueError("out_conv=True is not supported: no TerraMind v1 tokenizer uses it.")
        if not dec_type.endswith("_dec"):
            raise ValueError(
                f"dec_type must be a decoder preset (vit_s_dec, vit_b_dec, vit_l_dec), got {dec_type!r}."
            )
        self.decoder = build_vit(
            dec_type,
            out_channels=self.n_channels,
            patch_size=patch_size_dec or self.patch_size,
            resolution=image_size_dec or self.image_size,
            post_mlp=self.post_mlp,
            patch_proj=self.patch_proj,
        )
        self.dec_dim = self.decoder.dim_tokens
        self.post_quant_proj = nn.Conv2d(self.latent_dim, self.dec_dim, 1)

    def decode_quant(self, quant: Tensor, **kwargs: Any) -> Tensor:
        """Decode a quantized latent ``[B, latent_dim, h, w]`` to ``[B, C, h*P, w*P]`` (logits for LULC)."""
        return self.decoder(self.post_quant_proj(quant))

    def forward(self, x: Tensor, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Reconstruction of ``x`` and the codebook loss."""
        quant, loss, _ = self.encode(x)
        return self.decode_quant(quant), loss

    def autoencode(self, x: Tensor, **kwargs: Any) -> Tensor:
        """Encode, quantize and decode ``x``."""
        return self.forward(x)[0]
