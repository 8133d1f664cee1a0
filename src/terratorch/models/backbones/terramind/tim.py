"""TerraMind "Thinking in Modalities" (TiM): generate an intermediate modality, then encode it too.

:class:`TerraMindTiM` is the TerraMind encoder (:class:`~.vit.TerraMindViT`) with a frozen
encoder-decoder (:class:`~.encdec.TerraMind`, under ``sampler.model``) in front: for each
``tim_modalities`` entry (default ``["LULC"]``) missing from the inputs, the encoder-decoder generates
its tokens from the inputs (ROAR decoding, :mod:`.generation`), and the encoder then sees them as one
more input modality. Outputs, ``out_channels``, ``merge_method`` and
``prepare_features_for_image_model`` behave as for the encoder, with the TiM modality counted among
the image modalities. Names, arguments and the ``state_dict`` layout are those of TerraTorch 1.2.

Randomness, as in TerraTorch 1.2: each forward draws the generation seed from Python's ``random``
module and reseeds torch from it, so ``random.seed(s)`` before a forward makes the generated tokens
reproducible (and equal to the reference's for the same weights).

Tokenizers: as in 1.2, one is built (from ``tokenizer_dict``) for every input and TiM modality that
has one, so raw inputs are tokenized; for TerraMind v1 those are LULC and NDVI. Other tokenised
inputs take token ids; ``tokenizer.*`` tensors of a checkpoint without a built tokenizer are ignored.

Not supported (clear errors): generated *sequence* modalities (captions, coordinates: they need text
tokenizers).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.backbones.terramind.embeddings import (
    ImageEncoderEmbedding,
    ImageTokenEncoderEmbedding,
    build_encoder_embedding,
    build_modality_embeddings,
)
from terratorch.models.backbones.terramind.encdec import (
    DEFAULT_NORM,
    TerraMind,
    build_decoder_modality_embeddings,
)
from terratorch.models.backbones.terramind.generation import (
    GenerationSampler,
    build_chained_generation_schedules,
    init_empty_target_modality,
    init_full_input_modality,
)
from terratorch.models.backbones.terramind.modalities import (
    MODALITY_INFO,
    UnknownModalityError,
    resolve_output_modality,
)
from terratorch.models.backbones.terramind.vit import TerraMindViT

__all__ = ["TerraMindTiM", "resolve_tim_modality"]

logger = logging.getLogger(__name__)

#: Tokens per generated image when no image input gives the grid (224 / 16 squared, as in 1.2).
DEFAULT_IMAGE_TOKENS = 196


def resolve_tim_modality(name: str) -> str:
    """The tokenised modality key a ``tim_modalities`` entry selects (``"LULC"`` → ``"tok_lulc@224"``).

    Raises:
        UnknownModalityError: No modality matches; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"tim_modalities entries are modality names (str), got {name!r} ({type(name).__name__})."
        )
    try:
        return resolve_output_modality(name if name in MODALITY_INFO else name.replace("text", "caption"))
    except UnknownModalityError as error:
        raise UnknownModalityError(f"tim_modalities: {error}") from error


def _normalized_modalities(modalities: Any, in_chans: int) -> list[Any]:
    if modalities is None or len(modalities) == 0:
        return [{"image": in_chans}]
    if isinstance(modalities, (str, Mapping)):
        return [modalities]
    return list(modalities)


class TerraMindTiM(TerraMindViT):
    """TerraMind encoder that first generates ``tim_modalities`` with its encoder-decoder.

    Args:
        img_size: Image size the position tables are built for.
        modalities: Input modalities, as for :class:`~.vit.TerraMindViT`.
        tim_modalities: Tokenised modalities to generate, in order (default ``["LULC"]``); each one
            given as input is used as it is instead.
        tim_chained_generations: Later TiM modalities are generated conditioned on earlier ones (the
            generator shares the encoder's input embeddings); else only on the inputs.
        tim_decoding_steps: Decoding steps per generated modality.
        tim_temps: Sampling temperature (0: greedy).
        tim_top_p: Nucleus-sampling threshold (0: off).
        tim_top_k: Top-k sampling threshold (0: off).
        merge_method: As for :class:`~.vit.TerraMindViT`.
        decoder_depth: Blocks of the generator's decoder.
        tokenizer_dict: Optional tokenizer factories for tokenised *inputs* (none ship with this build).
        pretrained: Passed to the tokenizer factories.
        **others: The remaining arguments are those of :class:`~.vit.TerraMindViT`.

    Raises:
        UnknownModalityError: A ``tim_modalities`` name matches no modality.
        NotImplementedError: A sequence TiM modality (needs a text tokenizer), or a TiM name that is
            also an input of another kind (e.g. raw S2L2A input and tokenised S2L2A as TiM).
    """

    def __init__(
        self,
        img_size: int = 224,
        modalities: Sequence[str | Mapping[str, int | nn.Module]]
        | Mapping[str, int | nn.Module]
        | None = None,
        tim_modalities: Sequence[str] | None = None,
        tim_chained_generations: bool = True,
        tim_decoding_steps: int = 1,
        tim_temps: float = 1.0,
        tim_top_p: float = 0.8,
        tim_top_k: int = 0,
        merge_method: str | None = "mean",
        patch_size: int = 16,
        in_chans: int = 3,
        dim: int = 768,
        encoder_depth: int = 12,
        decoder_depth: int = 12,
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
        norm_layer: Callable[[int], nn.Module] = DEFAULT_NORM,
        gated_mlp: bool = False,
        qk_norm: bool = False,
        encoder_norm: bool = True,
        tokenizer_dict: Mapping[str, Callable[..., nn.Module]] | None = None,
        pretrained: bool = False,
    ) -> None:
        names = list(tim_modalities or ["LULC"])
        tim_keys = {name: resolve_tim_modality(name) for name in names}
        sequences = [f"{n} ({k})" for n, k in tim_keys.items() if MODALITY_INFO[k]["type"] != "img"]
        if sequences:
            raise NotImplementedError(
                f"TiM modalities {sequences} are sequences; generating them needs their text tokenizers, "
                "which "
                "this build does not ship. Use image modalities such as LULC, NDVI, DEM, S1GRD or S2L2A."
            )
        inputs = _normalized_modalities(modalities, in_chans)
        super().__init__(
            img_size=img_size,
            modalities=inputs,
            merge_method=merge_method,
            patch_size=patch_size,
            in_chans=in_chans,
            dim=dim,
            encoder_depth=encoder_depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            mlp_bias=mlp_bias,
            num_register_tokens=num_register_tokens,
            drop_path_rate=drop_path_rate,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            modality_drop_rate=modality_drop_rate,
            act_layer=act_layer,
            norm_layer=norm_layer,
            gated_mlp=gated_mlp,
            qk_norm=qk_norm,
            encoder_norm=encoder_norm,
            tokenizer_dict=tokenizer_dict,
            pretrained=pretrained,
        )
        self.tim_modalities = names
        self.tim_decoding_steps = tim_decoding_steps
        self.tim_temps = tim_temps
        self.tim_top_p = tim_top_p
        self.tim_top_k = tim_top_k
        self.tim_chained_generations = tim_chained_generations
        self._add_tim_embeddings(tim_keys, dim, img_size)
        for key in self.encoder_embeddings:  # the TiM modalities' tokenizers too, as in 1.2
            if tokenizer_dict is not None and key in tokenizer_dict and key not in self.tokenizer:
                self.tokenizer[key] = tokenizer_dict[key](pretrained=pretrained)

        if tim_chained_generations:
            generator_inputs: dict[str, nn.Module] = dict(self.encoder_embeddings.items())
        else:
            generator_inputs, _ = build_modality_embeddings(inputs, img_size, dim, patch_size)
        decoder_embeddings, _ = build_decoder_modality_embeddings(names, img_size, dim)
        generator = TerraMind(
            encoder_embeddings=generator_inputs,
            decoder_embeddings=decoder_embeddings,
            modality_info=MODALITY_INFO,
            dim=dim,
            encoder_depth=encoder_depth,
            decoder_depth=decoder_depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            mlp_bias=mlp_bias,
            act_layer=act_layer,
            norm_layer=norm_layer,
            gated_mlp=gated_mlp,
            qk_norm=qk_norm,
            num_register_tokens=num_register_tokens,
        )
        # the generator is never fine-tuned (nor, when shared, the input embeddings: as in 1.2)
        self.sampler = GenerationSampler(generator.requires_grad_(False))
        self.output_mod_name_mapping: dict[str, str] = {k: k for k in self.mod_name_mapping}
        self.output_mod_name_mapping.update({key: name for name, key in tim_keys.items()})
        if not tim_chained_generations:  # else the generator has just initialised the shared TiM embeddings
            self.init_weights()
            if merge_method == "concat":
                nn.init.normal_(self.missing_mod_token, std=0.02)
        self.register_load_state_dict_pre_hook(_drop_tokenizer_tensors)

    def _add_tim_embeddings(self, tim_keys: Mapping[str, str], dim: int, img_size: int) -> None:
        """Give the encoder an input embedding for every TiM modality (shared keys are reused)."""
        for name, key in tim_keys.items():
            if name in self.mod_name_mapping:
                if self.mod_name_mapping[name] != key:
                    raise NotImplementedError(
                        f"TiM modality {name!r} is also an input, as {self.mod_name_mapping[name]!r}; TiM "
                        f"generates the tokenised {key!r}. Give it as the input 'tok_…' key, or drop it "
                        "from one of modalities / tim_modalities."
                    )
                continue
            if key not in self.encoder_embeddings:
                self.encoder_embeddings[key] = build_encoder_embedding(key, dim, img_size)
            self.mod_name_mapping[name] = key
        self.modalities = list(self.mod_name_mapping)
        self.image_modalities = [
            key
            for key, module in self.encoder_embeddings.items()
            if isinstance(module, (ImageEncoderEmbedding, ImageTokenEncoderEmbedding))
        ]
        width = dim * len(self.image_modalities) if self.merge_method == "concat" else dim
        self.out_channels = [width] * len(self.encoder)

    # ------------------------------------------------------------------------------------------
    # thinking
    # ------------------------------------------------------------------------------------------
    def _generator_input(
        self, name: str, value: Any, batch: int, device: torch.device
    ) -> tuple[Any, int | None]:
        """The generator's dict for one input, and its token count when it is an image modality."""
        key = self.mod_name_mapping[name]
        with torch.no_grad():
            value = self._tokenize(key, value)
        if key not in self.image_modalities:
            return init_full_input_modality(value, MODALITY_INFO, key, device), None
        tensor = value["tensor"] if isinstance(value, Mapping) else value
        module = self.encoder_embeddings[key]
        if isinstance(module, ImageTokenEncoderEmbedding):
            if tensor.is_floating_point():
                raise TypeError(
                    f"{name!r} ({key}) is a tokenised modality: pass integer token ids (B, H/16, W/16), "
                    "got a "
                    f"{tensor.dtype} tensor of shape {tuple(tensor.shape)}. Raw inputs need the modality's "
                    "tokenizer (TerraMind v1 builds those of LULC and NDVI)."
                )
            count = int(tensor[0].numel())
        else:
            count = int(
                (tensor.shape[-1] / module.patch_size[-1]) * (tensor.shape[-2] / module.patch_size[-2])
            )
        masks = {
            "tensor": tensor,
            "input_mask": torch.zeros(batch, count, dtype=torch.bool, device=device),
            "target_mask": torch.ones(batch, count, dtype=torch.bool, device=device),
            "decoder_attention_mask": torch.zeros(batch, count, dtype=torch.bool, device=device),
        }
        return init_full_input_modality(masks, MODALITY_INFO, key, device), count

    def generate_tim_tokens(self, inputs: Mapping[str, Any]) -> dict[str, Tensor]:
        """Generate the token ids of each TiM modality missing from ``inputs`` (keyed by input name).

        Returns:
            ``{tim name: ids (B, N)}`` in ``tim_modalities`` order.
        """
        first = next(iter(inputs.values()))
        first = first["tensor"] if isinstance(first, Mapping) else first
        batch, device = first.shape[0], first.device
        generator_dict: dict[str, Any] = {}
        image_tokens = DEFAULT_IMAGE_TOKENS
        for name, value in inputs.items():
            generator_dict[self.mod_name_mapping[name]], count = self._generator_input(
                name, value, batch, device
            )
            if count is not None:
                image_tokens = count
        targets: list[str] = []
        for name in self.tim_modalities:
            key = self.mod_name_mapping[name]
            if key in generator_dict:
                continue  # given as input: no thinking needed
            targets.append(key)
            generator_dict[key] = init_empty_target_modality(MODALITY_INFO, key, batch, image_tokens, device)
        count = len(targets)
        schedule = build_chained_generation_schedules(
            cond_domains=[self.mod_name_mapping[n] for n in inputs],
            target_domains=targets,
            tokens_per_target=[image_tokens] * count,
            autoregression_schemes=["roar"] * count,
            decoding_steps=[self.tim_decoding_steps] * count,
            token_decoding_schedules=["linear"] * count,
            temps=[self.tim_temps] * count,
            temp_schedules=["constant"] * count,
            cfg_scales=[1.0] * count,
            cfg_schedules=["constant"] * count,
            cfg_grow_conditioning=True,
        )
        seed = random.randint(-(2**31), 2**31 - 1)
        if not targets:
            return {}
        with torch.no_grad():
            out = self.sampler.generate(
                generator_dict,
                schedule,
                verbose=False,
                seed=seed,
                top_p=self.tim_top_p,
                top_k=self.tim_top_k,
                num_tokens=image_tokens * count,
                tokenizer=self.tokenizer,
            )
        return {self.output_mod_name_mapping[key]: out[key]["tensor"] for key in targets}

    # ------------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------------
    def forward(self, d: dict[str, Any] | Tensor | None = None, **kwargs: Any) -> list[Any]:
        """Generate the TiM modalities, then encode inputs plus generated tokens.

        Args:
            d: A dict ``{modality: tensor}`` or one tensor for the first modality (see
                :meth:`TerraMindViT.forward`).
            **kwargs: More inputs as ``modality=tensor``.

        Returns:
            One entry per block, merged by ``merge_method``; with ``"dict"`` the entries hold the input
            modalities only (as in 1.2; the generated tokens are not returned).
        """
        inputs = self._collect(d, kwargs)
        with torch.no_grad():  # tokenize raw inputs once, for the generator and the encoder
            inputs = {name: self._tokenize(self.mod_name_mapping[name], v) for name, v in inputs.items()}
        given = list(inputs)
        grid = self._check_grids(inputs)  # mismatched inputs fail before the generation
        inputs.update(self.generate_tim_tokens(inputs))
        if self.training and self.modality_drop_rate:
            for name in random.sample(given, k=len(inputs) - 1):
                if random.random() < self.modality_drop_rate:
                    inputs.pop(name)
        names = list(inputs)
        tokens, counts = [], {}
        self._grid = grid
        for name in names:
            embedded = self._embed(name, inputs[name])
            tokens.append(embedded["x"] + embedded["emb"])
            counts[name] = embedded["x"].shape[-2]
        if self.merge_method in ("mean", "max", "concat"):
            self._check_tokens(inputs, counts)
        x = torch.cat(tokens, dim=1)
        num_tokens = [counts[n] for n in names]
        is_image = [self.mod_name_mapping[n] in self.image_modalities for n in names]
        if self.register_tokens is not None:
            x = torch.cat([self.register_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        out = []
        for block in self.encoder:
            x = block(x)
            out.append(x)
        out[-1] = self.encoder_norm(x)
        if self.merge_method == "dict":
            keys = [n for n in given if n in inputs]
            sizes = list(num_tokens)
            if self.register_tokens is not None:
                keys.insert(0, "register_tokens")
                sizes.insert(0, self.num_register_tokens)
            return [dict(zip(keys, torch.split(x, sizes, dim=1))) for x in out]
        return self._merge(out, names, num_tokens, is_image)


def _drop_tokenizer_tensors(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any
) -> None:
    """Ignore ``tokenizer.*`` tensors of checkpoints for tokenizers this model does not build."""
    present = set(module.tokenizer.state_dict()) if len(module.tokenizer) else set()
    extra = [
        k for k in state_dict if k.startswith(prefix + "tokenizer.") and k[len(prefix) + 10 :] not in present
    ]
    if extra:
        logger.info("Ignoring %d tokenizer tensors of the checkpoint (tokenizers not built).", len(extra))
    for key in extra:
        del state_dict[key]
