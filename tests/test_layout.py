"""The workspace layout rules from DESIGN.md section 1-2."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
