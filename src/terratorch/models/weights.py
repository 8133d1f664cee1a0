"""Pretrained weights for every backbone: find the file, read it, fit its keys and bands, load it.

One path serves the Prithvi ViTs, Prithvi Swin and timm CNNs:

1. :func:`resolve_weights_file` — a local ``ckpt_path`` / ``pretrained_cfg_overlay["file"]``, or the
   file in the local Hugging Face cache (``huggingface_hub.hf_hub_download``; with ``HF_HUB_OFFLINE=1``
   nothing is downloaded and a missing file is an error naming the repo and file).
2. :func:`read_checkpoint` — ``.pt/.pth/.ckpt/.bin`` through ``torch.load(weights_only=True)`` (unless
   the caller opts out) or ``.safetensors``; Lightning/``{"model": ...}`` wrappers are unwrapped.
3. :func:`adapt_state_dict_keys` — wrapper prefixes (``module.``, ``model.``, ``encoder.``, ...) are
   stripped or added so the keys line up with the model.
4. :func:`remap_band_channels` — input channels of the first layer are copied band by band from the
   checkpoint's bands to the model's bands; bands the checkpoint lacks keep their fresh init.
5. :func:`load_state_dict_into` — missing weights are an error (:class:`CheckpointMismatchError`)
   unless ``allow_partial=True``, which warns with the list of what stayed random.

:func:`create_timm_model` applies the same steps to any timm model (used by the timm registry source).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "RGB_BANDS",
    "BandMismatchError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "LoadReport",
    "WeightsError",
    "WeightsNotFoundError",
    "adapt_state_dict_keys",
    "band_key",
    "create_timm_model",
    "find_key",
    "load_backbone_weights",
    "load_pretrained_weights",
    "load_state_dict_into",
    "read_checkpoint",
    "remap_band_channels",
    "resolve_weights_file",
]

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
#: Leading key segments that only say how a model was wrapped when it was saved.
WRAPPER_TOKENS: tuple[str, ...] = ("module", "model", "encoder", "backbone", "_orig_mod")
#: Keys under which trainers nest the actual state dict.
NESTED_STATE_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "module")
#: Bands assumed for a 3-channel checkpoint of a timm model when ``pretrained_bands`` is not given.
RGB_BANDS: tuple[str, ...] = ("RED", "GREEN", "BLUE")
#: kwargs that :func:`create_timm_model` consumes instead of passing them to timm.
TIMM_WEIGHT_KWARGS: tuple[str, ...] = (
    "bands",
    "model_bands",
    "pretrained_bands",
    "ckpt_path",
    "allow_partial",
    "weights_only",
)
_MAX_LISTED = 12


class WeightsError(Exception):
    """Base class of every weights-loading error."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No weights file at the given path, or not in the local Hugging Face cache."""


class CheckpointFormatError(WeightsError, ValueError):
    """The file exists but cannot be read as a checkpoint (wrong suffix, corrupt, unsafe pickle)."""


class CheckpointMismatchError(WeightsError, ValueError):
    """The checkpoint does not fit the model (missing keys, wrong shapes, other architecture)."""


class BandMismatchError(WeightsError, ValueError):
    """Model bands and checkpoint bands cannot be matched."""


# ----------------------------------------------------------------------------------------------
# 1. finding the file
# ----------------------------------------------------------------------------------------------
def resolve_weights_file(
    ckpt_path: str | Path | None = None,
    *,
    hf_repo_id: str | None = None,
    hf_filenames: Sequence[str] = (),
    model_name: str = "this model",
    cache_dir: str | Path | None = None,
) -> Path:
    """Return the local weights file: ``ckpt_path`` if given, else the Hugging Face cache entry.

    Args:
        ckpt_path: A local file chosen by the user; it must exist.
        hf_repo_id: Hub repository that publishes the weights (e.g.
            ``ibm-nasa-geospatial/Prithvi-EO-2.0-300M``).
        hf_filenames: Candidate file names in that repository, tried in order.
        model_name: Used in error messages.
        cache_dir: Hugging Face cache directory (default: the hub's own setting).

    Raises:
        WeightsNotFoundError: The local file does not exist, the model has no published weights, or
            (offline) the file is not cached. The message says how to pass a local file.
    """
    if ckpt_path is not None:
        path = Path(ckpt_path).expanduser()
        if not path.is_file():
            where = "is a directory" if path.is_dir() else "does not exist"
            raise WeightsNotFoundError(
                f"Weights file for {model_name} {where}: {str(path)!r} (absolute: {path.absolute()})."
            )
        return path
    if not hf_repo_id or not hf_filenames:
        raise WeightsNotFoundError(
            f"{model_name} has no published weights to fetch; pass a local file with "
            "ckpt_path=... (or pretrained_cfg_overlay={'file': ...} for timm models), or pretrained=False."
        )
    return _hf_cached_file(hf_repo_id, list(hf_filenames), model_name=model_name, cache_dir=cache_dir)


def _hf_cached_file(
    repo_id: str, filenames: list[str], *, model_name: str, cache_dir: str | Path | None
) -> Path:
    from huggingface_hub import constants, hf_hub_download

    offline = constants.is_offline_mode()
    failures: list[str] = []
    # the local cache first (no network round trip), then (unless offline) a download
    for local_only in (True, False) if not offline else (True,):
        for filename in filenames:
            try:
                found = hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=local_only)
            except Exception as error:  # hub raises many types (offline, HTTP, missing entry)
                failures.append(f"{filename}: {type(error).__name__}")
                continue
            return Path(found)
    mode = "HF_HUB_OFFLINE is set, so only the local cache was searched" if offline else "download failed"
    raise WeightsNotFoundError(
        f"Pretrained weights for {model_name} not found: needed {filenames} from the Hugging Face repo "
        f"{repo_id!r} ({mode}; {', '.join(failures)}). Download the file yourself and pass "
        "ckpt_path='/path/to/file' (backbone_ckpt_path in a factory config; for timm models "
        "pretrained_cfg_overlay={'file': path}), or use pretrained=False."
    )


# ----------------------------------------------------------------------------------------------
# 2. reading it
# ----------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, *, weights_only: bool = True) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` state dict on the CPU.

    Args:
        path: A ``.pt/.pth/.ckpt/.bin`` (torch) or ``.safetensors`` file.
        weights_only: Passed to ``torch.load``; set ``False`` only for files you trust, since
            unpickling arbitrary objects can run code.

    Raises:
        WeightsNotFoundError: No such file.
        CheckpointFormatError: Unsupported suffix, unreadable content, or no tensors inside.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Checkpoint file does not exist: {str(path)!r} (absolute: {path.absolute()})."
        )
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointFormatError(
            f"Cannot read {str(path)!r}: suffix {suffix or '(none)'!r} is not one of "
            f"{list(CHECKPOINT_SUFFIXES)}."
        )
    obj = _load_safetensors(path) if suffix == ".safetensors" else _load_torch(path, weights_only)
    return _unwrap_state_dict(obj, path)


def _load_safetensors(path: Path) -> Any:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError and OSError types
        raise CheckpointFormatError(f"{str(path)!r} is not a readable safetensors file: {error}") from error


def _load_torch(path: Path, weights_only: bool) -> Any:
    import zipfile

    # zip-format files (torch >= 1.6) are memory-mapped: large checkpoints load without a full copy
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except pickle.UnpicklingError as error:
        if weights_only and "Unsupported global" in str(error):
            raise CheckpointFormatError(
                f"{str(path)!r} stores Python objects besides tensors, which weights_only=True refuses to "
                "unpickle. If you trust the file, pass weights_only=False."
            ) from error
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise CheckpointFormatError(
            f"{str(path)!r} is corrupt or not a torch checkpoint: {reason}"
        ) from error
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise CheckpointFormatError(f"{str(path)!r} is corrupt or not a torch checkpoint: {error}") from error


def _unwrap_state_dict(obj: Any, source: object) -> dict[str, Tensor]:
    """Descend into ``state_dict``/``model`` wrappers until a mapping of tensors is found."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        if any(isinstance(v, Tensor) for v in obj.values()):
            break
        nested = next((obj[k] for k in NESTED_STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = nested
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{source!s}: expected a state dict (mapping of tensors), got {type(obj).__name__}."
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointFormatError(
            f"{source!s} holds no tensors (top-level keys: {sorted(map(str, obj))[:_MAX_LISTED]})."
        )
    return tensors


# ----------------------------------------------------------------------------------------------
# 3. fitting the keys
# ----------------------------------------------------------------------------------------------
def _wrapper_prefixes(keys: Iterable[str]) -> set[str]:
    prefixes = {""}
    for key in keys:
        prefix = ""
        for token in key.split(".")[:-1]:
            if token not in WRAPPER_TOKENS:
                break
            prefix += token + "."
            prefixes.add(prefix)
    return prefixes


def _flattened(key: str, model_keys: set[str] | None = None) -> str:
    """timm feature extractors flatten ``stem.0`` into ``stem_0``: the model's spelling of ``key``.

    Joins one pair of neighbouring key segments with ``_``; returns the first variant found in
    ``model_keys`` (or, without ``model_keys``, the variant joining the first pair).
    """
    parts = key.split(".")
    variants = [
        ".".join([*parts[:i], f"{parts[i]}_{parts[i + 1]}", *parts[i + 2 :]]) for i in range(len(parts) - 1)
    ]
    if model_keys is None:
        return variants[0] if variants else key
    return next((v for v in variants if v in model_keys), key)


def adapt_state_dict_keys(state_dict: Mapping[str, Tensor], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """Rename checkpoint keys to the model's: strip/add the wrapper prefix pair that matches most keys.

    Keys outside the stripped prefix are dropped (e.g. ``model.decoder.*`` when loading a backbone from
    a Lightning checkpoint whose backbone lives under ``model.encoder.``). Keys flattened by timm's
    feature extractors (``stem.0`` vs ``stem_0``) are matched too.
    """
    model_keys = set(model_keys)
    best: tuple[int, int, dict[str, Tensor]] | None = None
    for strip in sorted(_wrapper_prefixes(state_dict)):
        for add in sorted(_wrapper_prefixes(model_keys)):
            renamed = {}
            for key, value in state_dict.items():
                if key.startswith(strip):
                    key = add + key[len(strip) :]
                    renamed[key if key in model_keys else _flattened(key, model_keys)] = value
            score = (len(renamed.keys() & model_keys), -len(strip) - len(add))
            if best is None or score > best[:2]:
                best = (*score, renamed)
    assert best is not None  # the ("", "") pair is always tried
    return best[2]


# ----------------------------------------------------------------------------------------------
# 4. bands
# ----------------------------------------------------------------------------------------------
def band_key(band: object) -> str | int:
    """Comparable form of a band: enum → its value, strings upper-cased and stripped, ints as is."""
    if isinstance(band, Enum):
        band = band.value
    if isinstance(band, bool) or not isinstance(band, (str, int)):
        raise TypeError(f"Bands are names (str / band enums) or ints, got {band!r} ({type(band).__name__}).")
    return band.strip().upper() if isinstance(band, str) else band


def remap_band_channels(
    ckpt_weight: Tensor,
    fresh_weight: Tensor,
    ckpt_bands: Sequence[object],
    model_bands: Sequence[object],
    *,
    dim: int = 1,
    name: str = "weight",
    source: object = "checkpoint",
    allow_no_match: bool = False,
) -> Tensor:
    """Build the model's band-indexed weight from the checkpoint's, band by band.

    ``out.select(dim, j)`` is the checkpoint slice of the band ``model_bands[j]`` when the checkpoint
    has it, else ``fresh_weight.select(dim, j)`` (the model's own initialisation).

    Args:
        ckpt_weight: Checkpoint tensor with ``len(ckpt_bands)`` entries along ``dim``.
        fresh_weight: The model's tensor, ``len(model_bands)`` entries along ``dim``.
        ckpt_bands: Bands the checkpoint was trained on, in channel order.
        model_bands: Bands the model receives, in channel order.
        dim: The band dimension (1 = input channels of a conv weight ``(O, C, ...)``).
        name: Key of the tensor, for messages.
        source: File the tensor came from, for messages.
        allow_no_match: Warn instead of raising when no band matches.

    Returns:
        A new tensor shaped like ``fresh_weight``. If the other dimensions differ (another patch or
        tubelet size) a warning is given and ``fresh_weight`` is returned unchanged.

    Raises:
        BandMismatchError: Channel counts disagree with the band lists, duplicate checkpoint bands,
            or (unless ``allow_no_match``) no model band is found in the checkpoint.
    """
    ckpt_keys = [band_key(b) for b in ckpt_bands]
    model_keys = [band_key(b) for b in model_bands]
    if ckpt_weight.shape[dim] != len(ckpt_keys):
        raise BandMismatchError(
            f"{name!r} in {source} has {ckpt_weight.shape[dim]} band channels but pretrained_bands lists "
            f"{len(ckpt_keys)}: {list(ckpt_bands)}. Pass pretrained_bands naming the checkpoint's bands "
            "in order."
        )
    if fresh_weight.shape[dim] != len(model_keys):
        raise BandMismatchError(
            f"Model tensor {name!r} has {fresh_weight.shape[dim]} band channels but bands lists "
            f"{len(model_keys)}: {list(model_bands)}."
        )
    duplicates = sorted({str(k) for k in ckpt_keys if ckpt_keys.count(k) > 1})
    if duplicates:
        raise BandMismatchError(
            f"pretrained_bands of {source} repeats {duplicates}; each band must appear once."
        )
    other_ckpt = ckpt_weight.shape[:dim] + ckpt_weight.shape[dim + 1 :]
    other_model = fresh_weight.shape[:dim] + fresh_weight.shape[dim + 1 :]
    if other_ckpt != other_model:
        warnings.warn(
            f"{name!r} in {source} has shape {tuple(ckpt_weight.shape)} but the model needs "
            f"{tuple(fresh_weight.shape)} (another patch/tubelet size or width); keeping fresh weights.",
            UserWarning,
            stacklevel=2,
        )
        return fresh_weight.clone()
    index = {k: i for i, k in enumerate(ckpt_keys)}
    out = fresh_weight.detach().clone()
    new_bands = []
    for j, key in enumerate(model_keys):
        if key in index:
            out.select(dim, j).copy_(ckpt_weight.select(dim, index[key]))
        else:
            new_bands.append(model_bands[j])
    if len(new_bands) == len(model_keys):
        message = (
            f"None of the model bands {list(model_bands)} is among the checkpoint bands {list(ckpt_bands)} "
            f"of {source} ({name!r})."
        )
        if not allow_no_match:
            raise BandMismatchError(
                message + " Check the band names, pass pretrained_bands=..., or allow_partial=True to start "
                "this layer from scratch."
            )
        warnings.warn(message + " This layer starts from scratch.", UserWarning, stacklevel=2)
    elif new_bands:
        warnings.warn(
            f"Bands {[str(b) for b in new_bands]} are not in {source}; their {name!r} channels are freshly "
            "initialised, the other bands are copied from the checkpoint.",
            UserWarning,
            stacklevel=2,
        )
    return out


# ----------------------------------------------------------------------------------------------
# 5. loading
# ----------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What a load did: keys loaded, left at their initial values, ignored, or of the wrong shape."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _matches(key: str, patterns: Iterable[str]) -> bool:
    """``key`` starts with a pattern (``"decoder"``) or ends with it as a component (``"attn_mask"``)."""
    return any(key.startswith(p) or key.endswith("." + p) for p in patterns)


def load_state_dict_into(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    source: object = "state dict",
    allow_partial: bool = False,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
) -> LoadReport:
    """Load ``state_dict`` into ``model`` after fitting its keys; refuse to leave weights random.

    Args:
        model: Target module.
        state_dict: Checkpoint tensors (wrapper prefixes are fitted by :func:`adapt_state_dict_keys`).
        source: Where the tensors came from (file name), for messages.
        allow_partial: Load what fits and warn about the rest instead of raising.
        ignore_missing: Key prefixes the model may lack in the checkpoint (fixed buffers, ...).
        ignore_unexpected: Key prefixes of the checkpoint that are expected to be unused.

    Raises:
        CheckpointMismatchError: Model weights are missing or have another shape (unless
            ``allow_partial``), or no key matches at all (another architecture, always an error).
    """
    target = model.state_dict()
    state = adapt_state_dict_keys(state_dict, target)
    mismatched = [
        f"{k} (checkpoint {tuple(v.shape)}, model {tuple(target[k].shape)})"
        for k, v in state.items()
        if k in target and v.shape != target[k].shape
    ]
    state = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
    unexpected = sorted(
        k
        for k in adapt_state_dict_keys(state_dict, target)
        if k not in target and not _matches(k, ignore_unexpected)
    )
    missing = [k for k in target if k not in state and not _matches(k, ignore_missing)]
    missing = [k for k in missing if not any(m.startswith(k + " ") for m in mismatched)]
    report = LoadReport(str(source), sorted(state), missing, unexpected, mismatched)
    if not state and mismatched:
        raise CheckpointMismatchError(
            f"No tensor of {source} has the shape {type(model).__name__} needs (another model size?): "
            f"{len(mismatched)} of another shape ({_listing(mismatched)})."
        )
    if not state:
        raise CheckpointMismatchError(
            f"No tensor of {source} fits {type(model).__name__}: is it a checkpoint for another "
            "architecture? "
            f"Model keys look like {_listing(sorted(target)[:4])}; checkpoint keys like "
            f"{_listing(sorted(state_dict)[:4])}."
        )
    problems = _describe(report)
    if (missing or mismatched) and not allow_partial:
        raise CheckpointMismatchError(
            f"{source} does not fully fit {type(model).__name__}: {problems}. Pass allow_partial=True to "
            "load the matching weights and keep the rest randomly initialised."
        )
    model.load_state_dict(state, strict=False)
    if missing or mismatched:
        warnings.warn(
            f"Loaded {len(state)} tensors from {source}; these stay randomly initialised: {problems}.",
            UserWarning,
            stacklevel=2,
        )
    elif unexpected:
        warnings.warn(
            f"{source}: {len(unexpected)} checkpoint tensors are not used by {type(model).__name__}: "
            f"{_listing(unexpected)}.",
            UserWarning,
            stacklevel=2,
        )
    return report


def _describe(report: LoadReport) -> str:
    parts = []
    if report.missing:
        parts.append(f"{len(report.missing)} missing ({_listing(report.missing)})")
    if report.mismatched:
        parts.append(f"{len(report.mismatched)} of another shape ({_listing(report.mismatched)})")
    if report.unexpected:
        parts.append(f"{len(report.unexpected)} unused ({_listing(report.unexpected)})")
    return "; ".join(parts)


def find_key(keys: Iterable[str], name: str) -> str | None:
    """The key among ``keys`` that names the weight ``name``: exact, timm-flattened, or under a prefix."""
    keys = set(keys)
    if name in keys:
        return name
    flat = _flattened(name, keys)
    if flat in keys:
        return flat
    return next(
        (k for k in sorted(keys) if k.endswith("." + name) or k.endswith("." + _flattened(name))), None
    )


def load_pretrained_weights(
    model: nn.Module,
    path: str | Path | Mapping[str, Tensor],
    *,
    model_bands: Sequence[object] | None = None,
    ckpt_bands: Sequence[object] | None = None,
    input_layers: Sequence[str] = (),
    allow_partial: bool = False,
    weights_only: bool = True,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
    state_dict_hook: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    source: str | None = None,
) -> LoadReport:
    """Read ``path`` and load it into ``model``, remapping band channels of ``input_layers``.

    Args:
        model: Target module.
        path: Checkpoint file (see :func:`read_checkpoint`) or an already read state dict.
        model_bands: Bands the model receives; ``None`` disables band remapping.
        ckpt_bands: Bands the checkpoint was trained on (required with ``model_bands``).
        input_layers: Model keys of weights whose dim 1 indexes input bands (e.g.
            ``"patch_embed.proj.weight"``, ``"conv1.weight"``).
        allow_partial: See :func:`load_state_dict_into`; also tolerates bands that match nothing.
        weights_only: See :func:`read_checkpoint`.
        ignore_missing: See :func:`load_state_dict_into`.
        ignore_unexpected: See :func:`load_state_dict_into`.
        state_dict_hook: Model-specific fix-ups applied after key fitting, before band remapping.
        source: Name of the origin in messages (default: the file name).
    """
    if source is None:
        source = "state dict" if isinstance(path, Mapping) else repr(str(path))
    raw = path if isinstance(path, Mapping) else read_checkpoint(path, weights_only=weights_only)
    target = model.state_dict()
    state = adapt_state_dict_keys(raw, target)
    if state_dict_hook is not None:
        state = state_dict_hook(state)
    for layer in input_layers:
        key = find_key(target, layer)
        if key is None or key not in state:
            continue  # reported as missing by load_state_dict_into
        state[key] = _fit_input_layer(
            state[key], target[key], key, source, model_bands, ckpt_bands, allow_partial
        )
    return load_state_dict_into(
        model,
        state,
        source=source,
        allow_partial=allow_partial,
        ignore_missing=ignore_missing,
        ignore_unexpected=ignore_unexpected,
    )


def _fit_input_layer(
    ckpt: Tensor,
    fresh: Tensor,
    key: str,
    source: str,
    model_bands: Sequence[object] | None,
    ckpt_bands: Sequence[object] | None,
    allow_partial: bool,
) -> Tensor:
    if model_bands is None or ckpt.shape[0] != fresh.shape[0]:
        return ckpt  # no band information, or another width: shapes are checked on load
    if ckpt_bands is None:
        raise BandMismatchError(
            f"Cannot map {key!r} of {source} onto bands {list(model_bands)}: the checkpoint's bands are "
            "unknown. Pass pretrained_bands=[...] naming its input channels in order."
        )
    return remap_band_channels(
        ckpt, fresh, ckpt_bands, model_bands, name=key, source=source, allow_no_match=allow_partial
    )


def load_backbone_weights(
    model: nn.Module,
    path: str | Path,
    model_bands: Sequence[object] | None = None,
    ckpt_bands: Sequence[object] | None = None,
    *,
    first_conv: str | Sequence[str] | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
    ignore_unexpected: Iterable[str] = (),
) -> LoadReport:
    """Load a backbone checkpoint (any architecture) with band remapping of its first layer.

    The first layer is ``first_conv`` or, for timm models, ``model.pretrained_cfg["first_conv"]``.
    For a 3-channel checkpoint without ``ckpt_bands``, RGB order (:data:`RGB_BANDS`) is assumed.

    Example: a 3-band ResNet checkpoint onto a 6-band model::

        model = timm.create_model("resnet18", in_chans=6, features_only=True)
        load_backbone_weights(model, "resnet18_rgb.pth", ["BLUE", "GREEN", "RED", "NIR_NARROW",
                              "SWIR_1", "SWIR_2"], ["RED", "GREEN", "BLUE"])
    """
    layers = _first_layers(model, first_conv)
    state = read_checkpoint(path, weights_only=weights_only)
    if model_bands is not None and ckpt_bands is None:
        ckpt_bands = _guess_ckpt_bands(model, state, layers)
    return load_pretrained_weights(
        model,
        state,
        source=repr(str(path)),
        model_bands=model_bands,
        ckpt_bands=ckpt_bands,
        input_layers=layers,
        allow_partial=allow_partial,
        weights_only=weights_only,
        ignore_unexpected=ignore_unexpected,
    )


def _first_layers(model: nn.Module, first_conv: str | Sequence[str] | None) -> list[str]:
    if first_conv is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        first_conv = cfg.get("first_conv")
    if first_conv is None:
        return []
    names = [first_conv] if isinstance(first_conv, str) else list(first_conv)
    return [n if n.endswith((".weight", ".bias")) else n + ".weight" for n in names]


def _guess_ckpt_bands(model: nn.Module, state: Mapping[str, Tensor], layers: list[str]) -> list[str] | None:
    state = adapt_state_dict_keys(state, model.state_dict())
    for layer in layers:
        key = find_key(state, layer)
        if key is not None and state[key].ndim > 1 and state[key].shape[1] == len(RGB_BANDS):
            return list(RGB_BANDS)
    return None


# ----------------------------------------------------------------------------------------------
# timm models
# ----------------------------------------------------------------------------------------------
def create_timm_model(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` plus our local-weights options for any timm model.

    Without our options this is exactly ``timm.create_model(name, **kwargs)`` (so
    ``pretrained_cfg_overlay={"file": path}`` is handled by timm itself). With any of
    ``bands``/``model_bands``, ``pretrained_bands``, ``ckpt_path``, ``allow_partial``, ``weights_only``,
    the model is created without weights and the file (``ckpt_path``, else the overlay ``file`` when
    ``pretrained``, else the Hugging Face cache) is loaded by :func:`load_backbone_weights`, copying the
    first convolution band by band (``in_chans`` defaults to ``len(bands)``). Models whose entrypoint
    handles these options itself (Prithvi Swin) receive them unchanged.
    """
    import timm

    options = {k: kwargs.pop(k) for k in TIMM_WEIGHT_KWARGS if k in kwargs}
    if not options or _handles_weight_kwargs(timm, name):
        return timm.create_model(name, **kwargs, **options)
    bands = options.get("bands", options.get("model_bands"))
    if bands is not None:
        bands = list(bands)
        in_chans = kwargs.setdefault("in_chans", len(bands))
        if in_chans != len(bands):
            raise ValueError(f"in_chans={in_chans} but {len(bands)} bands were given ({bands}) for {name!r}.")
    pretrained = bool(kwargs.pop("pretrained", False))
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    model = timm.create_model(name, pretrained=False, **kwargs)
    path = options.get("ckpt_path") or (overlay.get("file") if pretrained else None)
    if path is None and not pretrained:
        return model
    if path is None:
        path = _timm_hub_file(model, name)
    path = resolve_weights_file(path, model_name=name)
    load_backbone_weights(
        model,
        path,
        bands,
        options.get("pretrained_bands"),
        allow_partial=bool(options.get("allow_partial", False)),
        weights_only=bool(options.get("weights_only", True)),
        ignore_unexpected=_classifier_modules(timm, name) if kwargs.get("features_only") else (),
    )
    return model


def _classifier_modules(timm: Any, name: str) -> tuple[str, ...]:
    """Top-level modules of the classifier, which feature extractors drop (``fc``, ``head``)."""
    cfg = timm.models.get_pretrained_cfg(name)
    classifier = (cfg.classifier if cfg is not None else None) or ()
    names = [classifier] if isinstance(classifier, str) else list(classifier)
    return tuple(name.split(".")[0] + "." for name in names)


def _handles_weight_kwargs(timm: Any, name: str) -> bool:
    try:
        entrypoint = timm.models.model_entrypoint(name.split(".", 1)[0])
    except RuntimeError:
        return False
    return bool(getattr(entrypoint, "handles_weight_kwargs", False))


def _timm_hub_file(model: nn.Module, name: str) -> Path:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    repo = cfg.get("hf_hub_id")
    filenames = (
        [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
    )
    return resolve_weights_file(hf_repo_id=repo, hf_filenames=filenames if repo else (), model_name=name)
