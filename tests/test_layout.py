"""The workspace layout rules from DESIGN.md section 1-2."""

from __future__ import annotations

import ast
import shutil
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

MEMBERS = ["leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn", "esper"]
TORCH_USERS = {"kasmina", "tolaria", "tamiyo", "simic", "esper"}  # the CLI builds devices and runs training


def project(member: str) -> dict[str, object]:
    data = tomllib.loads((ROOT / "packages" / member / "pyproject.toml").read_text())
    proj = data["project"]
    assert isinstance(proj, dict)
    return proj


def dependency_names(member: str) -> set[str]:
    deps = project(member)["dependencies"]
    assert isinstance(deps, list)
    return {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in deps}


def test_no_package_shadows_the_esper_namespace() -> None:
    # One stray esper/__init__.py turns the PEP 420 namespace into a regular package and hides the others.
    assert not list(ROOT.glob("packages/*/src/esper/__init__.py"))


def test_every_member_is_a_typed_namespace_package() -> None:
    for member in MEMBERS:
        import_name = "cli" if member == "esper" else member
        pkg = ROOT / "packages" / member / "src" / "esper" / import_name
        assert (pkg / "__init__.py").is_file(), member
        assert (pkg / "py.typed").is_file(), member
        data = tomllib.loads((ROOT / "packages" / member / "pyproject.toml").read_text())
        assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/esper"], member
        assert data["build-system"]["build-backend"] == "hatchling.build", member


def test_torch_only_where_the_design_allows_it() -> None:
    for member in MEMBERS:
        has_torch = "torch" in dependency_names(member)
        assert has_torch == (member in TORCH_USERS), f"{member}: torch dependency {has_torch}"


# DESIGN.md section 2: who may depend on whom (Kasmina never on Tamiyo/Simic, Tamiyo never on Kasmina...).
ALLOWED_WORKSPACE_DEPS = {
    "leyline": set(),
    "kasmina": {"leyline"},
    "tolaria": {"leyline", "kasmina"},
    "tamiyo": {"leyline"},
    "simic": {"leyline", "tolaria", "tamiyo"},
    "karn": {"leyline"},
    "esper": {"leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn"},
}


def test_dependency_direction() -> None:
    for member, allowed in ALLOWED_WORKSPACE_DEPS.items():
        workspace_deps = {d.removeprefix("esper-") for d in dependency_names(member) if d.startswith("esper-")}
        assert workspace_deps <= allowed, f"esper-{member} depends on {sorted(workspace_deps - allowed)}"


def test_root_depends_on_every_member() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = set(root["project"]["dependencies"])
    assert {f"esper-{m}" if m != "esper" else "esper" for m in MEMBERS} <= deps
    assert (ROOT / "uv.lock").is_file()


def test_generated_contracts_live_in_their_owner(root: Path) -> None:
    for owner_dir in sorted((root / "schemas").iterdir()):
        contracts = root / "packages" / owner_dir.name / "src" / "esper" / owner_dir.name / "contracts"
        for schema in owner_dir.glob("*.json"):
            assert (contracts / f"{schema.stem}.py").is_file(), schema
            assert (contracts / "schemas" / schema.name).read_bytes() == schema.read_bytes()


IMPORT_NAMES = {m: ("cli" if m == "esper" else m) for m in MEMBERS}
MEMBER_OF_IMPORT = {name: member for member, name in IMPORT_NAMES.items()}


def imported_members(source: str) -> set[str]:
    """The workspace members a module's source imports (`import esper.x...` / `from esper.x... import ...`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "esper" and len(parts) > 1 and parts[1] in MEMBER_OF_IMPORT:
                found.add(MEMBER_OF_IMPORT[parts[1]])
    return found


def import_violations(src: Path, member: str) -> list[str]:
    """Every real import in a member's source tree that the dependency direction forbids, as "file: member"."""
    allowed = ALLOWED_WORKSPACE_DEPS[member] | {member}
    found = []
    for path in sorted(src.rglob("*.py")):
        for imported in sorted(imported_members(path.read_text(encoding="utf-8")) - allowed):
            found.append(f"{path.relative_to(src)}: esper.{IMPORT_NAMES[imported]}")
    return found


@pytest.mark.parametrize("member", MEMBERS)
def test_real_imports_follow_the_dependency_direction(member: str) -> None:
    violations = import_violations(ROOT / "packages" / member / "src", member)
    assert not violations, f"esper-{member} imports what it may not: {violations}"


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "packages" / "karn" / "src", tmp_path / "src")
    assert import_violations(tmp_path / "src", "karn") == []
    store = tmp_path / "src" / "esper" / "karn" / "store.py"
    store.write_text(store.read_text(encoding="utf-8") + "\nfrom esper.simic import RunConfig  # noqa\n")
    nested = tmp_path / "src" / "esper" / "karn" / "tui.py"
    nested.write_text(nested.read_text(encoding="utf-8") + "\ndef late() -> None:\n    import esper.kasmina.slot\n")
    assert import_violations(tmp_path / "src", "karn") == [
        "esper/karn/store.py: esper.simic",
        "esper/karn/tui.py: esper.kasmina",
    ]


MAX_FUNCTION_LINES = 80  # issue 14: the run loop and everything around it stays readable


def test_no_hand_written_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted(ROOT.glob("packages/*/src/esper/**/*.py")):
        if "contracts" in path.parts:
            continue  # generated
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
