"""The demonstration the contract pipeline promises: add a member to LifecycleOp in a copy of the workspace,
regenerate, and watch the consumer-coverage checks fail naming each table that has not handled it, one fix at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from codegen.generate import Workspace, write
from tests.workspace_copy import copy_workspace


def test_new_lifecycle_op_fails_coverage_naming_the_consumers(tmp_path: Path) -> None:
    ws = Workspace(copy_workspace(tmp_path / "ws"))
    schema_path = ws.schemas / "leyline" / "lifecycle_op.json"
    schema = json.loads(schema_path.read_text())
    schema["enum"].append(8)
    schema["x-enum-varnames"].append("SPLIT_INTERNAL")
    schema["x-enum-descriptions"].append("Split a ladder seed in two.")
    schema_path.write_text(json.dumps(schema, indent=2) + "\n")
    write(ws)
    assert (
        "SPLIT_INTERNAL = 8" in (ws.root / "packages/leyline/src/esper/leyline/contracts/lifecycle_op.py").read_text()
    )

    # The copy's packages come first on the path, so its regenerated esper.leyline is the one imported.
    src_dirs = sorted(str(p) for p in (ws.root / "packages").glob("*/src"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ws.root), *src_dirs])}

    def coverage_run() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_consumer_coverage.py"],
            cwd=ws.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        return output

    # 1. The causal-relevance table is needed as soon as Tamiyo is imported: the failure names it.
    first = coverage_run()
    assert "leyline HEAD_RELEVANCE_BY_OP (causal relevance) does not handle LifecycleOp.SPLIT_INTERNAL (8)" in first

    # 2. Handle it as a developer would; the next run names the remaining consumer (the reward cost).
    actions = ws.root / "packages/leyline/src/esper/leyline/actions.py"
    row = "        OP.SHRINK_INTERNAL: frozenset({H.OP, H.SLOT}),\n"
    assert row in actions.read_text()
    actions.write_text(actions.read_text().replace(row, row + "        OP(8): frozenset({H.OP, H.SLOT}),\n"))
    second = coverage_run()
    assert "simic RewardConfig.intervention_costs (schema default) does not handle LifecycleOp.SPLIT_INTERNAL" in second
    failed = [line for line in second.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1, second  # everything else, keyed by other enums, still passes
