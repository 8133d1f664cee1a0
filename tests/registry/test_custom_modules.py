"""Custom modules: ./custom_modules auto-import and explicit import_custom_modules()."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from terratorch.registry import CustomModuleImportError, import_custom_modules

REGISTERING_MODULE = textwrap.dedent(
    """
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    @TERRATORCH_BACKBONE_REGISTRY.register
    def {name}():
        return "{name} built"
    """
)


def test_custom_modules_folder_is_imported_before_first_lookup(tmp_path):
    folder = tmp_path / "custom_modules"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "my_backbones.py").write_text(REGISTERING_MODULE.format(name="auto_loaded_backbone"))
    code = (
        "from terratorch.registry import BACKBONE_REGISTRY\n"
        "print(BACKBONE_REGISTRY.build('auto_loaded_backbone'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "auto_loaded_backbone built"


def test_import_folder_without_init(tmp_path, restore_registries):
    folder = tmp_path / "plain_folder_mods"
    folder.mkdir()
    (folder / "one.py").write_text(REGISTERING_MODULE.format(name="folder_backbone_one"))
    import_custom_modules(folder)
    from terratorch.registry import BACKBONE_REGISTRY

    assert BACKBONE_REGISTRY.build("folder_backbone_one") == "folder_backbone_one built"


def test_import_single_file_and_dotted(tmp_path, monkeypatch, restore_registries):
    file = tmp_path / "single_file_mod.py"
    file.write_text(REGISTERING_MODULE.format(name="single_file_backbone"))
    import_custom_modules(file)
    from terratorch.registry import BACKBONE_REGISTRY

    assert "single_file_backbone" in BACKBONE_REGISTRY
    (tmp_path / "dotted_mod_pkg").mkdir()
    (tmp_path / "dotted_mod_pkg" / "__init__.py").write_text(
        REGISTERING_MODULE.format(name="dotted_backbone")
    )
    monkeypatch.chdir(tmp_path)
    import_custom_modules("dotted_mod_pkg")
    assert "dotted_backbone" in BACKBONE_REGISTRY


def test_missing_path_is_clear_error(tmp_path):
    with pytest.raises(CustomModuleImportError, match="does not exist"):
        import_custom_modules(tmp_path / "nope" / "mods")


def test_failing_import_includes_original_exception(tmp_path):
    folder = tmp_path / "broken_custom_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "bad.py").write_text("raise RuntimeError('boom from user code')\n")
    with pytest.raises(CustomModuleImportError, match="boom from user code") as info:
        import_custom_modules(folder)
    assert "broken_custom_pkg.bad" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_unimportable_dotted_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CustomModuleImportError, match="no_such_module_xyz"):
        import_custom_modules("no_such_module_xyz")
