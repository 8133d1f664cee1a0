"""GeoTIFF datasets with one target per image: classification, multi-label and scalar regression.

Samples are dicts: ``image`` float32 ``(C, H, W)`` (or ``(C, T, H, W)``), ``label`` (int64 scalar
class id, float32 ``(num_classes,)`` multi-hot vector, or float32 scalar), ``filename``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from terratorch.choices import did_you_mean
from terratorch.datasets.generic_base import GenericGeoTIFFDataset
from terratorch.datasets.utils import BandSpec, file_key, filter_split, find_files, read_split_file


class GenericScalarLabelDataset(GenericGeoTIFFDataset):
    """Images with one label each; subclasses fill ``self.files`` and ``self.targets``."""

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
        super().__init__(
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.files: list[Path] = []
        self.targets: list[Any] = []

    def __len__(self) -> int:
        return len(self.files)

    def target_tensor(self, index: int) -> torch.Tensor:
        """The label of sample ``index`` as a tensor (subclasses choose the dtype)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        image, _ = self.load_image(path)
        image_t, _ = self.apply_transform(image)
        return {"image": image_t, "label": self.target_tensor(index), "filename": str(path)}


class GenericNonGeoClassificationDataset(GenericScalarLabelDataset):
    """Scene classification from ``data_root/<class_name>/<files>``; class names sorted give indices.

    Args:
        data_root: directory with one sub-directory per class.
        img_grep: glob selecting images inside each class directory.
        split: optional file listing the sample stems to use.
        class_names: the classes in index order. Pass the training classes to validation/test
            datasets so a class missing from one split cannot shift the indices (a silent bug of
            folder-based loaders). Default: the sorted sub-directory names of ``data_root``.
        num_classes: when given, must equal the number of classes.
        ignore_split_file_extensions, allow_substring_split_file: how split entries select files
            (see :func:`terratorch.datasets.utils.filter_split`).
        require_label: accepted for the reference's signature; every sample has its folder's label.
        rgb_indices: positions of red, green, blue among the output bands (plots).
        no_data_replace: value for nodata/NaN pixels (0 by default, as in the reference).
        Other arguments: see :class:`GenericGeoTIFFDataset`.
    """

    def __init__(
        self,
        data_root: str | Path,
        num_classes: int | None = None,
        split: str | Path | None = None,
        require_label: bool = True,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        rgb_indices: list[int] | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        class_names: list[str] | None = None,
        constant_scale: float = 1,
        transform: Any = None,
        no_data_replace: float | None = 0,
        expand_temporal_dimension: bool = False,
        *,
        img_grep: str = "*",
    ) -> None:
        super().__init__(
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.require_label = require_label
        self.rgb_indices = [0, 1, 2] if rgb_indices is None else list(rgb_indices)
        root = Path(data_root)
        found = class_directories(root)
        self.classes = list(class_names) if class_names is not None else found
        unknown = [name for name in found if name not in self.classes]
        if unknown:
            raise ValueError(
                f"{root} has class folder(s) {unknown} that are not among the classes {self.classes} "
                "(class_names); list every class folder in class_names, or remove the extra folders"
            )
        if num_classes is not None and num_classes != len(self.classes):
            raise ValueError(
                f"num_classes={num_classes} but {root} defines {len(self.classes)} classes: {self.classes}"
            )
        split_stems = read_split_file(split) if split is not None else None
        for name in found:
            files = sorted(p for p in (root / name).glob(img_grep) if p.is_file())
            selected = filter_split(
                files,
                img_grep,
                split_stems,
                ignore_extensions=ignore_split_file_extensions,
                allow_substring=allow_substring_split_file,
            )
            for path in selected:
                self.files.append(path)
                self.targets.append(self.classes.index(name))
        if not self.files:
            where = f" listed in {split}" if split is not None else ""
            raise FileNotFoundError(
                f"data_root: no files matched img_grep={img_grep!r} in the class folders of "
                f"{str(root)!r}{where}"
            )

    def target_tensor(self, index: int) -> torch.Tensor:
        """int64 scalar class id."""
        return torch.tensor(self.targets[index], dtype=torch.long)


def class_directories(root: Path) -> list[str]:
    """Sorted names of the sub-directories of ``root`` (one per class).

    Raises:
        FileNotFoundError: ``root`` is missing or has no sub-directories.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"data_root: directory {str(root)!r} does not exist")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise FileNotFoundError(
            f"data_root: {str(root)!r} has no class folders; classification expects "
            "data_root/<class_name>/<files>"
        )
    return names


class _CSVLabelDataset(GenericScalarLabelDataset):
    """Images in ``data_root`` with targets in a CSV file: first column the file name or stem."""

    def __init__(
        self,
        data_root: str | Path,
        label_file: str | Path,
        *,
        img_grep: str = "*",
        split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.label_file = Path(label_file)
        self.columns, rows = read_label_csv(self.label_file)
        split_stems = read_split_file(split) if split is not None else None
        images = filter_split(
            find_files(data_root, img_grep),
            img_grep,
            split_stems,
            ignore_extensions=ignore_split_file_extensions,
            allow_substring=allow_substring_split_file,
        )
        if not images:
            raise FileNotFoundError(
                f"split: none of the files matching {img_grep!r} in {str(data_root)!r} is in {split}"
            )
        missing = []
        for path in images:
            row = _lookup_row(rows, path, img_grep)
            if row is None:
                missing.append(path.name)
                continue
            self.files.append(path)
            self.targets.append(self.parse_row(row))
        if missing:
            raise ValueError(
                f"label_file {self.label_file} has no row for {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}; "
                "its first column must hold each image's file name or stem"
            )

    def parse_row(self, row: list[str]) -> Any:
        """Convert the value columns of one CSV row."""
        raise NotImplementedError


def read_label_csv(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Read a label CSV with a header row; returns (value column names, {key: values}).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it has no header or no value columns.
    """
    if not path.is_file():
        raise FileNotFoundError(f"label_file {str(path)!r} does not exist")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise ValueError(f"label_file {path} needs a header 'filename,<target columns...>'")
        rows = {row[0].strip(): row[1:] for row in reader if row and row[0].strip()}
    return [h.strip() for h in header[1:]], rows


def _lookup_row(rows: dict[str, list[str]], path: Path, grep: str) -> list[str] | None:
    for candidate in (path.name, path.stem, path.name.split(".", 1)[0], file_key(path, grep)):
        if candidate in rows:
            return rows[candidate]
    return None


class GenericNonGeoMultiLabelClassificationDataset(_CSVLabelDataset):
    """Multi-label classification: ``label`` is a float32 multi-hot ``(num_classes,)`` vector.

    The CSV header is ``filename,<class_0>,<class_1>,...``; each row holds 0/1 per class.
    ``classes`` are the header's class names.
    """

    def __init__(
        self, data_root: str | Path, label_file: str | Path, *, num_classes: int | None = None, **kwargs
    ):
        super().__init__(data_root, label_file, **kwargs)
        self.classes = self.columns
        if num_classes is not None and num_classes != len(self.classes):
            raise ValueError(
                f"num_classes={num_classes} but label_file {self.label_file} has {len(self.classes)} "
                f"class columns: {self.classes}"
            )

    def parse_row(self, row: list[str]) -> list[float]:
        """0/1 per class."""
        try:
            values = [float(v) for v in row]
        except ValueError as error:
            raise ValueError(
                f"label_file {self.label_file}: row {row} must hold numbers (0/1 per class)"
            ) from error
        if len(values) != len(self.columns):
            raise ValueError(
                f"label_file {self.label_file}: row {row} has {len(values)} values for {self.columns}"
            )
        return values

    def target_tensor(self, index: int) -> torch.Tensor:
        """float32 ``(num_classes,)`` multi-hot vector."""
        return torch.tensor(self.targets[index], dtype=torch.float32)


class GenericNonGeoScalarRegressionDataset(_CSVLabelDataset):
    """Scalar regression (one value per image): ``label`` is a float32 scalar.

    The CSV header is ``filename,<target>``; with several value columns choose one with
    ``target_column`` (default: the first).
    """

    def __init__(
        self,
        data_root: str | Path,
        label_file: str | Path,
        *,
        target_column: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.target_column = target_column
        super().__init__(data_root, label_file, **kwargs)

    def parse_row(self, row: list[str]) -> float:
        """The value of the target column."""
        column = 0
        if self.target_column is not None:
            if self.target_column not in self.columns:
                raise ValueError(
                    f"target_column {self.target_column!r} is not in label_file {self.label_file} "
                    f"columns {self.columns}.{did_you_mean(self.target_column, self.columns)}"
                )
            column = self.columns.index(self.target_column)
        try:
            return float(row[column])
        except (ValueError, IndexError) as error:
            raise ValueError(
                f"label_file {self.label_file}: row {row} has no number in column {column + 1}"
            ) from error

    def target_tensor(self, index: int) -> torch.Tensor:
        """float32 scalar."""
        return torch.tensor(self.targets[index], dtype=torch.float32)
