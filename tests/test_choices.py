from terratorch.choices import close_matches, did_you_mean, unknown_choice


def test_close_matches_is_case_insensitive_and_keeps_spelling():
    assert close_matches("unetdecoder", ["UNetDecoder", "FCNDecoder", "UperNetDecoder"])[0] == "UNetDecoder"


def test_close_matches_empty_when_nothing_is_close():
    assert close_matches("zzzz", ["adam", "sgd"]) == []
    assert did_you_mean("zzzz", ["adam", "sgd"]) == ""


def test_did_you_mean_lists_quoted_candidates():
    assert did_you_mean("adamw_", ["AdamW", "Adam", "SGD"]) == " Did you mean 'AdamW', 'Adam'?"


def test_unknown_choice_names_kind_place_hint_and_valid_set():
    text = unknown_choice("loss", "dcie", ["ce", "dice", "focal"], where="model_args.loss")
    assert text.startswith("Unknown loss 'dcie' in model_args.loss.")
    assert "Did you mean 'dice'" in text
    assert text.endswith("Valid: ce, dice, focal.")


def test_unknown_choice_truncates_long_valid_lists():
    text = unknown_choice("backbone", "x", [f"b{i:03d}" for i in range(40)], limit=5)
    assert "b004, ... (35 more)." in text


def test_did_you_mean_bare_form_for_config_values():
    assert did_you_mean("AdamWW", ["AdamW", "Adam", "SGD"], bare=True) == " Did you mean: AdamW, Adam?"
    assert did_you_mean("zzzz", ["adam"], bare=True) == ""


def test_registry_close_matches_is_the_shared_helper():
    from terratorch.registry.registry import close_matches as registry_close_matches

    names = [f"resnet{i}" for i in (18, 34, 50, 101, 152)] + ["resnext50"]
    assert registry_close_matches("resnet5", names) == close_matches("resnet5", names, n=5)
