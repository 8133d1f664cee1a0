"""The named datamodules of the Prithvi-EO-2.0 release: official-style ``data:`` sections instantiate
through jsonargparse (the CLI's route) and yield normalised batches of the right shapes per split."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from tests.prithvi_release_data import WRITERS

RELEASE_MODULES = [
    f"terratorch.datamodules.{name}"
    for name in (
        "sen1floods11",
        "multi_temporal_crop_classification",
        "biomassters",
        "burn_intensity",
        "landslide4sense",
        "fire_scars",
        "sen4map",
    )
]
HLS6 = "[BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]"
TEMPORAL_AUG = """
    train_transform:
      - class_path: FlattenTemporalIntoChannels
      - class_path: albumentations.HorizontalFlip
        init_args: {p: 1.0}
      - class_path: ToTensorV2
      - class_path: UnflattenTemporalFromChannels
        init_args: {n_timesteps: 3}"""

#: writer -> (data: section, batch keys -> (train shape without B, dtype), test stage)
CONFIGS = {
    "sen1floods11": (
        f"""
data:
  class_path: Sen1Floods11NonGeoDataModule
  init_args:
    data_root: {{root}}
    batch_size: 2
    num_workers: 0
    bands: {HLS6}
    constant_scale: 0.0001
    no_data_replace: 0
    no_label_replace: -1
    use_metadata: true
    train_transform:
      - class_path: albumentations.D4
      - class_path: ToTensorV2
""",
        {
            "image": ((6, 16, 16), torch.float32),
            "mask": ((16, 16), torch.int64),
            "temporal_coords": ((1, 2), None),
        },
    ),
    "multi_temporal_crop": (
        f"""
data:
  class_path: terratorch.datamodules.MultiTemporalCropClassificationDataModule
  init_args:
    data_root: {{root}}
    batch_size: 2
    expand_temporal_dimension: true
    reduce_zero_label: true
    use_metadata: true{TEMPORAL_AUG}
""",
        {
            "image": ((6, 3, 16, 16), torch.float32),
            "mask": ((16, 16), torch.int64),
            "temporal_coords": ((3, 2), None),
        },
    ),
    "fire_scars": (
        """
data:
  class_path: FireScarsNonGeoDataModule
  init_args:
    data_root: {root}
    batch_size: 2
    no_data_replace: 0
    no_label_replace: -1
    train_transform:
      - class_path: albumentations.RandomCrop
        init_args: {height: 8, width: 8}
      - class_path: ToTensorV2
""",
        {"image": ((6, 8, 8), torch.float32), "mask": ((8, 8), torch.int64)},
    ),
    "burn_intensity": (
        f"""
data:
  class_path: BurnIntensityNonGeoDataModule
  init_args:
    data_root: {{root}}
    batch_size: 2
    bands: [BLUE, GREEN, RED, NIR, SWIR_1, SWIR_2]
    use_full_data: true{TEMPORAL_AUG}
""",
        {"image": ((6, 3, 16, 16), torch.float32), "mask": ((16, 16), torch.int64)},
    ),
    "landslide4sense": (
        """
data:
  class_path: Landslide4SenseNonGeoDataModule
  init_args:
    data_root: {root}
    batch_size: 2
    bands: ["COASTAL AEROSOL", BLUE, GREEN, RED, SLOPE, DEM]
""",
        {"image": ((6, 16, 16), torch.float32), "mask": ((16, 16), torch.int64)},
    ),
    "biomassters": (
        """
data:
  class_path: BioMasstersNonGeoDataModule
  init_args:
    data_root: {root}
    batch_size: 2
    sensors: [S2]
    bands:
      S2: [BLUE, GREEN, RED, NIR_BROAD, SWIR_1, SWIR_2]
    as_time_series: true
""",
        {"image": ((6, 2, 16, 16), torch.float32), "mask": ((16, 16), torch.float32)},
    ),
    "sen4map": (
        """
data:
  class_path: Sen4MapLucasDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    train_hdf5_path: {root}/train.h5
    train_hdf5_keys_path: {root}/train_keys.pkl
    val_hdf5_path: {root}/val.h5
    val_hdf5_keys_path: {root}/val_keys.pkl
    test_hdf5_path: {root}/test.h5
    test_hdf5_keys_path: {root}/test_keys.pkl
    shuffle: true
    resize: true
    resize_to: [8, 8]
    resize_interpolation: bilinear
""",
        {"image": ((10, 12, 8, 8), torch.float32), "label": ((), torch.int64)},
    ),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("prithvi_release_dm")
    return {name: writer(base / name) for name, writer in WRITERS.items()}


def _instantiate(text: str):
    from jsonargparse import ArgumentParser
    from lightning import LightningDataModule

    from terratorch.cli.config_compat import load_config_text
    from terratorch.cli.custom_modules import CLASS_MODULES

    for module in RELEASE_MODULES:  # the CLI imports CLASS_MODULES so that short class names resolve
        assert module in CLASS_MODULES
        importlib.import_module(module)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    config = parser.parse_object({"data": load_config_text(text)["data"]})
    return parser.instantiate_classes(config).data


@pytest.mark.parametrize("name", list(CONFIGS))
def test_official_style_config_gives_batches(name, roots):
    text, expected = CONFIGS[name]
    datamodule = _instantiate(text.replace("{root}", str(roots[name])))
    datamodule.setup("fit")
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == (2, *shape), f"{name}: {key} {tuple(batch[key].shape)}"
        assert dtype is None or batch[key].dtype == dtype, f"{name}: {key} {batch[key].dtype}"
    assert torch.isfinite(batch["image"]).all()
    val = next(iter(datamodule.val_dataloader()))
    assert val["image"].shape[1] == batch["image"].shape[1]  # same bands in every split
    datamodule.setup("test")
    test = next(iter(datamodule.test_dataloader()))
    assert test["image"].ndim == batch["image"].ndim


def test_normalisation_uses_the_reference_statistics(roots):
    from terratorch.datamodules.burn_intensity import MEANS as BURN_MEANS
    from terratorch.datamodules.burn_intensity import STDS as BURN_STDS
    from terratorch.datamodules.burn_intensity import BurnIntensityNonGeoDataModule
    from terratorch.datamodules.sen1floods11 import MEANS, STDS, Sen1Floods11NonGeoDataModule

    datamodule = Sen1Floods11NonGeoDataModule(roots["sen1floods11"], batch_size=2, bands=["RED", "SWIR_2"])
    datamodule.setup("fit")
    raw = next(iter(datamodule.val_dataloader()))
    normalised = datamodule.on_after_batch_transfer(raw, 0)["image"]
    torch.testing.assert_close(normalised[:, 1], (raw["image"][:, 1] - MEANS["SWIR_2"]) / STDS["SWIR_2"])
    burn = BurnIntensityNonGeoDataModule(roots["burn_intensity"], batch_size=1, bands=["NIR"])
    burn.setup("validate")
    raw = next(iter(burn.val_dataloader()))
    out = burn.normalize(raw["image"])  # per band and time step
    torch.testing.assert_close(
        out[0, 0, 2], (raw["image"][0, 0, 2] - BURN_MEANS["NIR"][2]) / BURN_STDS["NIR"][2]
    )


def test_bad_configuration_names_what_was_expected(roots, tmp_path):
    from terratorch.datamodules.fire_scars import FireScarsNonGeoDataModule
    from terratorch.datamodules.sen4map import Sen4MapLucasDataModule

    with pytest.raises(ValueError, match=r"no mean for band\(s\) \['NIR'\].*NIR_NARROW"):
        FireScarsNonGeoDataModule(roots["fire_scars"], bands=["RED", "NIR"])
    with pytest.raises(FileNotFoundError, match=r"train chips directory at .*training"):
        FireScarsNonGeoDataModule(tmp_path).setup("fit")
    with pytest.raises(ValueError, match=r"train_data_fraction=0\.5 needs train_hdf5_keys_path"):
        Sen4MapLucasDataModule(2, 0, train_hdf5_path="x.h5", train_data_fraction=0.5)
    with pytest.raises(FileNotFoundError, match=r"test_hdf5_path: HDF5 file .*missing.h5"):
        Sen4MapLucasDataModule(2, 0, test_hdf5_path=str(tmp_path / "missing.h5")).setup("test")


def test_script_style_use_of_transforms_and_aug(roots):
    """Scripts (e.g. vLLM's Prithvi example) call ``test_transform`` and ``aug`` on single windows."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from terratorch.datamodules.sen1floods11 import MEANS, STDS, Sen1Floods11NonGeoDataModule

    datamodule = Sen1Floods11NonGeoDataModule(
        roots["sen1floods11"],
        bands=["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
        test_transform=[A.Resize(height=8, width=8), ToTensorV2()],
    )
    window = torch.rand(16, 16, 6).numpy()
    image = datamodule.test_transform(image=window)["image"]
    assert image.shape == (6, 8, 8)
    normalised = datamodule.aug({"image": image})["image"]
    assert normalised.shape == (1, 6, 8, 8)
    torch.testing.assert_close(normalised[0, 0], (image[0] - MEANS["BLUE"]) / STDS["BLUE"])
