"""The contract pipeline: deterministic output, drift detection, dependency and convention checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from codegen.errors import CodegenError
from codegen.generate import Workspace, drift_report, render, write
from esper.leyline import SeedMetrics, SeedStage, TelemetryEvent
from tests.conftest import ROOT
from tests.workspace_copy import copy_workspace

LEYLINE_CONTRACTS = Path("packages/leyline/src/esper/leyline/contracts")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(copy_workspace(tmp_path / "ws"))


def edit_schema(ws: Workspace, rel: str, change: dict[str, object]) -> None:
    path = ws.schemas / rel
    doc = json.loads(path.read_text())
    doc.update(change)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def new_schema(ws: Workspace, rel: str, doc: dict[str, object]) -> None:
    full = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://esper.invalid/schemas/{rel}",
        **doc,
    }
    (ws.schemas / rel).write_text(json.dumps(full, indent=2) + "\n")


def test_committed_tree_has_no_drift() -> None:
    assert drift_report(Workspace(ROOT)) == ""


def test_output_is_byte_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    first = render(Workspace(ROOT))
    monkeypatch.setenv("PYTHONHASHSEED", "12345")
    assert render(Workspace(ROOT)) == first


def test_every_generated_module_says_do_not_edit() -> None:
    for path in ROOT.glob("packages/*/src/esper/*/contracts/*.py"):
        assert "do not edit" in path.read_text().splitlines()[0], path


def test_schema_edit_without_regeneration_is_drift(ws: Workspace) -> None:
    props = json.loads((ws.schemas / "leyline/seed_metrics.json").read_text())["properties"]
    props["dwell_epochs"] = {"type": "integer", "minimum": 0, "description": "Epochs spent dwelling."}
    edit_schema(ws, "leyline/seed_metrics.json", {"properties": props, "required": sorted(props)})
    report = drift_report(ws)
    assert f"regenerated/{LEYLINE_CONTRACTS}/seed_metrics.py" in report
    assert "+    dwell_epochs: int" in report
    assert "| `dwell_epochs` | integer | yes |" in report  # the catalogue drifts too
    write(ws)
    assert drift_report(ws) == ""


def test_new_schema_is_missing_until_generated(ws: Workspace) -> None:
    new_schema(
        ws,
        "leyline/graft_mode.json",
        {
            "title": "GraftMode",
            "description": "Demo enum.",
            "type": "integer",
            "enum": [0, 1],
            "x-enum-varnames": ["SOFT", "HARD"],
            "x-enum-descriptions": ["Soft.", "Hard."],
        },
    )
    report = drift_report(ws)
    assert f"missing (not generated yet): {LEYLINE_CONTRACTS}/graft_mode.py" in report
    write(ws)
    assert "class GraftMode(IntEnum):" in (ws.root / LEYLINE_CONTRACTS / "graft_mode.py").read_text()


def test_stale_generated_file_is_extra_and_removed(ws: Workspace) -> None:
    stale = ws.root / LEYLINE_CONTRACTS / "retired_contract.py"
    stale.write_text("class Retired: ...\n")
    assert f"extra (no schema produces it): {LEYLINE_CONTRACTS}/retired_contract.py" in drift_report(ws)
    write(ws)
    assert not stale.exists()


def test_cross_package_ref_needs_a_declared_dependency(ws: Workspace) -> None:
    new_schema(
        ws,
        "karn/host_view.json",
        {
            "title": "HostView",
            "description": "Karn reaching into Kasmina.",
            "type": "object",
            "additionalProperties": False,
            "required": ["host"],
            "properties": {"host": {"$ref": "../kasmina/cnn_host_config.json", "description": "The host."}},
        },
    )
    with pytest.raises(CodegenError, match="imports esper.kasmina but esper-karn does not depend on esper-kasmina"):
        render(ws)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"description": None}, "missing 'description'"),
        ({"additionalProperties": True}, "additionalProperties: false"),
        ({"$id": "https://esper.invalid/schemas/leyline/other.json"}, "$id must be"),
        ({"title": "SeedStage"}, "title 'SeedStage' is already used"),
    ],
)
def test_schema_conventions_are_enforced(ws: Workspace, change: dict[str, object], message: str) -> None:
    edit_schema(ws, "leyline/gate_result.json", change)
    with pytest.raises(CodegenError, match=message.replace("$", r"\$")):
        render(ws)


def test_inline_enums_are_rejected(ws: Workspace) -> None:
    props = json.loads((ws.schemas / "leyline/gate_result.json").read_text())["properties"]
    props["colour"] = {"type": "string", "enum": ["red"], "description": "Inline enum."}
    edit_schema(ws, "leyline/gate_result.json", {"properties": props})
    with pytest.raises(CodegenError, match="property 'colour' has an inline enum"):
        render(ws)


def test_impact_matrix_follows_the_consumers(ws: Workspace) -> None:
    consumer = ws.root / "packages/karn/src/esper/karn/stage_names.py"
    consumer.write_text("from esper.leyline import SeedStage\n\nNAMES = [s.name for s in SeedStage]\n")
    assert "impact-matrix.md" in drift_report(ws)
    write(ws)
    matrix = (ws.docs / "impact-matrix.md").read_text()
    row = next(line for line in matrix.splitlines() if line.startswith("| `SeedStage` |"))
    assert "`esper.karn.stage_names`" in row


def test_generated_records_are_frozen_keyword_only_and_slotted() -> None:
    metrics = SeedMetrics(
        epochs_total=1,
        epochs_in_current_stage=1,
        initial_val_accuracy=1.0,
        current_val_accuracy=1.0,
        best_val_accuracy=1.0,
        accuracy_at_stage_start=1.0,
        total_improvement=0.0,
        improvement_since_stage_start=0.0,
        counterfactual_contribution=None,
        contribution_velocity=0.0,
        epochs_since_counterfactual=None,
        seed_gradient_norm_ratio=0.0,
        gradient_norm=None,
        gradient_health=None,
        has_vanishing=None,
        has_exploding=None,
        seed_param_count=1,
        host_param_count=1,
        delta_ratio=None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.epochs_total = 2  # type: ignore[misc]
    assert not hasattr(metrics, "__dict__")
    with pytest.raises(TypeError):
        SeedMetrics(1)  # type: ignore[misc]
    assert dataclasses.replace(metrics, epochs_total=2).epochs_total == 2
    assert hash(metrics) == hash(dataclasses.replace(metrics))
    assert SeedStage.TRAINING == 3 and isinstance(SeedStage.TRAINING, int)
    assert TelemetryEvent.__dataclass_params__.frozen  # type: ignore[attr-defined]
