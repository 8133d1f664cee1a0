"""Sen4Map (LUCAS points with a year of Sentinel-2 acquisitions, HDF5): monthly median composites."""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["Sen4MapDatasetMonthlyComposites", "load_keys", "save_keys"]

_NAME = "Sen4MapDatasetMonthlyComposites"
_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# Per-band 2018 percentiles used to rescale the composites to [0, 1].
_LOW = [67.0, 122.0, 93.27, 158.5, 160.77, 174.27, 162.27, 149.0, 84.5, 66.27]
_HIGH = [2089.0, 2598.45, 3214.5, 3620.45, 4033.61, 4613.0, 4825.45, 4945.72, 5140.84, 4414.45]


def _class_map(groups: dict[int, str]) -> dict[str, int]:
    return {code: label for label, codes in groups.items() for code in codes.split()}


_B_CROPS = " ".join(
    f"B{n}" for n in (*range(10, 24), *range(30, 38), *range(40, 46), *range(70, 78), *range(80, 85))
)
_LAND_COVER = _class_map(
    {
        0: "A10 A11 A12 A13 A20 A21 A30",  # artificial land
        1: "A22 F10 F20 F30 F40",  # bare land
        2: "E10 E20 E30 B50 B51 B52 B53 B54 B55",  # grassland and fodder
        3: f"{_B_CROPS} BX1 BX2",  # cropland
        4: "C10",  # broadleaved woodland
        5: "C20 C21 C22 C23 C30 C31 C32 C33 "
        + " ".join(f"CXX{c}" for c in "123456789ABCDE"),  # other woodland
        6: "D10 D20",  # shrubland
        7: "G10 G11 G12 G20 G21 G22 G30 G40 G50",  # water
        8: "H10 H11 H12 H20 H21 H22 H23",  # wetlands
    }
)
_LAND_COVER[""] = 9
_CROPS = _class_map(
    {
        0: "B11 B12 B13 B14 B15 B16 B17 B18 B19",  # cereals
        1: "B21 B22 B23",  # root crops
        2: "B31 B32 B33 B34 B35 B36 B37",  # non-permanent industrial crops
        3: "B41 B42 B43 B44 B45",  # dry pulses, vegetables and flowers
        4: "B51 B52 B53 B54",  # fodder crops
        5: "F10 F20 F30 F40",  # bare land
        6: "B71 B72 B73 B74 B75 B76 B77 B81 B82 B83 B84 C10 C21 C22 C23 C31 C32 C33 D10 D20",  # woody
        7: "B55 E10 E20 E30",  # grassland
    }
)


class _KeysUnpickler(pickle.Unpickler):
    """Unpickler for key files: plain lists/tuples of strings need no classes, so none are allowed."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"key files may only hold a list of strings, found {module}.{name}")


def load_keys(path: str | Path, fraction: float = 1.0) -> list[str]:
    """Read a list of HDF5 keys: a pickled list (the reference's format) or a text file, one key a line.

    Only the first ``fraction`` of the keys is returned. The pickle is read without resolving any
    class, so a key file cannot run code.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds something other than a list of strings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: HDF5 keys file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:1] == b"\x80":
        try:
            keys = _KeysUnpickler(io.BytesIO(raw)).load()
        except pickle.UnpicklingError as error:
            raise ValueError(f"{_NAME}: {path}: {error}") from error
    else:
        keys = [line.strip() for line in raw.decode().splitlines() if line.strip()]
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{_NAME}: {path} must hold a list of HDF5 keys (strings)")
    return list(keys)[: int(fraction * len(keys))]


def save_keys(keys: Sequence[str], path: str | Path) -> None:
    """Write ``keys`` as a pickled list (readable by the reference and by :func:`load_keys`)."""
    with open(path, "wb") as file:
        pickle.dump(list(keys), file)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Sen4MapDatasetMonthlyComposites(Dataset):
    """Monthly median composites of the Sen4Map LUCAS samples, for land-cover or crop classification.

    Each HDF5 entry (one LUCAS point) is a ``(T, H, W)`` compound dataset over the year's
    acquisitions with the fields ``B2 ... B12`` and ``SCL`` (a group of such datasets works too),
    with the attributes ``Image_ID`` (one id per acquisition, containing ``2018MM``) and ``lc1``
    (the LUCAS code). Pixels with ``SCL >= 9`` (clouds, snow) are
    zeroed; each month is the per-pixel median (the lower middle value for even counts) of its
    acquisitions, a month without any uses all of the year's. Values are rescaled per band to
    [0, 1] with fixed percentiles. Samples are ``image`` ``(C, 12, H, W)`` and ``label`` (a 0-d long).

    Args:
        h5py_file_object: an open ``h5py.File``, or a path (opened on first use, in each worker).
        h5data_keys: the groups to use (default: all, optionally saved to ``save_keys_path``).
        crop_size: centre crop of this size.
        dataset_bands: the band names/indices the 10 stored bands stand for, in order.
        input_bands: bands to return, among ``dataset_bands``.
        resize, resize_to, resize_interpolation, resize_antialiasing: resize each composite.
        reverse_tile, reverse_tile_size: expand each pixel into its ``size x size`` neighbourhood
            (odd size >= 3), see :func:`_expand_neighbourhoods`.
        save_keys_path: where to pickle the key list when ``h5data_keys`` is None.
        classification_map: ``land-cover`` (10 classes) or ``crops`` (8 classes).
    """

    land_cover_classification_map = _LAND_COVER
    crop_classification_map = _CROPS

    def __init__(
        self,
        h5py_file_object: Any,
        h5data_keys: Sequence[str] | None = None,
        crop_size: int | None = None,
        dataset_bands: list[Any] | None = None,
        input_bands: list[Any] | None = None,
        resize: bool = False,
        resize_to: Sequence[int] = (224, 224),
        resize_interpolation: Any = "bilinear",
        resize_antialiasing: bool = True,
        reverse_tile: bool = False,
        reverse_tile_size: int = 3,
        save_keys_path: str | None = None,
        classification_map: str = "land-cover",
    ) -> None:
        super().__init__()
        maps = {"land-cover": self.land_cover_classification_map, "crops": self.crop_classification_map}
        if classification_map not in maps:
            raise ValueError(
                f"{_NAME}: classification_map {classification_map!r} must be one of {list(maps)}"
            )
        if input_bands and not dataset_bands:
            raise ValueError(
                f"{_NAME}: input_bands={input_bands} needs dataset_bands (the stored bands, in order)"
            )
        if reverse_tile and (reverse_tile_size < 3 or reverse_tile_size % 2 == 0):
            raise ValueError(
                f"{_NAME}: reverse_tile_size must be an odd number >= 3, got {reverse_tile_size}"
            )
        self._file = h5py_file_object if not isinstance(h5py_file_object, str | Path) else None
        self._path = Path(h5py_file_object) if self._file is None else None
        if self._path is not None and not self._path.is_file():
            raise FileNotFoundError(f"{_NAME}: HDF5 file {str(self._path)!r} does not exist")
        if h5data_keys is None:
            h5data_keys = list(self.h5data.keys())
            if save_keys_path is not None:
                save_keys(h5data_keys, save_keys_path)
        self.h5data_keys = list(h5data_keys)
        self.classification_map = maps[classification_map]
        self.input_channels = self._input_channels(dataset_bands, input_bands)
        self.crop_size = crop_size
        self.resize = resize
        self.resize_to = list(resize_to) if resize_to is not None else None
        self.resize_interpolation = _interpolation(resize_interpolation) if resize else resize_interpolation
        self.resize_antialiasing = resize_antialiasing
        self.reverse_tile = reverse_tile
        self.reverse_tile_size = reverse_tile_size

    @staticmethod
    def _input_channels(dataset_bands: list[Any] | None, input_bands: list[Any] | None) -> list[int] | None:
        if not (input_bands and dataset_bands):
            return None
        names = [getattr(b, "value", b) for b in dataset_bands]
        wanted = [getattr(b, "value", b) for b in input_bands]
        missing = [b for b in wanted if b not in names]
        if missing:
            raise ValueError(f"{_NAME}: input_bands {missing} are not among dataset_bands {names}")
        return [names.index(b) for b in wanted]

    @property
    def h5data(self) -> Any:
        """The open HDF5 file (opened here, read-only, when the dataset was given a path)."""
        if self._file is None:
            import h5py

            self._file = h5py.File(self._path, "r")
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_file"] = None  # reopened in each worker
        return state

    def __len__(self) -> int:
        return len(self.h5data_keys)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        key = self.h5data_keys[index]
        group = self.h5data[key]
        image = self.composites(group, key)
        low = torch.tensor(_LOW, dtype=image.dtype)[:, None, None, None]
        high = torch.tensor(_HIGH, dtype=image.dtype)[:, None, None, None]
        image = ((image - low) / ((high - low) + torch.exp(torch.tensor(-12.0)))).clip(0, 1)
        if self.input_channels:
            image = image[self.input_channels]
        code = _text(group.attrs["lc1"])
        if code not in self.classification_map:
            raise KeyError(
                f"{_NAME}: {key!r} has LUCAS code lc1={code!r}, which the chosen classification map lacks"
            )
        return {"image": image, "label": torch.tensor(self.classification_map[code], dtype=torch.long)}

    def composites(self, group: Any, key: str = "?") -> torch.Tensor:
        """``(10, 12, H, W)`` monthly median composites of one HDF5 group (cropped/tiled/resized)."""
        clear = np.asarray(group["SCL"]) < 9
        stack = np.stack([np.where(clear, np.asarray(group[b]), 0) for b in _BANDS], axis=1).astype(
            np.float32
        )
        frames = torch.from_numpy(stack)  # (T, 10, H, W)
        ids = [_text(i) for i in np.atleast_1d(group.attrs["Image_ID"]).tolist()]
        months = [[i for i, name in enumerate(ids) if f"2018{m:02d}" in name] for m in range(1, 13)]
        year = [i for month in months for i in month]
        if not year:
            raise ValueError(f"{_NAME}: {key!r} has no acquisition of 2018 in Image_ID {ids[:3]}...")
        image = torch.stack([frames[month or year].median(dim=0).values for month in months], dim=1)
        if self.crop_size:
            height, width = image.shape[-2:]
            top, left = height // 2 - self.crop_size // 2, width // 2 - self.crop_size // 2
            image = image[..., top : top + self.crop_size, left : left + self.crop_size]
        if self.reverse_tile:
            image = _expand_neighbourhoods(image, self.reverse_tile_size)
        if self.resize:
            from torchvision.transforms.v2.functional import resize

            image = resize(
                image,
                size=self.resize_to,
                interpolation=_interpolation(self.resize_interpolation),
                antialias=self.resize_antialiasing,
            )
        return image


def _expand_neighbourhoods(image: torch.Tensor, size: int) -> torch.Tensor:
    """Replace each pixel by its ``size x size`` neighbourhood (edges replicated); H and W grow ``size``-fold.

    This is the reference's "reverse tiling", which tests whether resizing helps through the
    interpolated pixels or through the larger grid alone.
    """
    pad = (size - 1) // 2
    channels, steps, height, width = image.shape
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    patches = F.unfold(padded, kernel_size=size).view(channels, steps, size, size, height, width)
    return patches.permute(0, 1, 4, 2, 5, 3).reshape(channels, steps, height * size, width * size)


def _interpolation(mode: Any) -> Any:
    """An ``InterpolationMode`` from its name (``bilinear``, ``bicubic``, ``nearest``, ``nearest_exact``)."""
    from torchvision.transforms.v2 import InterpolationMode

    if isinstance(mode, InterpolationMode):
        return mode
    names = {"bilinear", "bicubic", "nearest", "nearest_exact"}
    if str(mode).lower() not in names:
        raise ValueError(f"{_NAME}: resize_interpolation {mode!r} must be one of {sorted(names)}")
    return InterpolationMode(str(mode).lower().replace("_", "-"))
