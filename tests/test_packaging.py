"""The folders core/, tui/ and assets/ install as one package, ``sd_explorer`` (no top-level ``core``/``tui``)."""

from __future__ import annotations

import sys
import zipfile

import pytest

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FOLDERS = {"core": "sd_explorer.core", "tui": "sd_explorer.tui", "assets": "sd_explorer.assets"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_python_folder_is_listed_under_the_one_import_name():
    """A new subpackage (a folder with ``__init__.py``) that is not listed would be left out of the wheel."""
    config = _setuptools()
    assert config["package-dir"] == {new: old for old, new in FOLDERS.items()}
    want = {FOLDERS["assets"]}  # and its folders Python could import (setuptools warns unless they are listed)
    want |= {f"{FOLDERS['assets']}.{d.name}" for d in (ROOT / "assets").iterdir() if d.is_dir() and d.name.isidentifier()}
    for folder in ("core", "tui"):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            want.add(".".join((FOLDERS[folder], *parts)))
    assert set(config["packages"]) == want


def test_the_console_script_and_module_entry_points_use_the_package_name():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["sd-explorer"] == "sd_explorer.tui.entry:main"
    for module in ("sd_explorer.core.__main__", "sd_explorer.tui.__main__", "sd_explorer.tui.entry"):
        assert __import__("importlib").util.find_spec(module) is not None, module


@pytest.mark.slow
def test_the_wheel_has_one_top_level_package_with_its_assets(tmp_path):
    """Build the wheel as pip would (from a copy: no build/ left in the tree) and look inside: everything
    under ``sd_explorer/``, the weights too."""
    import os
    import shutil

    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip(f"setuptools {setuptools.__version__} is older than the build needs (>= 68, the test extra)")
    from setuptools import build_meta

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    cwd = os.getcwd()
    os.chdir(src)
    try:
        name = build_meta.build_wheel(str(tmp_path))
    finally:
        os.chdir(cwd)
    names = zipfile.ZipFile(tmp_path / name).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"sd_explorer"}, top
    for path in ("sd_explorer/core/sampler.py", "sd_explorer/tui/app.tcss", "sd_explorer/assets/tiny-sd/model_index.json",
                 "sd_explorer/assets/fashion/ddpm.safetensors", "sd_explorer/core/fashion/__init__.py"):
        assert path in names, path


def test_nothing_imports_the_bare_folder_names():
    """From the checkout ``import core`` would still work (the working directory is on ``sys.path``),
    and break in an installed wheel: every import uses ``sd_explorer.``."""
    import re

    bare = re.compile(r"^\s*(from|import)\s+(core|tui|assets)\b", re.M)
    found = [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
             for folder in ("core", "tui", "tests", "bench") for path in (ROOT / folder).rglob("*.py")
             for text in [path.read_text()] for m in bare.finditer(text)]
    assert found == []
