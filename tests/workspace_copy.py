"""A throw-away copy of the workspace for tests that edit schemas or code and regenerate."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import ROOT

COPIED = ("schemas", "codegen", "packages", "tests", "docs", "pyproject.toml")


def copy_workspace(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target
