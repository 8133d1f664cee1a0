"""Registry and MultiSourceRegistry behaviour (API.md §1)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from terratorch.registry import (
    BACKBONE_REGISTRY,
    DECODER_REGISTRY,
    MODEL_FACTORY_REGISTRY,
    NECK_REGISTRY,
    TERRATORCH_BACKBONE_REGISTRY,
    InvalidModelError,
    MultiSourceRegistry,
    Registry,
    list_backbones,
)
from terratorch.utils import InvalidModelError as InvalidModelErrorFromUtils


def test_register_class_and_function_returns_object_unchanged():
    reg = Registry("test")

    class Foo:
        pass

    def make_bar(x=1):
        return ("bar", x)

    assert reg.register(Foo) is Foo
    assert reg.register(make_bar) is make_bar
    assert "Foo" in reg and "make_bar" in reg
    assert reg["Foo"] is Foo
    assert reg.build("make_bar", x=3) == ("bar", 3)
    assert isinstance(reg.build("Foo"), Foo)
    assert sorted(reg) == ["Foo", "make_bar"]
    assert len(reg) == 2


def test_register_with_options_records_metadata():
    reg = Registry("test")

    @reg.register(name="alias", metadata={"bands": ["RED"], "patch_size": 8})
    def thing():
        return 1

    assert reg["alias"] is thing
    assert reg.metadata("alias") == {"bands": ["RED"], "patch_size": 8}


def test_register_non_callable_raises_type_error():
    reg = Registry("test")
    with pytest.raises(TypeError, match="class or a function"):
        reg.register(42)


def test_unknown_name_suggests_close_matches():
    reg = Registry("MY_REG")
    for name in ("resnet18", "resnet34", "resnet50", "vit_base"):
        reg.register(name=name)(lambda: None)
    with pytest.raises(InvalidModelError, match="resnet5") as info:
        reg.build("resnet5O")
    message = str(info.value)
    assert "'resnet5O'" in message and "MY_REG" in message
    assert "resnet50" in info.value.suggestions
    assert "vit_base" not in info.value.suggestions
    assert len(info.value.suggestions) <= 5


def test_invalid_model_error_importable_from_utils():
    assert InvalidModelErrorFromUtils is InvalidModelError


def test_constructor_error_propagates_unchanged():
    reg = Registry("test")

    @reg.register
    def broken():
        raise ZeroDivisionError("inner failure")

    with pytest.raises(ZeroDivisionError, match="inner failure"):
        reg.build("broken")


def test_lazy_entry_imports_module_on_first_lookup(tmp_path, monkeypatch):
    pkg = tmp_path / "lazy_pkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "from tests_registry_target import REG\n@REG.register\ndef lazy_thing():\n    return 'built'\n"
    )
    reg = Registry("LAZY")
    target = type(sys)("tests_registry_target")
    target.REG = reg
    monkeypatch.setitem(sys.modules, "tests_registry_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg.register_lazy("lazy_thing", "lazy_pkg_for_test.mod", patch_size=4)
    assert "lazy_pkg_for_test.mod" not in sys.modules
    assert "lazy_thing" in reg and list(reg) == ["lazy_thing"]
    assert reg.metadata("lazy_thing") == {"patch_size": 4}
    assert "lazy_pkg_for_test.mod" not in sys.modules  # listing and metadata do not import
    assert reg.build("lazy_thing") == "built"
    assert "lazy_pkg_for_test.mod" in sys.modules


def test_lazy_entry_whose_module_does_not_register_is_reported(tmp_path, monkeypatch):
    (tmp_path / "empty_mod_for_test.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("LAZY")
    reg.register_lazy("ghost", "empty_mod_for_test")
    with pytest.raises(RuntimeError, match="expected to register 'ghost'"):
        reg.build("ghost")


def test_reregistering_different_object_warns():
    reg = Registry("test")

    def first():
        return 1

    def second():
        return 2

    reg.register(name="x")(first)
    with pytest.warns(UserWarning, match="replaced"):
        reg.register(name="x")(second)
    assert reg.build("x") == 2


def _source(*names):
    reg = Registry("src")
    for name in names:
        reg.register(name=name)(lambda name=name: name)
    return reg


def test_multi_source_prefix_and_order():
    first, second = _source("a", "shared"), _source("b", "shared")
    multi = MultiSourceRegistry(one=first, two=second)
    assert multi.build("a") == "a"
    assert multi.build("b") == "b"
    assert multi.find_registry("shared") is first  # source order
    assert multi.find_registry("two_shared") is second  # prefix picks the source
    assert multi.find_class("two_b")() == "b"
    assert "one_b" not in multi  # a prefixed name is looked up in that source only
    assert multi["two"] is second
    assert list(multi) == ["one_a", "one_shared", "two_b", "two_shared"]
    assert len(multi) == 4


def test_multi_source_register_source_duplicate_prefix():
    multi = MultiSourceRegistry(one=_source("a"))
    multi.register_source("three", _source("c"))
    assert multi.build("three_c") == "c"
    with pytest.raises(KeyError, match="three"):
        multi.register_source("three", _source("d"))


def test_multi_source_unknown_name_lists_matches_and_prefixes():
    multi = MultiSourceRegistry(one=_source("alpha", "beta"), two=_source("gamma"))
    with pytest.raises(InvalidModelError, match="alpha") as info:
        multi.build("alpah")
    assert "one" in str(info.value) and "two" in str(info.value)
    with pytest.raises(InvalidModelError, match="two_gamma"):
        multi.build("two_gama")


def test_global_registries_have_documented_sources():
    assert list(BACKBONE_REGISTRY.sources) == ["terratorch", "timm"]
    assert list(DECODER_REGISTRY.sources) == ["terratorch", "smp"]
    assert list(NECK_REGISTRY.sources) == ["terratorch"]
    assert BACKBONE_REGISTRY["terratorch"] is TERRATORCH_BACKBONE_REGISTRY
    for name in (
        "EncoderDecoderFactory",
        "PrithviModelFactory",
        "SMPModelFactory",
        "TimmModelFactory",
        "FullModelFactory",
    ):
        assert name in MODEL_FACTORY_REGISTRY


def test_builtin_metadata_listing_without_import():
    code = (
        "import sys\n"
        "from terratorch.registry import list_backbones, TERRATORCH_BACKBONE_REGISTRY as R\n"
        "entries = {e.name: e.metadata for e in list_backbones('prithvi_eo_v2_*')}\n"
        "assert entries['prithvi_eo_v2_300']['patch_size'] == 16, entries\n"
        "assert entries['prithvi_eo_v2_600']['patch_size'] == 14\n"
        "assert entries['prithvi_eo_v2_300']['bands'][0] == 'BLUE'\n"
        "heavy = [m for m in ('torch', 'timm', 'segmentation_models_pytorch', 'lightning')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert {e.name for e in list_backbones("prithvi_eo_v1_*")} == {"prithvi_eo_v1_100"}


def test_timm_source_builds_feature_extractor():
    backbone = BACKBONE_REGISTRY.build("timm_resnet18", pretrained=False, in_chans=4)
    assert backbone.out_channels == [64, 64, 128, 256, 512]
    assert "resnet18" in BACKBONE_REGISTRY
    assert BACKBONE_REGISTRY.find_registry("resnet18") is BACKBONE_REGISTRY["timm"]


def test_timm_kwargs_reach_timm():
    backbone = BACKBONE_REGISTRY.build("timm_resnet18", pretrained=False, in_chans=3, out_indices=(2, 4))
    assert backbone.out_channels == [128, 512]


def test_misspelled_timm_name_suggests():
    with pytest.raises(InvalidModelError, match="timm_resnet18"):
        BACKBONE_REGISTRY.build("timm_resnt18")


def test_restore_fixture_keeps_builtins_resolved_during_a_test(restore_registries):
    # Resolving a lazy built-in inside a test that restores registries must not break later lookups.
    assert MODEL_FACTORY_REGISTRY["FullModelFactory"].__name__ == "FullModelFactory"


def test_builtin_still_resolvable_after_restore():
    assert MODEL_FACTORY_REGISTRY["FullModelFactory"].__name__ == "FullModelFactory"


# -- reference (1.2.11) spellings ---------------------------------------------------------------


def test_invalid_model_error_reference_spelling():
    default = InvalidModelError(None, model_name="foo")
    assert default.name == "foo" and "foo" in str(default)
    assert str(InvalidModelError("custom text", model_name="foo")) == "custom text"
    # A KeyError, so code catching the reference's plain KeyError from lookups still works.
    with pytest.raises(KeyError):
        raise InvalidModelError("x", "somewhere")


def test_registry_lookup_errors_are_key_errors():
    reg = _source("a")
    assert reg.get("missing") is None
    with pytest.raises(KeyError):
        reg["missing"]
    multi = MultiSourceRegistry(one=reg)
    with pytest.raises(KeyError):
        multi.find_registry("missing")


def test_registry_accepts_initial_elements():
    def make():
        return "made"

    reg = Registry(make=make)
    assert "make" in reg and reg.build("make") == "made"
    assert Registry().name == "registry" and len(Registry()) == 0


def test_multi_source_reference_messages_and_keys():
    multi = MultiSourceRegistry()
    with pytest.raises(InvalidModelError, match="could not be instantiated from any source"):
        multi.build("nonexistent_model")
    multi.register_source("simple", _source("my_model"))
    with pytest.raises(KeyError, match=r"Source for prefix simple already exists\."):
        multi.register_source("simple", _source("other"))
    multi.register_source("second", _source("b"))
    assert list(multi.keys()) == ["simple", "second"]  # prefixes, as in the reference
    assert list(multi) == ["simple_my_model", "second_b"]
    assert MultiSourceRegistry[Registry] is not None  # usable in annotations


def test_minimal_buildable_source_without_getitem():
    class Minimal:
        def __init__(self):
            self._items = {"m": lambda: "built m"}

        def __iter__(self):
            return iter(self._items)

        def __len__(self):
            return len(self._items)

        def __contains__(self, name):
            return name in self._items

        def build(self, name, *args, **kwargs):
            return self._items[name](*args, **kwargs)

    multi = MultiSourceRegistry()
    multi.register_source("mini", Minimal())
    assert multi.build("mini_m") == multi.build("m") == "built m"
    assert "mini_m" in multi and "m" in multi
    assert multi.find_registry("m") is multi["mini"]


def test_decoder_registry_source_flag():
    from terratorch.registry import TERRATORCH_DECODER_REGISTRY

    assert TERRATORCH_DECODER_REGISTRY.includes_head is False
