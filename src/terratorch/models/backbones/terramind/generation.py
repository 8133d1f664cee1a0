"""Token generation with the TerraMind encoder-decoder: schedules, target set-up and the sampler.

Generation fills the target tokens of a tokenised modality step by step: each step encodes the
visible tokens (inputs plus the targets decoded so far), decodes the still-missing targets and
samples ids from the logits (temperature, top-k, top-p). Schemes, as in 4M / TerraTorch 1.2:

- ``"maskgit"``: decode every missing token, keep the ``num_tokens`` most confident samples;
- ``"roar"`` (random-order autoregression): decode ``num_tokens`` randomly chosen missing tokens;
- ``"autoregressive"`` for sequences needs a text tokenizer, which this build does not ship.

Seeding: a step with seed ``s`` calls ``torch.manual_seed(s)`` (``seed + step index`` for a
schedule) before drawing its random order and samples, so a seeded run is reproducible and gives the
ids the reference gives for the same weights. Classifier-free guidance (``cfg_scale != 1``) mixes
logits with a pass whose conditioning modalities are hidden.

Public names (stable): :func:`cosine_schedule`, :func:`linear_schedule`,
:func:`linear_temp_schedule`, :func:`onex_temp_schedule`, :func:`empty_img_modality`,
:func:`empty_seq_modality`, :func:`empty_seq_emb_modality`, :func:`init_empty_target_modality`,
:func:`init_conditioned_target_modality`, :func:`init_full_input_modality`,
:func:`build_chained_generation_schedules` and :class:`GenerationSampler`.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GenerationSampler",
    "build_chained_generation_schedules",
    "cosine_schedule",
    "empty_img_modality",
    "empty_seq_emb_modality",
    "empty_seq_modality",
    "init_conditioned_target_modality",
    "init_empty_target_modality",
    "init_full_input_modality",
    "linear_schedule",
    "linear_temp_schedule",
    "onex_temp_schedule",
]

logger = logging.getLogger(__name__)

_SEQ = ("seq", "seq_token")
SCHEMES = ("maskgit", "roar", "autoregressive")


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------
def cosine_schedule(num_steps: int, total_tokens: int) -> np.ndarray:
    """Tokens decoded per step when the masked share follows a half cosine (many early, few late)."""
    masked = np.array([0.5 * (1 + math.cos(math.pi * i / num_steps)) for i in range(num_steps)])
    tokens = [round(total_tokens * share) for share in masked[:-1] - masked[1:]]
    tokens.append(total_tokens - sum(tokens))
    return np.array(tokens)


def linear_schedule(num_steps: int, total_tokens: int) -> np.ndarray:
    """Tokens decoded per step for an even split, largest steps first, trailing empty steps dropped."""
    steps = np.diff(np.linspace(0, total_tokens, num_steps + 1, dtype=int))
    return np.trim_zeros(np.sort(steps)[::-1], "b")


def onex_temp_schedule(
    max_t: float,
    min_t: float,
    token_schedule: Sequence[int],
    power: float = 0.5,
    min_linspace: float = 1,
    max_linspace: float = 100,
) -> np.ndarray:
    """Temperatures falling like ``1 / x**power`` from ``max_t`` towards ``min_t`` (clipped at 1e-9)."""
    x = np.linspace(min_linspace, max_linspace, num=sum(token_schedule))
    y = 1 / (x**power)
    y = (y - min(y)) / max(y - min(y))
    done = np.cumsum(token_schedule) / np.sum(token_schedule)
    scaled = [(1 - d) * v for v, d in zip(y, done)]
    return np.array([min_t + (max_t - min_t) * s for s in scaled]).clip(min=1e-9)


def linear_temp_schedule(temp: float, token_schedule: np.ndarray) -> np.ndarray:
    """Temperatures falling in proportion to the tokens still to decode (first step: ``temp``)."""
    remaining = temp * (token_schedule.sum() - token_schedule.cumsum()) / token_schedule.sum()
    return np.concatenate([np.array([temp * 1.0]), remaining[:-1]]).clip(min=1e-9)


def _temperatures(name: str, temp: float, token_schedule: np.ndarray, num_steps: int) -> np.ndarray:
    if name == "linear":
        return linear_temp_schedule(temp, token_schedule)
    if name == "constant":
        return temp * np.ones(num_steps)
    if name.startswith("onex"):
        try:
            min_t, power = (float(v) for v in name.split(":")[1:])
        except ValueError as error:
            raise ValueError(
                f"The onex temperature schedule is written 'onex:<min_t>:<power>', got {name!r}."
            ) from error
        return onex_temp_schedule(max_t=temp, min_t=min_t, token_schedule=token_schedule, power=power)
    raise ValueError(
        f"Unknown temperature schedule {name!r}; use 'constant', 'linear' or 'onex:<min_t>:<power>'."
    )


def build_chained_generation_schedules(
    cond_domains: Sequence[str],
    target_domains: Sequence[str],
    tokens_per_target: Sequence[int],
    autoregression_schemes: Sequence[str],
    decoding_steps: Sequence[int | None],
    token_decoding_schedules: Sequence[str | None],
    temps: Sequence[float],
    temp_schedules: Sequence[str],
    cfg_scales: Sequence[float | list[float]],
    cfg_schedules: Sequence[str],
    cfg_grow_conditioning: bool = False,
    modality_info: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One dict per decoding step, the targets one after another (later ones may condition on earlier ones).

    Each step holds ``target_domain``, ``scheme``, ``num_tokens`` (None for autoregressive),
    ``temperature``, ``cfg_scale`` and ``cfg_cond_domains``. Per target: ``maskgit`` splits its tokens
    by a ``cosine`` or ``linear`` token schedule, ``roar`` linearly, over ``decoding_steps``;
    temperatures follow ``constant``, ``linear`` or ``onex:<min_t>:<power>``; guidance is
    ``constant``. With ``cfg_grow_conditioning`` finished targets join the guidance conditioning.

    Raises:
        ValueError: Unknown scheme or schedule, or (with ``modality_info``) a sequence target for a
            non-autoregressive scheme.
    """
    schedule: list[dict[str, Any]] = []
    conditioning = list(cond_domains)
    for i, target in enumerate(target_domains):
        scheme = autoregression_schemes[i]
        temp, cfg_scale = temps[i], cfg_scales[i]
        if scheme == "autoregressive":
            schedule.append(
                {
                    "target_domain": target,
                    "scheme": scheme,
                    "num_tokens": None,
                    "temperature": temp,
                    "cfg_scale": cfg_scale,
                    "cfg_cond_domains": list(conditioning),
                }
            )
            continue
        if modality_info is not None and modality_info[target]["type"] in _SEQ:
            raise ValueError(f"Sequence target {target!r} needs the 'autoregressive' scheme, not {scheme!r}.")
        steps = decoding_steps[i]
        if scheme == "maskgit":
            name = token_decoding_schedules[i]
            if name == "cosine":
                tokens = cosine_schedule(steps, tokens_per_target[i])
            elif name == "linear":
                tokens = linear_schedule(steps, tokens_per_target[i])
            else:
                raise ValueError(f"Unknown MaskGIT token schedule {name!r}; use 'cosine' or 'linear'.")
        elif scheme == "roar":
            tokens = linear_schedule(steps, tokens_per_target[i])
        else:
            raise ValueError(f"Unknown decoding scheme {scheme!r}; use one of {list(SCHEMES)}.")
        temperatures = _temperatures(temp_schedules[i], temp, tokens, steps)
        if cfg_schedules[i] == "constant":
            if isinstance(cfg_scale, list):
                guidance = np.array(cfg_scale) * np.ones(steps).reshape(-1, 1)
            else:
                guidance = cfg_scale * np.ones(steps)
        else:
            raise ValueError(f"Unknown guidance schedule {cfg_schedules[i]!r}; only 'constant' is available.")
        schedule.extend(
            {
                "target_domain": target,
                "scheme": scheme,
                "num_tokens": n,
                "temperature": t,
                "cfg_scale": g,
                "cfg_cond_domains": list(conditioning),
            }
            for n, t, g in zip(tokens, temperatures, guidance)
        )
        if cfg_grow_conditioning:
            conditioning.append(target)
    return schedule


# ----------------------------------------------------------------------------------------------
# modality dicts
# ----------------------------------------------------------------------------------------------
def empty_img_modality(mod_dict: dict[str, dict[str, Tensor]], key: str) -> dict[str, dict[str, Tensor]]:
    """Hide image modality ``key`` from the encoder and the targets (the unconditional pass)."""
    mod_dict[key]["input_mask"][:] = True
    mod_dict[key]["target_mask"][:] = False
    return mod_dict


def empty_seq_modality(mod_dict: dict[str, Tensor], s1_id: int = 5) -> dict[str, Tensor]:
    """Make a sequence empty: input ``[S_1]``, target ``[S_1] ... [S_2]`` (ids ``s1_id``, ``s1_id + 1``)."""
    mod_dict["tensor"][:] = 0
    mod_dict["tensor"][:, [0, 1]] = s1_id
    mod_dict["tensor"][:, -1] = s1_id + 1
    mod_dict["input_mask"][:] = True
    mod_dict["input_mask"][:, 0] = False
    mod_dict["target_mask"] = ~mod_dict["input_mask"]
    mod_dict["decoder_attention_mask"][:] = 1
    mod_dict["decoder_attention_mask"][:, 0] = 0
    return mod_dict


def empty_seq_emb_modality(mod_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep only the first token of an embedding sequence visible (needed for guidance)."""
    mod_dict["input_mask"][:, 0] = False
    return mod_dict


def init_empty_target_modality(
    modality_info: Mapping[str, Mapping[str, Any]],
    domain: str,
    batch_size: int,
    num_tokens: int,
    device: torch.device | str,
    s1_id: int = 5,
) -> dict[str, Tensor]:
    """A target dict for ``domain`` with every token still to generate.

    Raises:
        ValueError: ``domain`` has a type other than image or sequence.
    """
    kind = modality_info[domain]["type"]
    shape = (batch_size, num_tokens)
    if kind == "img":
        return {
            "tensor": torch.zeros(shape, dtype=torch.int64, device=device),
            "input_mask": torch.ones(shape, dtype=torch.bool, device=device),
            "target_mask": torch.zeros(shape, dtype=torch.bool, device=device),
        }
    if kind in ("seq", "seq_token", "seq_emb"):
        mod_dict = {
            "tensor": torch.zeros(shape, dtype=torch.int, device=device),
            "input_mask": torch.ones(shape, dtype=torch.bool, device=device),
            "target_mask": torch.zeros(shape, dtype=torch.bool, device=device),
            "decoder_attention_mask": torch.zeros(shape, dtype=torch.bool, device=device),
        }
        if kind == "seq_emb":
            return empty_seq_emb_modality(mod_dict)
        return empty_seq_modality(mod_dict, s1_id=s1_id)
    raise ValueError(f"Cannot generate modality {domain!r} of type {kind!r}; only images and sequences.")


def init_conditioned_target_modality(
    mod_dict: dict[str, Tensor],
    modality_info: Mapping[str, Mapping[str, Any]],
    domain: str,
    num_target_tokens: int,
    eos_id: int = 3,
    s1_id: int = 5,
) -> dict[str, Tensor]:
    """Extend a given sequence input with ``num_target_tokens`` targets after its EOS token.

    Raises:
        NotImplementedError: ``domain`` is not a sequence (conditioned image targets are not supported).
    """
    if modality_info[domain]["type"] not in _SEQ:
        raise NotImplementedError(f"Conditioned targets exist only for sequence modalities, not {domain!r}.")
    batch, length = mod_dict["tensor"].shape[:2]
    device = mod_dict["tensor"].device

    def extend(name: str, fill: Tensor) -> None:
        mod_dict[name] = torch.cat([mod_dict[name], fill], dim=1)

    extend("tensor", torch.zeros((batch, num_target_tokens), dtype=torch.int, device=device))
    extend("input_mask", torch.ones((batch, num_target_tokens), dtype=torch.bool, device=device))
    extend("target_mask", torch.zeros((batch, num_target_tokens), dtype=torch.bool, device=device))
    extend("decoder_attention_mask", torch.ones((batch, num_target_tokens), dtype=torch.bool, device=device))
    if eos_id in mod_dict["tensor"]:
        eos = torch.where(mod_dict["tensor"] == eos_id)[1]
    else:
        warnings.warn(
            f"No EOS token in the {domain} input; assuming it ends at the last position.", stacklevel=2
        )
        eos = [length] * batch
    for i in range(batch):
        end = eos[i]
        mod_dict["tensor"][i, [end, end + 1]] = s1_id
        mod_dict["tensor"][i, -1] = s1_id + 1
        mod_dict["input_mask"][i, : end + 1] = False
        mod_dict["input_mask"][i, end + 1 :] = True
    mod_dict["target_mask"] = ~mod_dict["input_mask"]
    mod_dict["decoder_attention_mask"] = mod_dict["input_mask"]
    return mod_dict


def init_full_input_modality(
    value: Tensor | dict[str, Tensor],
    modality_info: Mapping[str, Mapping[str, Any]],
    domain: str,
    device: torch.device | str,
    eos_id: int = 3,
) -> dict[str, Tensor]:
    """A dict for ``domain`` given in full as input (masks filled in where absent)."""
    mod_dict = value if isinstance(value, dict) else {"tensor": value}
    shape = mod_dict["tensor"].shape
    mod_dict.setdefault("input_mask", torch.zeros(shape, dtype=torch.bool, device=device))
    mod_dict.setdefault("target_mask", torch.ones(shape, dtype=torch.bool, device=device))
    mod_dict.setdefault("decoder_attention_mask", torch.zeros(shape, dtype=torch.bool, device=device))
    kind = modality_info[domain]["type"]
    if kind == "img":
        mod_dict["input_mask"][:] = False
        mod_dict["target_mask"][:] = True
    elif kind in _SEQ:
        if eos_id in mod_dict["tensor"]:
            end = torch.where(mod_dict["tensor"] == eos_id)[1][0].item()
        else:
            warnings.warn(f"No EOS token in the {domain} input; the input is ignored.", stacklevel=2)
            mod_dict["tensor"][:, 0] = eos_id
            end = 0
        mod_dict["input_mask"][:, : end + 1] = False
        mod_dict["input_mask"][:, end + 1 :] = True
        mod_dict["target_mask"][:] = True
    elif kind == "seq_emb":
        mod_dict["input_mask"] = ~mod_dict["mask_valid"]
        mod_dict["target_mask"] = torch.ones_like(mod_dict["mask_valid"])
        mod_dict["decoder_attention_mask"] = torch.zeros_like(mod_dict["mask_valid"])
    return mod_dict


# ----------------------------------------------------------------------------------------------
# sampler
# ----------------------------------------------------------------------------------------------
def _ramp(length: int, device: torch.device) -> Tensor:
    return torch.arange(length, device=device).unsqueeze(0) * 1e-6


class GenerationSampler(nn.Module):
    """Generates tokens of tokenised modalities with a :class:`~.encdec.TerraMind` model.

    Args:
        model: The encoder-decoder (its ``encoder_embeddings`` take the conditioning modalities,
            its ``decoder_embeddings`` the targets).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    # -- sampling ------------------------------------------------------------------------------
    @staticmethod
    def top_k_top_p_filtering(logits: Tensor, top_k: float | int = 0.0, top_p: float = 0.0) -> Tensor:
        """Set logits outside the top ``k`` (int, or a share of the vocabulary as float) and outside the
        smallest set reaching probability ``top_p`` to ``-inf``, in place, per row of ``(n, V)``.

        Raises:
            ValueError: ``top_k`` is neither an int nor a float.
        """
        if top_k > 0.0:
            if isinstance(top_k, int):
                k = min(top_k, logits.shape[-1])
            elif isinstance(top_k, float):
                k = min(int(top_k * logits.shape[-1]), logits.shape[-1])
            else:
                raise ValueError(f"top_k must be an int or a float, got {top_k!r}.")
            logits[logits < torch.topk(logits, k)[0][..., -1, None]] = float("-inf")
        if top_p > 0.0:
            sorted_logits, order = torch.sort(logits, dim=1, descending=True)
            beyond = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1) > top_p
            beyond[..., 1:] = beyond[..., :-1].clone()  # keep the first token past the threshold too
            beyond[..., 0] = 0
            logits[torch.gather(beyond, -1, torch.argsort(order, dim=-1))] = float("-inf")
        return logits

    def sample_tokens(
        self, logits: Tensor, temperature: float = 1.0, top_k: float | int = 0.0, top_p: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """Draw one id per row of ``(n, V)`` logits (argmax at temperature 0): ids and probabilities."""
        if np.isclose(temperature, 0, atol=1e-10):
            samples = torch.argmax(logits, dim=-1)
            return samples, torch.ones_like(samples, dtype=torch.get_default_dtype())
        probs = F.softmax(self.top_k_top_p_filtering(logits, top_k, top_p) / temperature, dim=-1)
        samples = torch.multinomial(probs, 1)[:, 0]
        return samples, probs[torch.arange(len(samples)), samples]

    def sample_tokens_batched(
        self, logits: Tensor, temperature: float = 1.0, top_k: float | int = 0.0, top_p: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """:meth:`sample_tokens` for ``(B, N, V)`` logits (returns ``(B, N)`` ids and probabilities)."""
        if logits.ndim <= 2:
            return self.sample_tokens(logits, temperature, top_k, top_p)
        batch, length = logits.shape[:2]
        samples, probs = self.sample_tokens(logits.reshape(batch * length, -1), temperature, top_k, top_p)
        return samples.reshape(batch, length), probs.reshape(batch, length)

    def select_tokens_batched(
        self,
        logits: Tensor,
        num_select: int,
        temperature: float = 1.0,
        top_k: float | int = 0.0,
        top_p: float = 0.0,
        return_all_samples: bool = False,
    ) -> tuple[Tensor, ...]:
        """Sample every position, keep the ``num_select`` most probable samples per row (MaskGIT)."""
        samples, probs = self.sample_tokens_batched(logits, temperature, top_k, top_p)
        top = torch.topk(probs, num_select, dim=-1)[1]
        chosen = torch.gather(samples, dim=-1, index=top)
        return (chosen, top, samples) if return_all_samples else (chosen, top)

    # -- model passes --------------------------------------------------------------------------
    def forward_mask_encoder_generation(
        self, encoder_mod_dict: Mapping[str, Mapping[str, Tensor]]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encoder tokens of the visible inputs (as many as the fullest sample has)."""
        batch = next(iter(encoder_mod_dict.values()))["tensor"].shape[0]
        mask = torch.cat([d["input_mask"] for d in encoder_mod_dict.values()], dim=1)
        count = (~mask.reshape(batch, -1)).sum(dim=1).max()
        return self.model.select_encoder_tokens(encoder_mod_dict, count)

    def _decoder_inputs(
        self, d: Mapping[str, Tensor], target_mod: str, num_select: int | None, seed: int | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Mask-token queries for the missing targets: all in order (``num_select`` None) or a random few."""
        if seed is not None:
            torch.manual_seed(seed)
        mask = d["target_mask"]
        batch, length = mask.shape
        queries = torch.zeros_like(d["x"]) + self.model.mask_token
        modality = torch.full_like(d["ids"], self.model.modality_info[target_mod]["id"], dtype=torch.int)
        positions = torch.arange(length, device=mask.device).unsqueeze(0).expand(batch, -1)
        missing = (~mask[0]).sum()  # the same number of targets in every sample
        if num_select is None:
            keep = torch.argsort(mask + _ramp(length, mask.device), dim=1)[:, :missing]
        else:
            noise = torch.rand(length, device=mask.device).unsqueeze(0) * 1e-6
            keep = torch.argsort(mask + noise, dim=1)[:, : min(num_select, missing)]
        queries = _take(queries, keep)
        emb = _take(d["emb"], keep)
        selected_mask = torch.gather(mask, 1, keep)
        modality = torch.gather(modality, 1, keep)
        positions = torch.gather(positions, 1, keep)
        queries[selected_mask] = 0.0
        emb[selected_mask] = 0.0
        modality[selected_mask] = -1
        return queries + emb, modality, positions, selected_mask

    def _logits(
        self,
        mod_dict: Mapping[str, Mapping[str, Tensor]],
        target_mod: str,
        num_select: int | None,
        seed: int | None,
    ) -> tuple[Tensor, Tensor]:
        """Encode the visible tokens, decode the chosen targets: logits ``(B, n, V)`` and positions."""
        model = self.model
        encoder_dict = {
            k: model.encoder_embeddings[k](d) for k, d in mod_dict.items() if k in model.encoder_embeddings
        }
        tokens, emb, encoder_mask, _ = self.forward_mask_encoder_generation(encoder_dict)
        x = model.forward_encoder(tokens + emb, encoder_mask)
        context = model.decoder_proj_context(x) + emb
        decoder_dict = {target_mod: model.decoder_embeddings[target_mod].forward_embed(mod_dict[target_mod])}
        y, modality, positions, _ = self._decoder_inputs(
            decoder_dict[target_mod], target_mod, num_select, seed
        )
        y = model.forward_decoder(y, context, encoder_mask, None)
        batch, length, _ = y.shape
        logits = model.forward_logits(y, decoder_dict, modality)[target_mod]
        return logits.reshape(batch, length, -1), positions

    def _unconditional(self, mod_dict: Mapping[str, Any], conditioning: Sequence[str]) -> dict[str, Any]:
        """A copy of ``mod_dict`` with the ``conditioning`` modalities hidden."""
        uncond = copy.deepcopy(mod_dict)
        for key in conditioning:
            kind = self.model.modality_info[key]["type"]
            if kind in _SEQ:
                uncond[key] = empty_seq_modality(uncond[key])
            elif kind == "seq_emb":
                uncond[key] = empty_seq_emb_modality(uncond[key])
            else:
                uncond = empty_img_modality(uncond, key)
        return uncond

    def _guided_logits(
        self,
        mod_dict: Mapping[str, Any],
        target_mod: str,
        num_select: int | None,
        seed: int | None,
        conditioning: Sequence[str],
        guidance_scale: float,
    ) -> tuple[Tensor, Tensor]:
        cond, _ = self._logits(mod_dict, target_mod, num_select, seed)
        uncond, positions = self._logits(
            self._unconditional(mod_dict, conditioning), target_mod, num_select, seed
        )
        return uncond + (cond - uncond) * guidance_scale, positions

    @staticmethod
    def _write(
        mod_dict: dict[str, Any], target_mod: str, positions: Tensor, samples: Tensor
    ) -> dict[str, Any]:
        """Store decoded ids at ``positions`` and mark them visible inputs (no longer targets)."""
        d = mod_dict[target_mod]
        d["tensor"] = torch.scatter(d["tensor"], -1, positions, samples)
        d["input_mask"] = torch.scatter(
            d["input_mask"], -1, positions, torch.zeros_like(samples, dtype=torch.bool)
        )
        d["target_mask"] = torch.scatter(
            d["target_mask"], -1, positions, torch.ones_like(samples, dtype=torch.bool)
        )
        return mod_dict

    # -- steps ---------------------------------------------------------------------------------
    def maskgit_step_batched(
        self,
        mod_dict: dict[str, Any],
        target_mod: str,
        num_select: int,
        temperature: float,
        top_k: float | int,
        top_p: float,
        seed: int | None = None,
        conditioning: Sequence[str] = (),
        guidance_scale: float = 1.0,
    ) -> dict[str, Any]:
        """One MaskGIT step: decode all missing tokens, keep the ``num_select`` most confident."""
        if guidance_scale == 1.0 or not conditioning:
            logits, positions = self._logits(mod_dict, target_mod, None, seed)
        else:
            logits, positions = self._guided_logits(
                mod_dict, target_mod, None, seed, conditioning, guidance_scale
            )
        chosen, top = self.select_tokens_batched(logits, num_select, temperature, top_k, top_p)
        return self._write(mod_dict, target_mod, torch.gather(positions, -1, top), chosen)

    def roar_step_batched(
        self,
        mod_dict: dict[str, Any],
        target_mod: str,
        num_select: int,
        temperature: float,
        top_k: float | int,
        top_p: float,
        seed: int | None = None,
        conditioning: Sequence[str] = (),
        guidance_scale: float = 1.0,
    ) -> dict[str, Any]:
        """One ROAR step: decode ``num_select`` randomly chosen missing tokens and keep them all."""
        if guidance_scale == 1.0 or not conditioning:
            logits, positions = self._logits(mod_dict, target_mod, num_select, seed)
        else:
            logits, positions = self._guided_logits(
                mod_dict, target_mod, num_select, seed, conditioning, guidance_scale
            )
        samples, _ = self.sample_tokens_batched(logits, temperature, top_k=top_k, top_p=top_p)
        return self._write(mod_dict, target_mod, positions, samples)

    @torch.no_grad()
    def generate(
        self,
        mod_dict: Mapping[str, Any],
        schedule: Sequence[Mapping[str, Any]],
        top_k: float | int = 0.0,
        top_p: float = 0.0,
        tokenizer: Mapping[str, Any] | None = None,
        verbose: bool = False,
        seed: int | None = None,
        num_tokens: int | None = None,
    ) -> dict[str, Any]:
        """Run ``schedule`` (see :func:`build_chained_generation_schedules`) on a copy of ``mod_dict``.

        Args:
            mod_dict: Inputs and empty targets, keyed by canonical modality key.
            schedule: The decoding steps.
            top_k: Keep only the ``k`` most likely ids (0: off).
            top_p: Nucleus sampling threshold (0: off).
            tokenizer: Unused for image targets; sequence targets would need text tokenizers.
            verbose: Log each step (``logging.INFO``).
            seed: Base seed; step ``i`` uses ``seed + i``. None: the current torch RNG state.
            num_tokens: Overrides each step's ``num_tokens`` (TiM passes the total so one step decodes all).

        Returns:
            The modality dict with the generated ids in each target's ``tensor``.

        Raises:
            NotImplementedError: A sequence target (autoregressive decoding needs a text tokenizer).
            ValueError: An unknown scheme or modality type.
        """
        mod_dict = copy.deepcopy(dict(mod_dict))
        for step, info in enumerate(schedule):
            target = info["target_domain"]
            kind = self.model.modality_info[target]["type"]
            if verbose:
                logger.info(
                    "TerraMind generation step %d/%d: %s (%s)",
                    step + 1,
                    len(schedule),
                    target,
                    info["scheme"],
                )
            if kind in _SEQ:
                raise NotImplementedError(
                    f"Generating the sequence modality {target!r} needs its text tokenizer (autoregressive "
                    "decoding), which this build does not ship; generate image modalities (LULC, NDVI, ...)."
                )
            if kind != "img":
                raise ValueError(f"Cannot generate modality {target!r} of type {kind!r}.")
            scheme = str(info["scheme"]).lower()
            steps = {"maskgit": self.maskgit_step_batched, "roar": self.roar_step_batched}
            if scheme not in steps:
                raise ValueError(f"Unknown sampling scheme {info['scheme']!r}; use 'maskgit' or 'roar'.")
            mod_dict = steps[scheme](
                mod_dict,
                target,
                num_tokens or info["num_tokens"],
                temperature=info["temperature"],
                top_k=top_k,
                top_p=top_p,
                seed=seed + step if seed is not None else None,
                conditioning=info.get("cfg_cond_domains", []),
                guidance_scale=info.get("cfg_scale", 1.0),
            )
        return mod_dict


def _take(values: Tensor, index: Tensor) -> Tensor:
    """``values[b, index[b]]`` for ``(B, N, D)`` values."""
    return torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.shape[2]))
