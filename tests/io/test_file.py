"""The reference's ``terratorch.io.file`` helpers."""

import pytest
import torch

from terratorch.io.file import load_from_file_or_attribute, load_torch_weights, open_generic_torch_model
from terratorch.models.weights import CheckpointFormatError, WeightsNotFoundError


def test_statistics_inline_or_from_a_text_file(tmp_path):
    assert load_from_file_or_attribute([1.0, 2.5]) == [1.0, 2.5]
    path = tmp_path / "means.txt"
    path.write_text("0.5\n1.5\n")
    assert load_from_file_or_attribute(str(path)) == [0.5, 1.5]
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        load_from_file_or_attribute(str(tmp_path / "missing.txt"))


def test_weights_round_trip_and_bad_files(tmp_path):
    source = torch.nn.Linear(3, 2)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    target = load_torch_weights(torch.nn.Linear(3, 2), save_dir=str(tmp_path), name="w.pt")
    assert torch.equal(target.weight, source.weight)

    built = open_generic_torch_model(
        "torch.nn.Linear", {"in_features": 3, "out_features": 2}, str(tmp_path / "w.pt")
    )
    assert torch.equal(built.bias, source.bias)
    assert torch.equal(
        open_generic_torch_model(
            torch.nn.Linear, {"in_features": 3, "out_features": 2}, str(tmp_path / "w.pt")
        ).weight,
        source.weight,
    )

    with pytest.raises(RuntimeError, match=r"w\.pt"):
        load_torch_weights(torch.nn.Linear(4, 2), save_dir=str(tmp_path), name="w.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError, match="not a PyTorch checkpoint"):
        load_torch_weights(torch.nn.Linear(3, 2), save_dir=str(tmp_path), name="junk.pt")
    with pytest.raises(WeightsNotFoundError):
        load_torch_weights(torch.nn.Linear(3, 2), save_dir=str(tmp_path), name="absent.pt")
    with pytest.raises(ValueError, match="cannot import"):
        open_generic_torch_model("torch.nn.NoSuchLayer", {}, str(tmp_path / "w.pt"))
