"""Search-space parsing and sampling (terratorch.iterate.space)."""

from __future__ import annotations

import optuna
import pytest

from terratorch.iterate import space

SPACE = {
    "lr": {"min": 1.0e-5, "max": 1.0e-2, "type": "real", "log": True},
    "batch_size": [4, 8],
    "optimizer_hparams": {"weight_decay": {"min": 0.0, "max": 0.1, "type": "real"}},
    "model_args": {"decoder_channels": [[64, 32], [32, 16]]},
    "trainer_args": {"max_epochs": {"min": 1, "max": 3, "type": "int"}},
}


def test_parse_flattens_nested_keys():
    params = {p.path: p for p in space.parse_space(SPACE)}
    assert set(params) == {
        "lr",
        "batch_size",
        "optimizer_hparams.weight_decay",
        "model_args.decoder_channels",
        "trainer_args.max_epochs",
    }
    assert params["lr"].log and params["lr"].kind == "real"
    assert params["trainer_args.max_epochs"].kind == "int"
    assert params["model_args.decoder_channels"].encoded
    assert not params["batch_size"].encoded


def test_sample_respects_ranges_and_decodes_lists():
    params = space.parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        values = space.sample(trial, params)
        assert 1e-5 <= values["lr"] <= 1e-2
        assert values["batch_size"] in (4, 8)
        assert values["model_args.decoder_channels"] in ([64, 32], [32, 16])
        assert isinstance(values["trainer_args.max_epochs"], int)
        study.tell(trial, 0.0)
        assert space.decode(params, trial.params) == values


def test_without_drops_names_and_their_children():
    params = space.parse_space(SPACE)
    kept = {p.path for p in space.without(params, ["lr", "optimizer_hparams"])}
    assert kept == {"batch_size", "model_args.decoder_channels", "trainer_args.max_epochs"}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"lr": {"min": 1, "max": 0.1}}, "larger than 'max'"),
        ({"lr": {"min": 0, "max": 1, "log": True}}, "log range needs 'min' > 0"),
        ({"lr": {"min": 1, "max": 2, "type": "float"}}, "range type 'float' is not valid"),
        ({"lr": {"min": "1e-4", "max": 1}}, "must be numbers"),
        ({"lr": {"min": 1}}, "needs both 'min' and 'max'"),
        ({"lr": []}, "empty list"),
        ({"lr": 0.1}, "neither a range"),
        ({"lr": {"min": 1, "max": 2, "step": 1}}, r"unknown range keys \['step'\]"),
        ({"n": {"min": 1.5, "max": 3, "type": "int"}}, "integer bounds"),
    ],
)
def test_bad_entries_are_reported_with_path(bad, match):
    with pytest.raises(space.SpaceError, match=match) as info:
        space.parse_space(bad)
    assert info.value.problems[0][0] == next(iter(bad))


def test_all_problems_reported_at_once():
    with pytest.raises(space.SpaceError) as info:
        space.parse_space({"a": [], "b": {"min": 2, "max": 1}})
    assert [p for p, _ in info.value.problems] == ["a", "b"]
