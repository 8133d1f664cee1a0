"""Base class of the GeoTIFF datasets: lazy file lists, band selection, scaling, nodata, transforms.

Creating a dataset only lists file names; each ``__getitem__`` opens one file, reads the selected
bands, and closes it. Datasets return un-normalised float32 images (after ``constant_scale``);
datamodules normalise once, on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.transforms import compose_transforms, to_tensor_sample
from terratorch.datasets.utils import BandSpec, expand_bands, read_raster, select_band_indices


class GenericGeoTIFFDataset(Dataset):
    """Shared logic of the generic GeoTIFF datasets; subclasses add their targets.

    Args:
        dataset_bands: band names/ints (or ``[a, b]`` inclusive ranges) stored in each file, in
            order. With ``expand_temporal_dimension`` these are the bands of ONE time step and the
            file holds ``T * len(dataset_bands)`` bands, time-major.
        output_bands: bands to return, a subset of ``dataset_bands`` in the order the model wants.
            Defaults to ``dataset_bands`` (or every band of the file when both are None).
        constant_scale: factor applied to pixel values after reading (e.g. 0.0001 for reflectance
            stored as int16 x 10000).
        transform: albumentations transforms (list or ``Compose``), applied jointly to image and mask.
        no_data_replace: value (in scaled units) written over pixels equal to the file's nodata value
            or NaN. When None, nodata values are left as they are, and NaN pixels raise an error.
        expand_temporal_dimension: return ``(C, T, H, W)`` instead of ``(C, H, W)``.

    Attributes:
        filter_indices: 0-based positions of ``output_bands`` within ``dataset_bands`` when
            ``output_bands`` is given, else ``None`` (the reference's attribute).
    """

    def __init__(
        self,
        *,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        constant_scale: float = 1.0,
        transform: Any = None,
        no_data_replace: float | None = None,
        expand_temporal_dimension: bool = False,
    ) -> None:
        super().__init__()
        self.dataset_bands = expand_bands(dataset_bands, key="dataset_bands")
        output = expand_bands(output_bands, key="output_bands")
        if output is not None and self.dataset_bands is None:
            raise ValueError(
                f"output_bands={output} needs dataset_bands (the bands stored in the files, in order) "
                "to know where to find them"
            )
        if expand_temporal_dimension and self.dataset_bands is None:
            raise ValueError("expand_temporal_dimension needs dataset_bands (the bands of one time step)")
        self.output_bands = output if output is not None else self.dataset_bands
        self.band_positions = (
            select_band_indices(self.dataset_bands, self.output_bands)
            if self.dataset_bands is not None
            else None
        )
        self.filter_indices = list(self.band_positions) if output is not None else None
        self.constant_scale = float(constant_scale)
        self.no_data_replace = no_data_replace
        self.expand_temporal_dimension = expand_temporal_dimension
        self.transform = compose_transforms(transform)

    # ------------------------------------------------------------------ reading

    def band_indexes(self, path: Path, count: int) -> list[int] | None:
        """1-based band indexes to read from ``path``, which has ``count`` bands.

        Raises:
            ValueError: when the file has fewer bands than ``dataset_bands`` (or, multi-temporal,
                a band count that is not a multiple of it); names the file and both lists.
        """
        if self.dataset_bands is None:
            return None
        per_step = len(self.dataset_bands)
        if count < per_step or (self.expand_temporal_dimension and count % per_step):
            need = "a multiple of " if self.expand_temporal_dimension else ""
            raise ValueError(
                f"{path} has {count} bands but dataset_bands lists {need}{per_step}: {self.dataset_bands} "
                f"(output_bands={self.output_bands})"
            )
        steps = count // per_step if self.expand_temporal_dimension else 1
        return [step * per_step + pos + 1 for step in range(steps) for pos in self.band_positions]

    def load_image(self, path: Path, *, with_nodata: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Read one image file.

        Args:
            path: the image.
            with_nodata: also return the nodata mask even when nothing is replaced (statistics).

        Returns:
            ``(image, nodata)``: image is ``(C', H, W)`` float32 after ``constant_scale`` and nodata
            replacement (``C' = T * C`` for multi-temporal files); nodata is a ``(C', H, W)`` bool
            mask of the pixels that were nodata/NaN in the file, or None (none, or not asked for).

        Raises:
            ValueError: NaN pixels while ``no_data_replace`` is None (names the file).
        """
        read = read_raster(path, lambda count: self.band_indexes(path, count))
        if self.constant_scale != 1.0:  # one pass: cast and scale together
            image = np.multiply(read.data, self.constant_scale, dtype=np.float32)
        else:
            image = read.data.astype(np.float32, copy=True)
        nodata = read.nodata if (with_nodata or self.no_data_replace is not None) else None
        if self.no_data_replace is not None:
            if nodata is not None:
                image[nodata] = self.no_data_replace
        elif np.issubdtype(read.data.dtype, np.floating) and np.isnan(image).any():
            raise ValueError(
                f"{path} contains NaN pixels; set no_data_replace (e.g. 0) to replace them, or fix the file"
            )
        return image, nodata

    # ------------------------------------------------------------------ sample assembly

    def apply_transform(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, Any]:
        """Apply the transforms to a ``(C, H, W)`` image (and ``(H, W)`` mask), return tensors.

        The image tensor is ``(C, H, W)``, or ``(C, T, H, W)`` with ``expand_temporal_dimension``.
        """
        if self.transform is None:
            image_t = torch.from_numpy(image)
            mask_t = torch.from_numpy(mask) if mask is not None else None
        else:
            inputs = {"image": image.transpose(1, 2, 0)}
            if mask is not None:
                inputs["mask"] = mask
            out = self.transform(**inputs)
            image_t, mask_t = to_tensor_sample(out["image"], out.get("mask"))
        if self.expand_temporal_dimension:
            channels = len(self.output_bands)
            steps = image_t.shape[0] // channels
            image_t = image_t.reshape(steps, channels, *image_t.shape[1:]).transpose(0, 1).contiguous()
        return image_t.float(), mask_t
