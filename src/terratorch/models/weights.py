"""Pretrained weights for every backbone: find the file, read it, fit its keys and bands, load it.

One path serves the Prithvi ViTs, Prithvi Swin and timm CNNs:

1. :func:`resolve_weights_file` — one rule for Prithvi and timm: a local ``ckpt_path`` /
   ``pretrained_cfg_overlay["file"]``, else the local Hugging Face or torch hub cache, else a download
   only when allowed (``TERRATORCH_ALLOW_DOWNLOAD=1``); otherwise an error naming every place looked at.
2. :func:`read_checkpoint` — ``.pt/.pth/.ckpt/.bin`` through :func:`load_torch_checkpoint` (the safe
   ``torch.load(weights_only=True)`` unless the caller opts out) or ``.safetensors``;
   Lightning/``{"model": ...}`` wrappers are unwrapped.
3. :func:`adapt_state_dict_keys` — wrapper prefixes (``module.``, ``model.``, ``encoder.``, ...) are
   stripped or added so the keys line up with the model.
4. :func:`remap_band_channels` — input channels of the first layer are copied band by band from the
   checkpoint's bands to the model's bands; bands the checkpoint lacks keep their fresh init.
5. :func:`load_state_dict_into` — missing weights are an error (:class:`CheckpointMismatchError`)
   unless ``allow_partial=True``, which warns with the list of what stayed random.

:func:`create_timm_model` applies the same steps to any timm model (used by the timm registry source).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "CHECKPOINT_SUFFIXES",
    "RGB_BANDS",
    "BandMismatchError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "LoadReport",
    "PretrainedWeightsNotFoundError",
    "WeightsError",
    "WeightsNotFoundError",
    "adapt_state_dict_keys",
    "band_key",
    "check_checkpoint_format",
    "create_timm_model",
    "downloads_allowed",
    "find_key",
    "load_backbone_weights",
    "load_pretrained_weights",
    "load_state_dict_into",
    "load_torch_checkpoint",
    "read_checkpoint",
    "remap_band_channels",
    "resolve_timm_weights_file",
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


class PretrainedWeightsNotFoundError(WeightsNotFoundError):
    """``pretrained=True`` but the weights are neither local nor cached (and downloads are off)."""


class CheckpointFormatError(WeightsError, ValueError):
    """The file exists but cannot be read as a checkpoint (wrong suffix, corrupt, unsafe pickle)."""


class CheckpointMismatchError(WeightsError, ValueError):
    """The checkpoint does not fit the model (missing keys, wrong shapes, other architecture)."""


class BandMismatchError(WeightsError, ValueError):
    """Model bands and checkpoint bands cannot be matched."""


# ----------------------------------------------------------------------------------------------
# 1. finding the file: one rule for every backbone
# ----------------------------------------------------------------------------------------------
#: Set to ``1`` to let ``pretrained=True`` download weights missing from the local caches.
ALLOW_DOWNLOAD_ENV = "TERRATORCH_ALLOW_DOWNLOAD"
_TRUE = ("1", "true", "yes", "on")


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """Whether weights may be downloaded: ``allow_download`` if given, else ``TERRATORCH_ALLOW_DOWNLOAD``.

    Offline is the default; ``HF_HUB_OFFLINE=1`` forbids downloads whatever is asked.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in _TRUE


def resolve_weights_file(
    ckpt_path: str | Path | None = None,
    *,
    hf_repo_id: str | None = None,
    hf_filenames: Sequence[str] = (),
    url: str | None = None,
    model_name: str = "this model",
    cache_dir: str | Path | None = None,
    allow_download: bool | None = None,
) -> Path:
    """Find the weights file: a local file, else the local caches, else (only if allowed) a download.

    The same rule serves Prithvi (Hugging Face repos) and timm (Hugging Face repos or URLs):

    1. ``ckpt_path`` (``ckpt_path=`` / ``pretrained_cfg_overlay={"file": ...}``): it must exist;
    2. the local Hugging Face cache (each of ``hf_filenames`` in ``hf_repo_id``), then the torch hub
       cache (``<torch hub dir>/checkpoints/<file name of url>``);
    3. a download, only when :func:`downloads_allowed` (``allow_download=True`` or
       ``TERRATORCH_ALLOW_DOWNLOAD=1``, and not ``HF_HUB_OFFLINE=1``).

    Args:
        ckpt_path: A local file chosen by the user; it must exist.
        hf_repo_id: Hub repository that publishes the weights (e.g.
            ``ibm-nasa-geospatial/Prithvi-EO-2.0-300M``).
        hf_filenames: Candidate file names in that repository, tried in order.
        url: Direct download address (timm's ``pretrained_cfg.url``), cached by torch hub.
        model_name: Used in error messages.
        cache_dir: Hugging Face cache directory (default: the hub's own setting).
        allow_download: Overrides ``TERRATORCH_ALLOW_DOWNLOAD`` (``None``: use the variable).

    Raises:
        PretrainedWeightsNotFoundError: The local file does not exist, the model has no published weights, or
            nothing was found; the message names every place that was looked at and how to go on.
    """
    if ckpt_path is not None:
        path = Path(os.fspath(ckpt_path)).expanduser()
        if not path.is_file():
            where = "is a directory" if path.is_dir() else "does not exist"
            raise PretrainedWeightsNotFoundError(
                f"Weights file for {model_name} {where}: {str(path)!r} (absolute: {path.absolute()})."
            )
        return path
    filenames = [f for f in hf_filenames if f] if hf_repo_id else []
    if not filenames and not url:
        raise PretrainedWeightsNotFoundError(
            f"{model_name} has no published weights to fetch; pass a local file with "
            "ckpt_path=... (or pretrained_cfg_overlay={'file': ...} for timm models), or pretrained=False."
        )
    looked: list[str] = []
    found = _find_cached(hf_repo_id, filenames, url, cache_dir, looked)
    if found is not None:
        return found
    failures: list[str] = []
    if downloads_allowed(allow_download):
        found = _try_download(hf_repo_id, filenames, url, cache_dir, failures)
        if found is not None:
            return found
    raise PretrainedWeightsNotFoundError(
        _not_found_message(model_name, hf_repo_id, filenames, looked, failures)
    )


def _find_cached(
    repo_id: str | None,
    filenames: list[str],
    url: str | None,
    cache_dir: str | Path | None,
    looked: list[str],
) -> Path | None:
    """The weights file in the local Hugging Face or torch hub cache; appends each place to ``looked``."""
    if repo_id and filenames:
        from huggingface_hub import constants, try_to_load_from_cache

        root = Path(cache_dir or constants.HF_HUB_CACHE)
        for filename in filenames:
            hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
            looked.append(f"{root / ('models--' + repo_id.replace('/', '--'))}/snapshots/*/{filename}")
    if url:
        local = _torch_hub_file(url)
        if local.is_file():
            return local
        looked.append(str(local))
    return None


def _torch_hub_file(url: str) -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?", 1)[0])


def _try_download(
    repo_id: str | None,
    filenames: list[str],
    url: str | None,
    cache_dir: str | Path | None,
    failures: list[str],
) -> Path | None:
    for filename in filenames:
        if not repo_id:
            break
        try:
            return _download(repo_id, filename, cache_dir)
        except Exception as error:  # the hub raises many types (HTTP, missing entry, connection)
            failures.append(f"{repo_id}/{filename}: {type(error).__name__}")
    if url:
        try:
            return _download_url(url)
        except Exception as error:  # urllib/HTTP errors of many kinds
            failures.append(f"{url}: {type(error).__name__}")
    return None


def _download(repo_id: str, filename: str, cache_dir: str | Path | None) -> Path:
    """Download one file of a Hugging Face repo into its cache (the only network call for HF weights)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir))


def _download_url(url: str) -> Path:
    """Download ``url`` into the torch hub cache (the only network call for URL weights)."""
    import torch.hub

    target = _torch_hub_file(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(target))
    return target


def _not_found_message(
    model_name: str, repo_id: str | None, filenames: list[str], looked: list[str], failures: list[str]
) -> str:
    from huggingface_hub import constants

    wanted = f"{filenames} from the Hugging Face repo {repo_id!r}" if repo_id and filenames else "its weights"
    if failures:
        why = f"the download failed ({', '.join(failures)})"
    elif constants.is_offline_mode():
        why = "HF_HUB_OFFLINE is set, so nothing was downloaded"
    else:
        why = f"downloads are off; set {ALLOW_DOWNLOAD_ENV}=1 to allow them"
    return (
        f"Pretrained weights for {model_name} not found: needed {wanted}. Looked in: {'; '.join(looked)} "
        f"({why}). Download the file yourself and pass ckpt_path='/path/to/file' (backbone_ckpt_path in a "
        "factory config; for timm models pretrained_cfg_overlay={'file': path}), or pass pretrained=False."
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
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointFormatError(
            f"Cannot read {str(path)!r}: suffix {suffix or '(none)'!r} is not one of "
            f"{list(CHECKPOINT_SUFFIXES)}."
        )
    if suffix == ".safetensors":
        obj = _load_safetensors(path)
    else:
        obj = load_torch_checkpoint(path, weights_only=weights_only)
    return _unwrap_state_dict(obj, path)


def _existing_file(path: str | Path) -> Path:
    path = Path(os.fspath(path)).expanduser()
    if path.is_dir():
        raise WeightsNotFoundError(f"Checkpoint path is a directory, not a file: {str(path)!r}.")
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Checkpoint file does not exist: {str(path)!r} (absolute: {path.absolute()})."
        )
    return path


def _load_safetensors(path: Path) -> Any:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError and OSError types
        raise CheckpointFormatError(f"{str(path)!r} is not a readable safetensors file: {error}") from error


#: First bytes of the two layouts ``torch.save`` writes: a zip archive, or a pickle (protocol 2-5).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_HEADS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


def check_checkpoint_format(path: str | Path) -> Path:
    """Raise unless ``path`` looks like a file ``torch.save`` wrote; cheap: nothing is unpickled.

    A checkpoint is a zip archive holding a ``data.pkl`` (torch >= 1.6) or a legacy pickle stream. Text
    files, random bytes, empty files and other zip archives are rejected with a message naming the file
    (torch's own error would suggest ``weights_only=False``, which runs code from the file).

    Returns:
        The path, as an existing :class:`~pathlib.Path`.

    Raises:
        WeightsNotFoundError: No such file.
        CheckpointFormatError: ``"<path> is not a PyTorch checkpoint (...)"``.
    """
    import zipfile

    path = _existing_file(path)
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("data.pkl") for name in archive.namelist()):
                    return path
            kind = "a zip archive without the data.pkl torch.save writes"
        except (zipfile.BadZipFile, OSError):
            kind = "a corrupt or truncated zip archive"
    elif head[:2] in _PICKLE_HEADS:
        return path
    else:
        kind = "an empty file" if not head else f"a file starting with {head[:8]!r}"
    raise CheckpointFormatError(
        f"{str(path)!r} is not a PyTorch checkpoint ({kind}; torch.save writes a zip archive or a "
        "pickle). Check the path: it may point at another file."
    )


def load_torch_checkpoint(path: str | Path, *, weights_only: bool = True, map_location: Any = "cpu") -> Any:
    """``torch.load`` of a checkpoint file, safely by default, with errors that say what the file is.

    The one safe loader for every module that opens ``.pt/.pth/.ckpt`` files (backbone weights, the
    CLI's ``--ckpt_path``). Zip-format files are memory-mapped, so large checkpoints load without a
    full copy. Returns the unpickled object as is (a Lightning checkpoint stays a dict with
    ``state_dict``, ``hyper_parameters``, ...).

    Args:
        path: The file.
        weights_only: Refuse pickled Python objects other than tensors and plain containers
            (``torch.load(weights_only=True)``); ``False`` only for files you trust.
        map_location: Passed to ``torch.load``.

    Raises:
        WeightsNotFoundError: No such file (a ``FileNotFoundError``).
        CheckpointFormatError: ``"<path> is not a PyTorch checkpoint (...)"`` for files of another kind
            (text, random bytes, truncated archives), or a checkpoint holding Python objects while
            ``weights_only=True`` (a ``ValueError``).
    """
    path = check_checkpoint_format(path)
    with path.open("rb") as handle:
        is_zip = handle.read(4) == _ZIP_MAGIC
    try:
        mmap = is_zip
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, KeyError, ...
        text = str(error)
        if weights_only and "Unsupported global" in text:
            raise CheckpointFormatError(
                f"{str(path)!r} stores Python objects besides tensors ({_unpickler_reason(text)}), which "
                "the safe loader refuses. If you trust the file, pass weights_only=False."
            ) from None
        layout = "zip archive" if is_zip else "pickle"
        raise CheckpointFormatError(
            f"{str(path)!r} is not a PyTorch checkpoint (a corrupt or truncated {layout}: "
            f"{_unpickler_reason(text) or type(error).__name__})."
        ) from None


def _unpickler_reason(text: str) -> str:
    """The first sentence of the reason inside torch's load error, without its ``weights_only`` advice."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, re.S)
    reason = match.group(1) if match else next((line for line in text.splitlines() if line.strip()), "")
    reason = reason.strip().split(". ")[0].rstrip(".")
    return "" if "weights_only" in reason else reason[:200]


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
    return resolve_timm_weights_file(name, cfg)


def timm_weight_candidates(cfg: Mapping[str, Any]) -> tuple[str | None, list[str], str | None]:
    """``(hf repo, file names, url)`` where a timm ``pretrained_cfg`` says its weights are published."""
    repo = cfg.get("hf_hub_id") or None
    named = cfg.get("hf_hub_filename")
    filenames = [named] if named else ["model.safetensors", "pytorch_model.bin"]
    return repo, filenames if repo else [], cfg.get("url") or None


def resolve_timm_weights_file(
    name: str, cfg: Mapping[str, Any], *, allow_download: bool | None = None
) -> Path:
    """:func:`resolve_weights_file` for timm model ``name`` with pretrained cfg ``cfg`` (a dict)."""
    repo, filenames, url = timm_weight_candidates(cfg)
    return resolve_weights_file(
        hf_repo_id=repo, hf_filenames=filenames, url=url, model_name=name, allow_download=allow_download
    )
