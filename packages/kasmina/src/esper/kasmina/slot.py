"""SeedSlot: one injection point and the lifecycle of the seed that lives there.

Stages follow leyline's VALID_TRANSITIONS exactly. What a stage does is declared in two tables keyed by SeedStage
(FORWARD_MODE and the per-epoch tick), both covered for every member by the consumer-coverage tests.

Forward, by mode:
- PASS: the input goes through untouched (dormant, germinated, failure stages): no cost.
- INCUBATE (TRAINING): the input goes through untouched; the seed learns on the model's incubation path instead
  (`incubate`, driven by MorphogeneticModel.forward): blended in at its target amplitude on detached host features,
  so it sees the loss it would cause once blended while the host trains as if it were not there.
- BLEND (BLENDING, HOLDING): the seed sees detached host features; its delta is composed by the blend operator
  with amplitude alpha.
- FUSED (FOSSILIZED): as BLEND but without isolation: the seed is part of the host now.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

import torch
from torch import nn

from esper.kasmina.alpha import AlphaController, GatedBlend, blend
from esper.kasmina.blueprints import MicrostructuredSeed, build_seed, count_trainable, seed_group_size
from esper.kasmina.ddp import LOCAL, RankSymmetry
from esper.kasmina.gates import QualityGates
from esper.kasmina.state import AccuracyRecord, GradientStats, SeedState
from esper.leyline import (
    BLUEPRINT_IDS,
    BLUEPRINT_INTERNAL_KIND,
    INTERNAL_OP_STAGES,
    LIVE_STAGES,
    STYLE_BLEND,
    AlphaAlgorithm,
    AlphaCurve,
    BlueprintAction,
    Emitter,
    GateResult,
    GerminationStyle,
    LifecycleOp,
    Payload,
    PruneInitiator,
    SeedEpoch,
    SeedFossilizedPayload,
    SeedGateEvaluatedPayload,
    SeedGerminatedPayload,
    SeedInternalKind,
    SeedInternalLevelChangedPayload,
    SeedMetrics,
    SeedPrunedPayload,
    SeedStage,
    SeedStageChangedPayload,
    SeedStateReport,
    SurfaceType,
    Topology,
    advance_target,
    check_seed_state_report,
    is_valid_transition,
)

S = SeedStage
DEFAULT_EMBARGO_EPOCHS: Final = 5
DEFAULT_STEEPNESS: Final = 12.0


LEVEL_STEP: Final = MappingProxyType({LifecycleOp.GROW_INTERNAL: +1, LifecycleOp.SHRINK_INTERNAL: -1})


class IllegalOperation(RuntimeError):
    """An op that the seed's stage does not allow."""

    def __init__(self, slot_id: str, stage: SeedStage, op: LifecycleOp, reason: str) -> None:
        self.slot_id, self.stage, self.op, self.reason = slot_id, stage, op, reason
        super().__init__(f"slot {slot_id} ({stage.name}): {op.name} is illegal: {reason}")


class ForwardMode(enum.Enum):
    PASS = "pass"
    INCUBATE = "incubate"
    BLEND = "blend"
    FUSED = "fused"


FORWARD_MODE: Final[Mapping[SeedStage, ForwardMode]] = MappingProxyType(
    {
        S.UNKNOWN: ForwardMode.PASS,
        S.DORMANT: ForwardMode.PASS,
        S.GERMINATED: ForwardMode.PASS,
        S.TRAINING: ForwardMode.INCUBATE,
        S.BLENDING: ForwardMode.BLEND,
        S.HOLDING: ForwardMode.BLEND,
        S.FOSSILIZED: ForwardMode.FUSED,
        S.PRUNED: ForwardMode.PASS,
        S.EMBARGOED: ForwardMode.PASS,
        S.RESETTING: ForwardMode.PASS,
    }
)


class SeedSlot(nn.Module):
    def __init__(
        self,
        slot_id: str,
        channels: int,
        topology: Topology,
        gates: QualityGates,
        emitter: Emitter,
        *,
        surface: SurfaceType,
        embargo_epochs: int = DEFAULT_EMBARGO_EPOCHS,
        symmetry: RankSymmetry = LOCAL,
        seed_width: int | None = None,
    ) -> None:
        """`surface`: where in the host the slot sits (its InjectionSpec's; SEED_GERMINATED carries it).
        `seed_width`: the internal width of the CNN conv seeds (None: this slot's channels)."""
        super().__init__()
        if embargo_epochs < 1:
            raise ValueError(f"embargo_epochs must be >= 1, got {embargo_epochs}")
        self.slot_id = slot_id
        self.surface = surface
        self.channels = channels
        self.topology = topology
        self.gates = gates
        self.embargo_epochs = embargo_epochs
        self.symmetry = symmetry
        self.seed_width = seed_width
        self._emitter = emitter
        self.seed: nn.Module | None = None
        self.gate: GatedBlend | None = None
        self.state: SeedState | None = None
        # |delta| / |x| summed over this epoch's training batches, as a tensor so measuring never syncs a device.
        self._ratio_sum: torch.Tensor | None = None
        self._ratio_batches = 0
        self._tick: Mapping[SeedStage, Callable[[SeedState], None]] = MappingProxyType(
            {
                S.UNKNOWN: self._tick_impossible,
                S.DORMANT: self._tick_impossible,
                S.GERMINATED: self._tick_live,
                S.TRAINING: self._tick_live,
                S.BLENDING: self._tick_blending,
                S.HOLDING: self._tick_live,
                S.FOSSILIZED: self._tick_live,
                S.PRUNED: self._tick_pruned,
                S.EMBARGOED: self._tick_embargoed,
                S.RESETTING: self._tick_resetting,
            }
        )

    # ------------------------------------------------------------------ queries
    @property
    def stage(self) -> SeedStage:
        return S.DORMANT if self.state is None else self.state.stage

    @property
    def alpha(self) -> float:
        return 0.0 if self.state is None else self.state.alpha.alpha

    def incubating(self) -> bool:
        return FORWARD_MODE[self.stage] is ForwardMode.INCUBATE and self.seed is not None

    def counterfactual_eligible(self) -> bool:
        """A blending or holding seed with alpha > 0: its contribution is measured by switching it off.
        (Fossilized seeds are part of the host; incubating seeds do not change the forward value.)"""
        return self.stage in (S.BLENDING, S.HOLDING) and self.alpha > 0.0

    def microstructure(self) -> MicrostructuredSeed | None:
        return self.seed if isinstance(self.seed, MicrostructuredSeed) else None

    def seed_param_count(self) -> int:
        """Parameters the seed adds at its current structure (a ladder counts only its active levels)."""
        if self.seed is None:
            return 0
        ladder = self.microstructure()
        own = ladder.active_param_count() if ladder is not None else sum(p.numel() for p in self.seed.parameters())
        return own + (0 if self.gate is None else sum(p.numel() for p in self.gate.parameters()))

    def _live_state(self, op: LifecycleOp, allowed: frozenset[SeedStage]) -> SeedState:
        if self.state is None or self.state.stage not in allowed:
            names = ", ".join(s.name for s in SeedStage if s in allowed)
            raise IllegalOperation(self.slot_id, self.stage, op, f"allowed only in {names}")
        return self.state

    # ------------------------------------------------------------------ telemetry
    def _emit(self, payload: Payload) -> None:
        self._emitter.emit(payload, slot_id=self.slot_id)

    def _transition(self, state: SeedState, target: SeedStage) -> None:
        if not is_valid_transition(state.stage, target):
            raise AssertionError(f"slot {self.slot_id}: {state.stage.name} -> {target.name} is not in the table")
        source, epochs = state.stage, state.epochs_in_stage
        state.enter(target)
        self._emit(
            SeedStageChangedPayload(
                seed_id=state.seed_id,
                blueprint_id=BLUEPRINT_IDS[state.blueprint],
                from_stage=source,
                to_stage=target,
                epochs_in_previous_stage=epochs,
                alpha=state.alpha.alpha,
            )
        )

    # ------------------------------------------------------------------ ops
    def germinate(
        self,
        blueprint: BlueprintAction,
        seed_id: str,
        style: GerminationStyle,
        tempo_epochs: int,
        alpha_target: float,
        host_params: int,
    ) -> int:
        """Create a seed in this empty slot; returns its parameter count (from the built module)."""
        if self.state is not None:
            raise IllegalOperation(self.slot_id, self.stage, LifecycleOp.GERMINATE, "the slot is not empty")
        if not 0.0 < alpha_target <= 1.0:
            raise ValueError(f"alpha_target must be in (0, 1], got {alpha_target}")
        if tempo_epochs < 1:
            raise ValueError(f"tempo_epochs must be >= 1, got {tempo_epochs}")
        seed = build_seed(self.topology, blueprint, self.channels, self.seed_width)
        self._probe_shape(seed)
        device = next((p.device for p in self.parameters()), None)
        if device is not None:
            seed = seed.to(device)
        blend_curve, algorithm = STYLE_BLEND[style]
        kind = BLUEPRINT_INTERNAL_KIND[blueprint]
        self.seed = seed
        self._ratio_sum, self._ratio_batches = None, 0
        ladder = self.microstructure()
        if (ladder is None) != (kind is SeedInternalKind.NONE):
            raise AssertionError(f"blueprint {blueprint.name}: internal kind {kind.name} does not match its module")
        self.gate = GatedBlend(self.channels) if algorithm is AlphaAlgorithm.GATE else None
        self.state = SeedState(
            seed_id=seed_id,
            blueprint=blueprint,
            stage=S.DORMANT,
            alpha_algorithm=algorithm,
            blend_curve=blend_curve,
            blend_tempo_epochs=tempo_epochs,
            alpha_target=alpha_target,
            seed_params=count_trainable(seed),
            host_params=host_params,
            internal_kind=kind,
            internal_level=0 if ladder is None else ladder.internal_level,
            internal_max_level=1 if ladder is None else ladder.internal_max_level,
            internal_group_size=seed_group_size(seed),
        )
        gate = self._decide_gate(S.GERMINATED)
        if not gate.passed:
            self.seed, self.gate, self.state = None, None, None
            raise IllegalOperation(self.slot_id, S.DORMANT, LifecycleOp.GERMINATE, gate.message)
        self._emit(
            SeedGerminatedPayload(
                seed_id=seed_id,
                blueprint=blueprint,
                blueprint_id=BLUEPRINT_IDS[blueprint],
                style=style,
                blend_tempo_epochs=tempo_epochs,
                alpha_target=alpha_target,
                params=self.seed_param_count(),
                internal_kind=kind,
                internal_level=self.state.internal_level,
                internal_max_level=self.state.internal_max_level,
                internal_group_size=self.state.internal_group_size,
                surface=self.surface,
            )
        )
        self._transition(self.state, S.GERMINATED)
        return self.seed_param_count()

    def _probe_shape(self, seed: nn.Module) -> None:
        probe = (
            torch.randn(2, self.channels, 8, 8) if self.topology is Topology.CNN else torch.randn(2, 8, self.channels)
        )
        was_training = seed.training
        seed.eval()
        with torch.no_grad():
            out = seed(probe)
        seed.train(was_training)
        if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
            raise ValueError(f"seed for slot {self.slot_id} does not preserve shape {tuple(probe.shape)}")

    def _decide_gate(self, target: SeedStage) -> GateResult:
        """Evaluate the gate locally, adopt rank 0's result, and report it."""
        assert self.state is not None
        result = self.symmetry.decide(self.gates.evaluate(target, self.state))
        self._emit(SeedGateEvaluatedPayload(seed_id=self.state.seed_id, result=result))
        return result

    def advance(self) -> GateResult:
        """ADVANCE: GERMINATED -> TRAINING -> BLENDING -> HOLDING, each through its gate."""
        state = self._live_state(LifecycleOp.ADVANCE, frozenset({S.GERMINATED, S.TRAINING, S.BLENDING}))
        target = advance_target(state.stage)
        result = self._decide_gate(target)
        if result.passed:
            self._transition(state, target)
            if target is S.BLENDING:
                state.alpha.retarget(state.alpha_target, state.blend_tempo_epochs, state.blend_curve, DEFAULT_STEEPNESS)
        return result

    def fossilize(self) -> GateResult:
        """FOSSILIZE: HOLDING -> FOSSILIZED through G5. Terminal: the seed becomes part of the host."""
        state = self._live_state(LifecycleOp.FOSSILIZE, frozenset({S.HOLDING}))
        result = self._decide_gate(S.FOSSILIZED)
        if result.passed:
            self._transition(state, S.FOSSILIZED)
            self._emit(
                SeedFossilizedPayload(
                    seed_id=state.seed_id,
                    blueprint_id=BLUEPRINT_IDS[state.blueprint],
                    params_added=self.seed_param_count(),
                    epochs_total=state.epochs_total,
                    counterfactual_contribution=state.contribution,
                    total_improvement=state.accuracy.current - (state.accuracy.initial or 0.0),
                )
            )
        return result

    def prune(
        self,
        steps: int = 0,
        curve: AlphaCurve = AlphaCurve.LINEAR,
        steepness: float = DEFAULT_STEEPNESS,
        initiator: PruneInitiator = PruneInitiator.POLICY,
        reason: str = "policy",
    ) -> None:
        """PRUNE: remove now (steps == 0, or the seed does not reach the host yet), or ramp alpha to zero over
        `steps` epochs from where it is (a ramp in progress is replaced) with the seed frozen, and remove it when
        alpha arrives (a scheduled prune)."""
        state = self._live_state(LifecycleOp.PRUNE, LIVE_STAGES)
        if steps == 0 or state.alpha.alpha == 0.0 or initiator is PruneInitiator.GOVERNOR:
            self._prune_now(state, initiator, reason)
            return
        if state.stage is S.HOLDING:
            self._transition(state, S.BLENDING)
        state.alpha.retarget(0.0, steps, curve, steepness)
        state.prune_pending = True
        self._set_frozen(True)

    def _set_frozen(self, frozen: bool) -> None:
        assert self.seed is not None
        ladder = self.microstructure()
        if ladder is not None:
            ladder.set_frozen(frozen)
        else:
            self.seed.requires_grad_(not frozen)
        if self.gate is not None:
            self.gate.requires_grad_(not frozen)

    def _prune_now(self, state: SeedState, initiator: PruneInitiator, reason: str) -> None:
        from_stage, params = state.stage, self.seed_param_count()
        self.seed, self.gate = None, None
        self._ratio_sum, self._ratio_batches = None, 0
        state.delta_ratio = None  # nothing of the seed is left to measure
        state.alpha = AlphaController()
        state.prune_pending = False
        self._transition(state, S.PRUNED)
        self._emit(
            SeedPrunedPayload(
                seed_id=state.seed_id,
                blueprint_id=BLUEPRINT_IDS[state.blueprint],
                initiator=initiator,
                reason=reason,
                from_stage=from_stage,
                epochs_total=state.epochs_total,
                params_removed=params,
                counterfactual_contribution=state.contribution,
            )
        )

    def set_alpha_target(
        self,
        target: float,
        steps: int,
        curve: AlphaCurve,
        steepness: float = DEFAULT_STEEPNESS,
        algorithm: AlphaAlgorithm | None = None,
    ) -> None:
        """SET_ALPHA_TARGET on a BLENDING or HOLDING seed that is not being pruned (a ramp in progress is replaced
        from the current alpha); a HOLDING seed retargeted below full amplitude goes back to BLENDING."""
        state = self._live_state(LifecycleOp.SET_ALPHA_TARGET, frozenset({S.BLENDING, S.HOLDING}))
        if state.prune_pending:
            raise IllegalOperation(self.slot_id, state.stage, LifecycleOp.SET_ALPHA_TARGET, "the seed is being pruned")
        if not 0.0 < target <= 1.0:
            raise ValueError(f"alpha target must be in (0, 1], got {target}")
        if algorithm is not None and algorithm is not state.alpha_algorithm:
            state.alpha_algorithm = algorithm
            self.gate = GatedBlend(self.channels).to(self._device()) if algorithm is AlphaAlgorithm.GATE else None
        if state.stage is S.HOLDING and target < 1.0:
            self._transition(state, S.BLENDING)
        state.alpha_target = target
        state.alpha.retarget(target, steps, curve, steepness)

    def _device(self) -> torch.device:
        assert self.seed is not None
        return next((p.device for p in self.seed.parameters()), torch.device("cpu"))

    def change_internal_level(self, op: LifecycleOp) -> bool:
        """GROW_INTERNAL or SHRINK_INTERNAL: move the internal level one step. Legal only in TRAINING, BLENDING and
        HOLDING on a microstructured seed; a no-op (False) at the bounds. The new level is decided on rank 0."""
        if op not in LEVEL_STEP:
            raise ValueError(f"{op.name} is not an internal op; internal ops: {[o.name for o in LEVEL_STEP]}")
        step = LEVEL_STEP[op]
        state = self._live_state(op, INTERNAL_OP_STAGES)
        ladder = self.microstructure()
        if ladder is None:
            raise IllegalOperation(self.slot_id, state.stage, op, "the seed has no internal structure")
        current = ladder.internal_level
        proposed = min(max(current + step, 0), ladder.internal_max_level)
        decided = self.symmetry.decide(proposed)
        if decided == current:
            return False
        ladder.set_internal_level(decided)
        state.internal_level = decided
        self._emit(
            SeedInternalLevelChangedPayload(
                seed_id=state.seed_id,
                blueprint_id=BLUEPRINT_IDS[state.blueprint],
                internal_kind=ladder.internal_kind,
                from_level=current,
                to_level=decided,
                max_level=ladder.internal_max_level,
                active_params=ladder.active_param_count(),
                group_size=state.internal_group_size,
            )
        )
        return True

    # ------------------------------------------------------------------ per-epoch bookkeeping
    def record_validation(self, accuracy: float, contribution: float | None) -> None:
        """Host validation accuracy after this epoch (whole model) and, where measured, this seed's contribution."""
        state = self.state
        if state is None or state.stage not in LIVE_STAGES | {S.FOSSILIZED}:
            return
        state.accuracy.record(accuracy)
        if contribution is not None:
            state.record_contribution(contribution)
        elif state.epochs_since_contribution is not None:
            state.epochs_since_contribution += 1

    def record_gradients(self, host_grad_norm: float, host_params: int) -> None:
        """Seed gradient norm of the last backward pass (call between backward and the optimizer step)."""
        if self.seed is None or self.state is None:
            return
        grads = [p.grad for p in self.seed.parameters() if p.requires_grad and p.grad is not None]
        if not grads:
            return
        norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
        self.state.gradients.record(norm, host_grad_norm, max(self.seed_param_count(), 1), host_params)
        if not math.isfinite(norm):
            self.state.is_healthy = False

    def step_epoch(self) -> None:
        """The per-epoch tick: alpha schedules move, dwell counters advance, failure stages cycle back to DORMANT."""
        if self.state is not None:
            self._close_delta_ratio(self.state)
            self._tick[self.state.stage](self.state)

    def _measure_delta(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        """Accumulate this training batch's |delta| / |x| (norms over the whole batch)."""
        with torch.no_grad():
            ratio = torch.linalg.vector_norm(delta) / torch.linalg.vector_norm(x).clamp_min(1e-12)
            self._ratio_sum = ratio if self._ratio_sum is None else self._ratio_sum + ratio
            self._ratio_batches += 1

    def _close_delta_ratio(self, state: SeedState) -> None:
        """The epoch's mean |delta| / |x| becomes the seed's reading (kept when no training batch measured it)."""
        if self._ratio_sum is not None and self._ratio_batches > 0:
            ratio = float(self._ratio_sum) / self._ratio_batches
            finite = math.isfinite(ratio)
            state.delta_ratio = ratio if finite else None
            state.is_healthy = state.is_healthy and finite  # a seed whose output diverged is not healthy
        self._ratio_sum, self._ratio_batches = None, 0

    def delta_ratio(self) -> float | None:
        """The seed's |delta| / |x| over the last finished epoch's training batches (None before one)."""
        return None if self.state is None else self.state.delta_ratio

    def _tick_impossible(self, state: SeedState) -> None:
        raise AssertionError(f"slot {self.slot_id} holds a seed in stage {state.stage.name}")

    def _tick_live(self, state: SeedState) -> None:
        state.epochs_total += 1
        state.epochs_in_stage += 1

    def _tick_blending(self, state: SeedState) -> None:
        self._tick_live(state)
        arrived = state.alpha.step()
        if arrived and state.prune_pending:
            self._prune_now(state, PruneInitiator.SCHEDULE, "scheduled prune finished")

    def _tick_pruned(self, state: SeedState) -> None:
        self._transition(state, S.EMBARGOED)

    def _tick_embargoed(self, state: SeedState) -> None:
        state.epochs_in_stage += 1
        if state.epochs_in_stage >= self.embargo_epochs:
            self._transition(state, S.RESETTING)

    def _tick_resetting(self, state: SeedState) -> None:
        self._transition(state, S.DORMANT)
        self.state = None

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, measure: bool = True) -> torch.Tensor:
        """`measure`: count this training batch in the seed's |delta| / |x| (off on the incubation path, which
        repeats it)."""
        mode = FORWARD_MODE[self.stage]
        if mode in (ForwardMode.PASS, ForwardMode.INCUBATE) or self.seed is None or self.state is None:
            return x
        seed_input = x.detach() if mode is ForwardMode.BLEND else x
        seed_output = self.seed(seed_input)
        if measure and self.training and torch.is_grad_enabled():
            self._measure_delta(seed_input, seed_output - seed_input)
        return blend(self.state.alpha_algorithm, x, seed_input, seed_output, self.state.alpha.alpha, self.gate)

    def incubate(self, stream: torch.Tensor) -> torch.Tensor:
        """The incubation path through this TRAINING seed: `stream` with the seed blended in at its target amplitude.
        The seed sees `stream` detached, as it will once blending; what reaches `stream` is only the host term."""
        if self.seed is None or self.state is None or not self.incubating():
            raise AssertionError(f"slot {self.slot_id} ({self.stage.name}) has no incubating seed")
        seed_input = stream.detach()
        seed_output = self.seed(seed_input)
        self._measure_delta(seed_input, seed_output - seed_input)
        return blend(self.state.alpha_algorithm, stream, seed_input, seed_output, self.state.alpha_target, self.gate)

    # ------------------------------------------------------------------ reports
    def epoch_record(self) -> SeedEpoch | None:
        """The seed as EPOCH_COMPLETED carries it (None for an empty slot)."""
        state = self.state
        if state is None:
            return None
        return SeedEpoch(
            slot_id=self.slot_id,
            seed_id=state.seed_id,
            blueprint_id=BLUEPRINT_IDS[state.blueprint],
            stage=state.stage,
            alpha=state.alpha.alpha,
            delta_ratio=state.delta_ratio,
            counterfactual_contribution=state.contribution,
        )

    def report(self) -> SeedStateReport | None:
        state = self.state
        if state is None:
            return None
        gradients: GradientStats = state.gradients
        accuracy: AccuracyRecord = state.accuracy
        initial = accuracy.initial if accuracy.initial is not None else 0.0
        at_start = accuracy.at_stage_start if accuracy.at_stage_start is not None else accuracy.current
        ladder = self.microstructure()
        metrics = SeedMetrics(
            epochs_total=state.epochs_total,
            epochs_in_current_stage=state.epochs_in_stage,
            initial_val_accuracy=initial,
            current_val_accuracy=accuracy.current,
            best_val_accuracy=accuracy.best,
            accuracy_at_stage_start=at_start,
            total_improvement=accuracy.current - initial,
            improvement_since_stage_start=accuracy.current - at_start,
            counterfactual_contribution=state.contribution,
            contribution_velocity=state.contribution_velocity,
            epochs_since_counterfactual=state.epochs_since_contribution,
            seed_gradient_norm_ratio=gradients.ratio,
            gradient_norm=gradients.norm if gradients.norm is not None and math.isfinite(gradients.norm) else None,
            gradient_health=gradients.health,
            has_vanishing=gradients.has_vanishing,
            has_exploding=gradients.has_exploding,
            seed_param_count=self.seed_param_count(),
            host_param_count=state.host_params,
            delta_ratio=state.delta_ratio,
        )
        controller = state.alpha
        return check_seed_state_report(
            SeedStateReport(
                seed_id=state.seed_id,
                slot_id=self.slot_id,
                blueprint=state.blueprint,
                blueprint_id=BLUEPRINT_IDS[state.blueprint],
                stage=state.stage,
                previous_stage=state.previous_stage,
                previous_epochs_in_stage=state.previous_epochs_in_stage,
                alpha=controller.alpha,
                alpha_target=controller.target,
                alpha_mode=controller.mode,
                alpha_curve=controller.curve,
                alpha_algorithm=state.alpha_algorithm,
                alpha_steps_total=controller.steps_total,
                alpha_steps_done=controller.steps_done,
                blend_tempo_epochs=state.blend_tempo_epochs,
                metrics=metrics,
                is_healthy=state.is_healthy,
                internal_kind=state.internal_kind,
                internal_level=state.internal_level,
                internal_max_level=state.internal_max_level,
                internal_group_size=state.internal_group_size,
                internal_active_params=ladder.active_param_count() if ladder is not None else self.seed_param_count(),
            )
        )
