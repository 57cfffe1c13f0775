"""Per-package installs: esper-leyline alone and esper-karn alone install from built wheels into fresh virtual
environments, import, validate wire data with the schemas shipped inside the wheel, and pull in no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

UV = os.environ.get("UV") or shutil.which("uv")  # `uv run` exports UV

PROBE = """
import importlib.util, json
import esper.leyline as L
assert importlib.util.find_spec("torch") is None, "torch was installed"
doc = {"episodes_completed": 2, "wall_seconds": 1.0, "interrupted": False}
assert L.from_wire(L.TrainingCompletedPayload, doc).episodes_completed == 2
try:
    L.from_wire(L.TrainingCompletedPayload, {**doc, "bogus": 1})
except L.WireError as exc:
    print("rejected:", exc)
else:
    raise SystemExit("unknown key accepted")
"""


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert UV is not None, "uv is not on PATH; run `make setup`"
    out = tmp_path_factory.mktemp("wheels")
    built: dict[str, Path] = {}
    for member in ("leyline", "karn"):
        run(UV, "build", "--package", f"esper-{member}", "--wheel", "--out-dir", str(out), "--quiet")
        (wheel,) = out.glob(f"esper_{member}-*.whl")
        built[member] = wheel
    return built


@pytest.mark.parametrize(("member", "needs"), [("leyline", ["leyline"]), ("karn", ["karn", "leyline"])])
def test_member_installs_alone_without_torch(
    member: str, needs: list[str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    assert UV is not None
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", "3.11", str(venv))
    python = str(venv / "bin" / "python")
    run(UV, "pip", "install", "--quiet", "--python", python, *(str(wheels[n]) for n in needs))
    listed = run(UV, "pip", "list", "--python", python).stdout
    assert "torch" not in listed
    probe = PROBE + (f"import esper.{member}\n" if member != "leyline" else "")
    result = run(python, "-c", probe, cwd=tmp_path)
    assert "rejected: TrainingCompletedPayload.bogus: Additional properties are not allowed" in result.stdout
