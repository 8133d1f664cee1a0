"""One weight-resolution rule (local file → local caches → download only if allowed) and the safe loader.

No test touches the network: the download functions are replaced, and the tests assert whether
they were called.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from terratorch.models import weights
from terratorch.models.weights import (
    ALLOW_DOWNLOAD_ENV,
    CheckpointFormatError,
    PretrainedWeightsNotFoundError,
    WeightsNotFoundError,
    downloads_allowed,
    load_torch_checkpoint,
    resolve_weights_file,
)

REPO, FILE = "ibm-nasa-geospatial/Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty HF and torch hub caches, online mode, no download permission in the environment."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    return tmp_path


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """Replace both download functions; returns the list of what they were asked for."""
    calls: list[str] = []

    def fake_hf(repo_id, filename, cache_dir):
        calls.append(f"{repo_id}/{filename}")
        path = tmp_path / "downloaded" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
        return path

    def fake_url(url):
        calls.append(url)
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(weights, "_download", fake_hf)
    monkeypatch.setattr(weights, "_download_url", fake_url)
    return calls


def test_offline_by_default_names_every_place_looked(empty_caches, downloads):
    url = "https://example.org/weights/resnet_rgb.pth"
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        resolve_weights_file(hf_repo_id=REPO, hf_filenames=[FILE], url=url, model_name="prithvi_eo_v2_300")
    message = str(info.value)
    assert downloads == []
    assert str(empty_caches / "hf" / "models--ibm-nasa-geospatial--Prithvi-EO-2.0-300M") in message
    assert str(empty_caches / "torch_hub" / "checkpoints" / "resnet_rgb.pth") in message
    assert f"{ALLOW_DOWNLOAD_ENV}=1" in message and "ckpt_path=" in message


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_download_only_when_allowed(empty_caches, downloads, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "1")
    found = resolve_weights_file(
        hf_repo_id=REPO, hf_filenames=[FILE], allow_download=how == "argument" or None
    )
    assert found.name == FILE and downloads == [f"{REPO}/{FILE}"]


def test_hf_offline_forbids_downloads_even_when_allowed(empty_caches, downloads, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "1")
    assert not downloads_allowed(True)
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE is set"):
        resolve_weights_file(hf_repo_id=REPO, hf_filenames=[FILE])
    assert downloads == []


def test_failed_download_is_reported(empty_caches, downloads):
    with pytest.raises(
        WeightsNotFoundError, match=r"download failed \(https://x\.org/w\.pth: ConnectionError\)"
    ):
        resolve_weights_file(url="https://x.org/w.pth", allow_download=True)
    assert downloads == ["https://x.org/w.pth"]


def test_cache_hit_needs_no_download(empty_caches, downloads):
    hub = empty_caches / "torch_hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "w.pth").write_bytes(b"x")
    assert resolve_weights_file(url="https://x.org/w.pth", allow_download=True) == hub / "w.pth"
    assert downloads == []


def test_timm_pretrained_follows_the_same_rule(empty_caches, downloads):
    from terratorch.models.backbone_adapter import resolve_timm_pretrained

    with pytest.raises(PretrainedWeightsNotFoundError, match=r"'resnet18'.*Looked in: .*timm--resnet18"):
        resolve_timm_pretrained("resnet18", None)
    assert downloads == []


# ---- the safe loader ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"hello, I am a text file\n", "a file starting with b'hello"),
        (bytes(range(7, 250)), "a file starting with"),
        (b"", "an empty file"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, kind):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{str(path)!r} is not a PyTorch checkpoint ({kind}")
    assert "weights_only=False" not in message


def test_pickle_of_random_bytes_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(b"\x80\x02" + bytes(range(228, 256)) * 4)  # pickle header, then garbage
    with pytest.raises(CheckpointFormatError, match=r"noise\.pt' is not a PyTorch checkpoint \(") as info:
        load_torch_checkpoint(path)
    assert "weights_only" not in str(info.value)


def test_lightning_checkpoint_comes_back_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 4, "hyper_parameters": {"lr": 0.1}}, path)
    loaded = load_torch_checkpoint(path)
    assert loaded["epoch"] == 4 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist: '.*gone\.ckpt'"):
        load_torch_checkpoint(Path(tmp_path) / "gone.ckpt")
