"""The telemetry hub: producers emit typed payloads; the hub wraps them in the envelope and fans out to sinks.

Context (run id, env id, episode, epoch) is owned by the hub and the per-environment emitters it hands out, never by
payloads: Kasmina emits `SeedGerminatedPayload(...)` with a slot id and knows nothing of environments.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

from esper.leyline.contracts.action_taken_payload import ActionTakenPayload
from esper.leyline.contracts.checkpoint_loaded_payload import CheckpointLoadedPayload
from esper.leyline.contracts.checkpoint_saved_payload import CheckpointSavedPayload
from esper.leyline.contracts.counterfactual_delta_payload import CounterfactualDeltaPayload
from esper.leyline.contracts.episode_outcome_payload import EpisodeOutcomePayload
from esper.leyline.contracts.epoch_completed_payload import EpochCompletedPayload
from esper.leyline.contracts.governor_rollback_payload import GovernorRollbackPayload
from esper.leyline.contracts.host_baseline_epoch_payload import HostBaselineEpochPayload
from esper.leyline.contracts.internal_op_metrics_payload import InternalOpMetricsPayload
from esper.leyline.contracts.ppo_update_completed_payload import PpoUpdateCompletedPayload
from esper.leyline.contracts.reward_computed_payload import RewardComputedPayload
from esper.leyline.contracts.seed_fossilized_payload import SeedFossilizedPayload
from esper.leyline.contracts.seed_gate_evaluated_payload import SeedGateEvaluatedPayload
from esper.leyline.contracts.seed_germinated_payload import SeedGerminatedPayload
from esper.leyline.contracts.seed_internal_level_changed_payload import SeedInternalLevelChangedPayload
from esper.leyline.contracts.seed_pruned_payload import SeedPrunedPayload
from esper.leyline.contracts.seed_stage_changed_payload import SeedStageChangedPayload
from esper.leyline.contracts.severity import Severity
from esper.leyline.contracts.telemetry_event import TelemetryEvent
from esper.leyline.contracts.telemetry_event_type import TelemetryEventType
from esper.leyline.contracts.training_completed_payload import TrainingCompletedPayload
from esper.leyline.contracts.training_started_payload import TrainingStartedPayload
from esper.leyline.slots import parse_slot_id

E = TelemetryEventType
Payload = (
    TrainingStartedPayload
    | TrainingCompletedPayload
    | EpochCompletedPayload
    | SeedGerminatedPayload
    | SeedStageChangedPayload
    | SeedGateEvaluatedPayload
    | SeedFossilizedPayload
    | SeedPrunedPayload
    | SeedInternalLevelChangedPayload
    | ActionTakenPayload
    | RewardComputedPayload
    | EpisodeOutcomePayload
    | PpoUpdateCompletedPayload
    | InternalOpMetricsPayload
    | CounterfactualDeltaPayload
    | GovernorRollbackPayload
    | CheckpointSavedPayload
    | CheckpointLoadedPayload
    | HostBaselineEpochPayload
)

# One payload type per event type (checked against the envelope schema's if/then bindings by a test).
EVENT_PAYLOAD_TYPES: Final[Mapping[TelemetryEventType, type[Payload]]] = MappingProxyType(
    {
        E.TRAINING_STARTED: TrainingStartedPayload,
        E.TRAINING_COMPLETED: TrainingCompletedPayload,
        E.EPOCH_COMPLETED: EpochCompletedPayload,
        E.SEED_GERMINATED: SeedGerminatedPayload,
        E.SEED_STAGE_CHANGED: SeedStageChangedPayload,
        E.SEED_GATE_EVALUATED: SeedGateEvaluatedPayload,
        E.SEED_FOSSILIZED: SeedFossilizedPayload,
        E.SEED_PRUNED: SeedPrunedPayload,
        E.SEED_INTERNAL_LEVEL_CHANGED: SeedInternalLevelChangedPayload,
        E.ACTION_TAKEN: ActionTakenPayload,
        E.REWARD_COMPUTED: RewardComputedPayload,
        E.EPISODE_OUTCOME: EpisodeOutcomePayload,
        E.PPO_UPDATE_COMPLETED: PpoUpdateCompletedPayload,
        E.INTERNAL_OP_METRICS: InternalOpMetricsPayload,
        E.COUNTERFACTUAL_DELTA: CounterfactualDeltaPayload,
        E.GOVERNOR_ROLLBACK: GovernorRollbackPayload,
        E.CHECKPOINT_SAVED: CheckpointSavedPayload,
        E.CHECKPOINT_LOADED: CheckpointLoadedPayload,
        E.HOST_BASELINE_EPOCH: HostBaselineEpochPayload,
    }
)
EVENT_TYPE_OF_PAYLOAD: Final[Mapping[type[Payload], TelemetryEventType]] = MappingProxyType(
    {payload: event for event, payload in EVENT_PAYLOAD_TYPES.items()}
)


@runtime_checkable
class TelemetrySink(Protocol):
    """Receives every event of a run (JSONL file, console, live dashboards...)."""

    def write(self, event: TelemetryEvent) -> None: ...

    def close(self) -> None: ...


class Emitter(Protocol):
    """What producers (Kasmina slots, the environment, the trainer) need: emit a payload."""

    def emit(self, payload: Payload, *, slot_id: str | None = None, severity: Severity = Severity.INFO) -> None: ...


class TelemetryHub:
    """Fan-out of one run's events. `emitter(env_id)` gives an environment its context-carrying emitter;
    `emit` on the hub itself is for run-level events (no environment)."""

    def __init__(
        self,
        run_id: str,
        sinks: tuple[TelemetrySink, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rank: int = 0,
    ) -> None:
        if not run_id:
            raise ValueError("run_id must be a non-empty string")
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.run_id = run_id
        self.rank = rank
        self._sinks: list[TelemetrySink] = []
        self._clock = clock
        for sink in sinks:
            self.add_sink(sink)

    def add_sink(self, sink: TelemetrySink) -> None:
        if not isinstance(sink, TelemetrySink):
            raise TypeError(f"{type(sink).__name__} is not a TelemetrySink (needs write(event) and close())")
        self._sinks.append(sink)

    def emitter(self, env_id: int) -> EnvEmitter:
        if env_id < 0:
            raise ValueError(f"env_id must be >= 0, got {env_id}")
        return EnvEmitter(self, env_id)

    def emit(self, payload: Payload, *, slot_id: str | None = None, severity: Severity = Severity.INFO) -> None:
        self.publish(payload, env_id=None, episode=None, epoch=None, slot_id=slot_id, severity=severity)

    def publish(
        self,
        payload: Payload,
        *,
        env_id: int | None,
        episode: int | None,
        epoch: int | None,
        slot_id: str | None,
        severity: Severity,
    ) -> TelemetryEvent:
        payload_type = type(payload)
        if payload_type not in EVENT_TYPE_OF_PAYLOAD:
            raise TypeError(f"{payload_type.__name__} is not a telemetry payload")
        if slot_id is not None:
            parse_slot_id(slot_id)
        event = TelemetryEvent(
            event_id=str(uuid.uuid4()),
            event_type=EVENT_TYPE_OF_PAYLOAD[payload_type],
            timestamp=self._clock().isoformat(),
            run_id=self.run_id,
            rank=self.rank,
            env_id=env_id,
            episode=episode,
            epoch=epoch,
            slot_id=slot_id,
            severity=severity,
            payload=payload,
        )
        for sink in self._sinks:
            sink.write(event)
        return event

    def forward(self, event: TelemetryEvent) -> None:
        """Write an event another process of this run produced (a torch.distributed rank relaying to rank 0)."""
        if event.run_id != self.run_id:
            raise ValueError(f"event of run {event.run_id!r} forwarded to the hub of run {self.run_id!r}")
        for sink in self._sinks:
            sink.write(event)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


class EnvEmitter:
    """Emitter of one environment; the environment loop advances its episode and epoch."""

    def __init__(self, hub: TelemetryHub, env_id: int) -> None:
        self._hub = hub
        self.env_id = env_id
        self.episode: int | None = None
        self.epoch: int | None = None

    @property
    def run_id(self) -> str:
        return self._hub.run_id

    def start_episode(self, episode: int) -> None:
        self.episode = episode
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if self.episode is None:
            raise RuntimeError("set_epoch before start_episode")
        self.epoch = epoch

    def emit(self, payload: Payload, *, slot_id: str | None = None, severity: Severity = Severity.INFO) -> None:
        self._hub.publish(
            payload,
            env_id=self.env_id,
            episode=self.episode,
            epoch=self.epoch,
            slot_id=slot_id,
            severity=severity,
        )


class ListSink:
    """Keeps events in memory (tests, in-process consumers such as a live TUI)."""

    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []
        self.closed = False

    def write(self, event: TelemetryEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True
