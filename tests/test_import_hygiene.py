"""core is a library: importing all of it must never pull in the UI (textual, rich, tui)."""

import subprocess
import sys

from tests.conftest import ROOT

MODULES = ["sd_explorer.core", "sd_explorer.core.cli", "sd_explorer.core.models", "sd_explorer.core.sampler", "sd_explorer.core.vae", "sd_explorer.core.outputs", "sd_explorer.core.tokens",
           "sd_explorer.core.clip_vocab", "sd_explorer.core.schedulers", "sd_explorer.core.results", "sd_explorer.core.preview", "sd_explorer.core.devices", "sd_explorer.core.errors"]


def test_core_never_imports_the_ui():
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "import pkgutil, sd_explorer.core as core\n"
        "for info in pkgutil.walk_packages(core.__path__, 'sd_explorer.core.'):\n"
        "    if not info.name.endswith('__main__'): importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'rich_pixels') or m.startswith('sd_explorer.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core imported UI modules: {out.stdout.strip()}"


def test_importing_core_is_cheap():
    code = "import sys, sd_explorer.core; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"
