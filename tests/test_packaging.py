"""Per-package installs: each of the seven distributions builds a wheel that installs alone into a fresh virtual
environment with only its declared dependencies (the workspace's other wheels, and the registry's packages at the
locked versions) and imports its public API. leyline and karn must install without torch. A static check keeps the
declared dependencies honest: every third-party module a package imports is one it declares."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

UV = os.environ.get("UV") or shutil.which("uv")  # `uv run` exports UV
MEMBERS = ("leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn", "esper")
WITHOUT_TORCH = ("leyline", "karn")


def distribution(member: str) -> str:
    return "esper" if member == "esper" else f"esper-{member}"


def import_name(member: str) -> str:
    return "esper.cli.main" if member == "esper" else f"esper.{member}"


PROBE = """
import importlib, importlib.util, sys
module = importlib.import_module({module!r})
names = list(vars(module)["__all__"]) if "__all__" in vars(module) else ["main"]
missing = [name for name in names if name not in vars(module)]
assert not missing, f"{{module.__name__}} exports names it does not define: {{missing}}"
print("torch", "installed" if importlib.util.find_spec("torch") else "absent")
print("exports", len(names))
"""


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every member's wheel, and constraints pinning the registry's packages to the lock (so uv's cache serves
    them and a test install matches `make setup`)."""
    assert UV is not None, "uv is not on PATH; run `make setup`"
    out = tmp_path_factory.mktemp("wheels")
    for member in MEMBERS:
        run(UV, "build", "--package", distribution(member), "--wheel", "--out-dir", str(out), "--quiet")
    exported = run(
        UV, "export", "--locked", "--no-hashes", "--no-dev", "--no-emit-workspace", "--format", "requirements-txt"
    )
    (out / "constraints.txt").write_text(exported.stdout)
    return out


@pytest.mark.parametrize("member", MEMBERS)
def test_each_wheel_installs_alone_and_imports(member: str, wheelhouse: Path, tmp_path: Path) -> None:
    assert UV is not None
    (wheel,) = wheelhouse.glob(f"{distribution(member).replace('-', '_')}-*.whl")
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv))
    python = str(venv / "bin" / "python")
    # --link-mode symlink: torch's files stay in uv's cache, so five torch venvs cost seconds on any filesystem.
    run(
        UV, "pip", "install", "--quiet", "--python", python, "--link-mode", "symlink",
        "--find-links", str(wheelhouse), "--constraint", str(wheelhouse / "constraints.txt"), str(wheel),
    )  # fmt: skip
    installed = {line.split()[0] for line in run(UV, "pip", "list", "--python", python).stdout.splitlines()[2:]}
    workspace = {distribution(m) for m in MEMBERS}
    assert installed & workspace == {distribution(m) for m in declared_closure(member)}
    result = run(python, "-c", PROBE.format(module=import_name(member)), cwd=tmp_path)
    expected_torch = "absent" if member in WITHOUT_TORCH else "installed"
    assert f"torch {expected_torch}" in result.stdout
    if member == "esper":
        version = run(str(venv / "bin" / "esper"), "--version", cwd=tmp_path).stdout
        assert version.startswith("esper 0.1.0\nesper-leyline 0.1.0")


def test_leyline_alone_validates_wire_data_with_its_shipped_schemas(wheelhouse: Path, tmp_path: Path) -> None:
    assert UV is not None
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv))
    python = str(venv / "bin" / "python")
    (wheel,) = wheelhouse.glob("esper_leyline-*.whl")
    run(
        UV,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        "--constraint",
        str(wheelhouse / "constraints.txt"),
        str(wheel),
    )
    probe = (
        "import esper.leyline as L\n"
        "doc = {'episodes_completed': 2, 'wall_seconds': 1.0, 'interrupted': False}\n"
        "assert L.from_wire(L.TrainingCompletedPayload, doc).episodes_completed == 2\n"
        "try:\n    L.from_wire(L.TrainingCompletedPayload, {**doc, 'bogus': 1})\n"
        "except L.WireError as exc:\n    print('rejected:', exc)\n"
    )
    result = run(python, "-c", probe, cwd=tmp_path)
    assert "rejected: TrainingCompletedPayload.bogus: Additional properties are not allowed" in result.stdout


def declared(member: str) -> list[str]:
    """The requirement names in a member's pyproject.toml (without version specifiers)."""
    project = tomllib.loads((ROOT / "packages" / member / "pyproject.toml").read_text())["project"]
    names = []
    for requirement in project["dependencies"]:
        name = requirement
        for stop in "<>=!~;[ ":
            name = name.split(stop)[0]
        names.append(name.lower())
    return names


def declared_closure(member: str) -> set[str]:
    """The member and every workspace member it depends on, directly or not."""
    found = {member}
    for name in declared(member):
        if name == "esper" or name.startswith("esper-"):
            found |= declared_closure(name.removeprefix("esper-"))
    return found


def imported_distributions(member: str) -> set[str]:
    """The third-party distributions whose modules a member's source imports (absolute imports only)."""
    modules: set[str] = set()
    for path in (ROOT / "packages" / member / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
                modules.add(node.module.split(".")[0])
    owners = importlib.metadata.packages_distributions()
    third_party = modules - set(sys.stdlib_module_names) - {"esper"}
    return {owner.lower() for module in third_party for owner in owners[module]}


@pytest.mark.parametrize("member", MEMBERS)
def test_every_imported_third_party_package_is_declared(member: str) -> None:
    undeclared = imported_distributions(member) - set(declared(member))
    assert not undeclared, f"packages/{member} imports {sorted(undeclared)} without declaring them"
