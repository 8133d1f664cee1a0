"""Cut the large images of a detection dataset into overlapping tiles, boxes shifted and clipped.

A box goes to a tile when more than 20 % of its area lies inside it (the reference's rule); it is
then clipped to the tile. Tiles start every ``tile - overlap`` pixels and only whole tiles are
made (a strip narrower than a tile at the right/bottom edge is not covered, as in the reference).

With ``cache_dir`` every tile is written once as ``tile_<index>_<x0>_<y0>.png`` (8-bit RGB) with a
``.json`` of its boxes, the reference's cache format, and later runs read the cache. Without it,
tiles are cut from the base dataset's image on each access (no quantisation, nothing written).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.object_detection import plot_detection_sample

logger = logging.getLogger("terratorch")

MIN_VISIBLE_FRACTION = 0.2


@dataclass
class _Tile:
    index: int
    x0: int
    y0: int
    boxes: torch.Tensor
    labels: torch.Tensor
    cached: Path | None = None


def tile_boxes(
    boxes: torch.Tensor, labels: torch.Tensor, x0: int, y0: int, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of a ``width x height`` tile at ``(x0, y0)``: shifted, kept when > 20 % inside, clipped."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    shifted = boxes - torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
    clipped = shifted.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    inside = (clipped[:, 2] - clipped[:, 0]).clamp(min=0) * (clipped[:, 3] - clipped[:, 1]).clamp(min=0)
    area = (shifted[:, 2] - shifted[:, 0]).clamp(min=0) * (shifted[:, 3] - shifted[:, 1]).clamp(min=0)
    keep = inside / (area + 1e-6) > MIN_VISIBLE_FRACTION
    return clipped[keep], torch.as_tensor(labels).reshape(-1)[keep]


class TiledDataset(Dataset):
    """Tiles of the images of ``base_dataset`` (samples with ``image``, ``boxes``, ``labels``).

    Args:
        base_dataset: a detection dataset whose images are ``(C, H, W)`` tensors.
        cache_dir: folder of the tile cache (see the module docstring), or None for no cache.
        tile_size: ``(height, width)`` of a tile.
        overlap: pixels shared by neighbouring tiles.
        min_size: ``(min_height, min_width)``; smaller images are skipped (how many is logged).
        rebuild: rewrite cached tiles even when they exist.
        skip_empty_boxes: leave out tiles without any box.

    Samples: ``image`` float32 ``(C, h, w)``, ``boxes``, ``labels``, ``image_id`` (base index).

    Raises:
        ValueError: ``overlap`` not smaller than the tile, or a base image that is not a tensor.
    """

    def __init__(
        self,
        base_dataset: Dataset,
        cache_dir: str | Path | None = "tile_cache",
        tile_size: tuple[int, int] = (512, 512),
        overlap: int = 0,
        min_size: tuple[int, int] = (1, 1),
        rebuild: bool = False,
        skip_empty_boxes: bool = True,
    ) -> None:
        super().__init__()
        self.base_dataset = base_dataset
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.tile_h, self.tile_w = (int(v) for v in tile_size)
        self.overlap = int(overlap)
        self.min_h, self.min_w = (int(v) for v in min_size)
        self.skip_empty_boxes = skip_empty_boxes
        if not 0 <= self.overlap < min(self.tile_h, self.tile_w):
            raise ValueError(
                f"overlap must be in [0, tile size), got overlap={overlap} for tile_size={tile_size}"
            )
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.tiles: list[_Tile] = []
        self._prepare_tiles(rebuild)

    def _prepare_tiles(self, rebuild: bool) -> None:
        step_h, step_w = self.tile_h - self.overlap, self.tile_w - self.overlap
        too_small = 0
        for index in range(len(self.base_dataset)):
            sample = self.base_dataset[index]
            image = sample["image"]
            if not isinstance(image, torch.Tensor):
                raise ValueError(
                    f"TiledDataset needs tensor images, sample {index} has {type(image).__name__}"
                )
            height, width = image.shape[-2:]
            if height < self.min_h or width < self.min_w:
                too_small += 1
                continue
            for y0 in range(0, height - self.tile_h + 1, step_h):
                for x0 in range(0, width - self.tile_w + 1, step_w):
                    boxes, labels = tile_boxes(
                        sample["boxes"], sample["labels"], x0, y0, self.tile_w, self.tile_h
                    )
                    tile = _Tile(index, x0, y0, boxes, labels)
                    if self.cache_dir is not None:
                        tile.cached = self.cache_dir / f"tile_{index}_{x0}_{y0}.png"
                        if (
                            not rebuild
                            and tile.cached.is_file()
                            and tile.cached.with_suffix(".json").is_file()
                        ):
                            self.tiles.append(tile)
                            continue
                    if not len(boxes) and self.skip_empty_boxes:
                        continue
                    if tile.cached is not None:
                        crop = image[:, y0 : y0 + self.tile_h, x0 : x0 + self.tile_w]
                        _write_tile(tile.cached, crop, boxes, labels, index)
                    self.tiles.append(tile)
        if too_small:
            logger.warning(
                "TiledDataset: skipped %d image(s) smaller than min_size=(%d, %d) (height, width)",
                too_small,
                self.min_h,
                self.min_w,
            )
        logger.info("TiledDataset: %d tiles from %d images", len(self.tiles), len(self.base_dataset))

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        tile = self.tiles[idx]
        if tile.cached is not None:
            from PIL import Image

            with Image.open(tile.cached) as img:
                image = torch.from_numpy(
                    np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
                )
            meta = json.loads(tile.cached.with_suffix(".json").read_text())
            boxes = torch.tensor(meta["boxes"], dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor(meta["labels"], dtype=torch.int64)
            return {
                "image": image.contiguous(),
                "boxes": boxes,
                "labels": labels,
                "image_id": meta["image_id"],
            }
        image = self.base_dataset[tile.index]["image"]
        crop = image[:, tile.y0 : tile.y0 + self.tile_h, tile.x0 : tile.x0 + self.tile_w]
        return {
            "image": crop.float().contiguous(),
            "boxes": tile.boxes.clone(),
            "labels": tile.labels.clone(),
            "image_id": tile.index,
        }

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Draw a tile with its boxes."""
        return plot_detection_sample(sample, [0, 1, 2], None, suptitle=suptitle)


def _write_tile(
    path: Path, crop: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, index: int
) -> None:
    """Write a tile PNG and its JSON atomically (temporary file, then rename).

    0-1 floats become 8 bits by ``x * 255`` truncated, as torchvision's ``to_pil_image`` (the
    reference's writer) does.
    """
    from PIL import Image

    pixels = (crop[:3].float().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    temporary = path.with_name(path.name + ".tmp")
    Image.fromarray(np.ascontiguousarray(pixels)).save(temporary, format="PNG")
    os.replace(temporary, path)
    meta = {"boxes": boxes.tolist(), "labels": labels.tolist(), "image_id": int(index)}
    json_path = path.with_suffix(".json")
    temporary = json_path.with_name(json_path.name + ".tmp")
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, json_path)
