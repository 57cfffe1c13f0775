"""Quality gates guarding stage transitions, in permissive (RL default) and strict modes.

A gate's checks are of two kinds. Rules known in advance from the seed's report (epochs in stage, alpha holding at
full amplitude, a contribution measured at all) are leyline's structural rule set too (`ActionLimits` from
`QualityGates.limits`), so masks never offer an ADVANCE or FOSSILIZE that such a check would refuse. The rest
compare measurements with thresholds (MEASURED_CHECKS): a refusal by one of them is a gate outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from esper.kasmina.state import SeedState
from esper.leyline import MIN_TRAINING_EPOCHS, ActionLimits, AlphaMode, GateLevel, GateResult, SeedStage

S = SeedStage
GATE_FOR_TARGET = {
    S.GERMINATED: GateLevel.G0,
    S.TRAINING: GateLevel.G1,
    S.BLENDING: GateLevel.G2,
    S.HOLDING: GateLevel.G3,
    S.FOSSILIZED: GateLevel.G5,
}
# Checks whose verdict depends on measured values; every other check is a structural rule (leyline.validity).
MEASURED_CHECKS = frozenset(
    {
        "gradients_measured",
        "gradients_not_exploding",
        "min_gradient_health",
        "min_improvement",
        "min_gradient_ratio",
        "is_healthy",
        "min_contribution",
    }
)


class GateMode(StrEnum):
    PERMISSIVE = "permissive"
    STRICT = "strict"


@dataclass(frozen=True, slots=True)
class GateThresholds:
    min_training_epochs: int = MIN_TRAINING_EPOCHS  # G2: epochs in TRAINING before BLENDING
    min_gradient_health: float = 0.7  # G2 permissive
    min_training_improvement: float = 0.5  # G2 strict, percentage points
    min_gradient_ratio: float = 0.10  # G2 strict
    min_blending_epochs: int = 10  # G3 strict
    min_fossilize_contribution: float = 1.0  # G5 strict, percentage points


class QualityGates:
    def __init__(self, mode: GateMode = GateMode.PERMISSIVE, thresholds: GateThresholds | None = None) -> None:
        self.mode = mode
        self.thresholds = thresholds if thresholds is not None else GateThresholds()

    def limits(self, max_seeds: int | None = None) -> ActionLimits:
        """The structural rules these gates imply, for the masks and the environment."""
        strict = self.mode is GateMode.STRICT
        return ActionLimits(
            min_training_epochs=self.thresholds.min_training_epochs,
            min_blending_epochs=self.thresholds.min_blending_epochs if strict else 0,
            max_seeds=max_seeds,
        )

    def evaluate(self, target: SeedStage, state: SeedState) -> GateResult:
        if target not in GATE_FOR_TARGET:
            raise ValueError(f"no quality gate guards a transition into {target.name}")
        gate = GATE_FOR_TARGET[target]
        checks = self._checks(gate, state)
        passed = [name for name, ok in checks if ok]
        failed = [name for name, ok in checks if not ok]
        message = "all checks passed" if not failed else "failed: " + ", ".join(failed)
        return GateResult(
            gate=gate,
            target_stage=target,
            passed=not failed,
            checks_passed=tuple(passed),
            checks_failed=tuple(failed),
            message=message,
        )

    def _checks(self, gate: GateLevel, state: SeedState) -> list[tuple[str, bool]]:
        t, strict = self.thresholds, self.mode is GateMode.STRICT
        if gate is GateLevel.G0:
            return [("has_seed_id", bool(state.seed_id))]
        if gate is GateLevel.G1:
            return [("is_germinated", state.stage is S.GERMINATED)]
        if gate is GateLevel.G2:
            checks = [("min_training_epochs", state.epochs_in_stage >= t.min_training_epochs)]
            if strict:
                start = state.accuracy.at_stage_start
                improvement = 0.0 if start is None else state.accuracy.current - start
                checks.append(("min_improvement", improvement >= t.min_training_improvement))
                checks.append(("min_gradient_ratio", state.gradients.ratio >= t.min_gradient_ratio))
            else:
                health = state.gradients.health
                checks.append(("gradients_measured", health is not None))
                checks.append(("gradients_not_exploding", state.gradients.has_exploding is False))
                checks.append(("min_gradient_health", health is not None and health >= t.min_gradient_health))
            return checks
        if gate is GateLevel.G3:
            controller = state.alpha
            checks = [
                ("alpha_target_full", controller.target >= 1.0 - 1e-6),
                ("alpha_holding_at_target", controller.mode is AlphaMode.HOLD and abs(controller.alpha - 1.0) <= 1e-6),
            ]
            if strict:
                checks.append(("min_blending_epochs", state.epochs_in_stage >= t.min_blending_epochs))
            return checks
        # G5: fossilize on measured contribution.
        checks = [("contribution_measured", state.contribution is not None), ("is_healthy", state.is_healthy)]
        if strict:
            contribution = state.contribution
            checks.append(
                ("min_contribution", contribution is not None and contribution >= t.min_fossilize_contribution)
            )
        return checks
