"""Reference spellings the CLI accepts: short transform names, albumentations 1.x arguments, callbacks."""

from __future__ import annotations

import pytest

from terratorch.cli.config_compat import AlbumentationsArgumentWarning, load_config_text, upgrade_config


def _transforms(config):
    return config["data"]["init_args"]["train_transform"]


def test_short_transform_names_become_import_paths():
    config = upgrade_config(
        {
            "model": {"class_path": "SemanticSegmentationTask"},
            "data": {
                "init_args": {
                    "train_transform": [
                        {"class_path": "HorizontalFlip", "init_args": {"p": 0.5}},
                        {"class_path": "FlattenTemporalIntoChannels"},
                        {"class_path": "ToTensorV2"},
                    ]
                }
            },
        }
    )
    assert [t["class_path"] for t in _transforms(config)] == [
        "albumentations.HorizontalFlip",
        "terratorch.datasets.transforms.FlattenTemporalIntoChannels",
        "albumentations.ToTensorV2",  # albumentations 2 exports it at the top level too
    ]
    assert config["model"]["class_path"] == "SemanticSegmentationTask"  # only transform lists change


def test_albumentations_1_arguments_are_renamed_with_a_warning():
    text = """
data:
  init_args:
    train_transform:
      - class_path: albumentations.Rotate
        init_args: {limit: 30, value: 0, mask_value: -1}
      - class_path: albumentations.RandomResizedCrop
        init_args: {height: 16, width: 24, always_apply: true}
      - class_path: albumentations.HorizontalFlip
        init_args: {p: 0.5}
"""
    with pytest.warns(AlbumentationsArgumentWarning) as record:
        config = load_config_text(text)
    rotate, crop, flip = _transforms(config)
    assert rotate["init_args"] == {"limit": 30, "fill": 0, "fill_mask": -1}
    assert crop["init_args"] == {"size": [16, 24], "p": 1.0}
    assert flip["init_args"] == {"p": 0.5}
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "transform Rotate" in messages[0] and "'value' -> fill" in messages[0]
    assert "'mask_value' -> fill_mask" in messages[0]
    assert "transform RandomResizedCrop" in messages[1] and "'always_apply' -> p=1.0" in messages[1]


def test_renamed_transform_builds_in_albumentations_2():
    import albumentations as A

    with pytest.warns(AlbumentationsArgumentWarning):
        config = load_config_text(
            "train_transform:\n  - class_path: albumentations.PadIfNeeded\n"
            "    init_args: {min_height: 8, min_width: 8, value: 3, mask_value: 7}\n"
        )
    item = config["train_transform"][0]
    pad = A.PadIfNeeded(**item["init_args"])
    assert pad.fill == 3 and pad.fill_mask == 7


def test_command_line_transform_list_is_upgraded():
    value = load_config_text("[{class_path: ToTensorV2}]")
    assert value == [{"class_path": "albumentations.ToTensorV2"}]
    assert load_config_text("val/loss") == "val/loss"
    assert load_config_text("[1, 2]") == [1, 2]


def test_state_dict_aware_checkpoints_have_distinct_state_keys():
    from terratorch.cli_tools import StateDictAwareModelCheckpoint

    full = StateDictAwareModelCheckpoint(filename="{epoch}", monitor="val/loss")
    weights = StateDictAwareModelCheckpoint(
        filename="{epoch}_state_dict",
        monitor="val/loss",
        save_weights_only=True,
        save_top_k=3,
        save_best_only=True,
    )
    assert full.state_key != weights.state_key
    assert weights.save_top_k == 1 and weights.save_weights_only


def test_deployment_config_is_ready_for_inference():
    from terratorch.cli.callbacks import deployment_config

    config = {
        "ckpt_path": "x.ckpt",
        "optimizer": {"class_path": "torch.optim.Adam"},
        "lr_scheduler": None,
        "trainer": {
            "callbacks": [{"class_path": "EarlyStopping"}],
            "default_root_dir": "runs",
            "logger": True,
        },
        "model": {"init_args": {"model_args": {"backbone": "prithvi_eo_tiny", "backbone_pretrained": True}}},
    }
    deploy = deployment_config(config)
    assert "ckpt_path" not in deploy and "optimizer" not in deploy and "lr_scheduler" not in deploy
    assert deploy["trainer"] == {"logger": False, "precision": "16-mixed"}
    assert deploy["model"]["init_args"]["model_args"]["backbone_pretrained"] is False
    assert config["trainer"]["logger"] is True  # the input is not modified
