"""TensorBoard records of a run's telemetry, live or after the fact, through one mapping.

`TensorBoardSink` is a telemetry sink (the JsonlSink's interface: `write(event)`, `close()`): on `esper train ...
--tensorboard DIR` it sits on the hub beside the JsonlSink, and `export_tensorboard` (`esper karn export RUN
--tensorboard DIR`) replays a finished events.jsonl through the same sink. Every record's wall time is its event's
timestamp, so a live sink and an export of the same log write the same records: tags, steps, values, wall times.

Layout: one TensorBoard run (a directory of event files) per source, under DIR/<run_id>/:

- `run`: run-level events. `ppo/*` at step = the PPO round; `training` text and `run/*` at step = the how-many-th
  TRAINING_STARTED (0, then 1 after a resume); `checkpoint` text at step = the round.
- `env<K>`: environment K. Per-epoch tags at the global step `episode * episode_length + epoch` (epochs count from
  1, so episode e covers e*L+1 .. (e+1)*L; L from TRAINING_STARTED); per-episode tags (`episode/*`, `actions/*`) at
  step = the episode.
- `env<K>-host_baseline`: the host-only baseline's epochs (HOST_BASELINE_EPOCH) under the same `accuracy/*` and
  `loss/*` tags and steps as `env<K>`, so TensorBoard draws both in one chart.

The tags of each event type are in docs/karn.md (TensorBoard). Every TelemetryEventType has an entry in HANDLERS
(checked at import), so a new event type fails the tests until this mapping decides what to write of it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from esper.karn.render import render_event, where
from esper.karn.sinks import read_events
from esper.karn.store import EVENTS_FILE
from esper.leyline import (
    HEAD_RELEVANCE_BY_OP,
    ActionHead,
    ActionTakenPayload,
    CheckpointLoadedPayload,
    CheckpointSavedPayload,
    CounterfactualDeltaPayload,
    EpisodeOutcomePayload,
    EpochCompletedPayload,
    FactoredAction,
    HostBaselineEpochPayload,
    InternalOpMetricsPayload,
    PpoUpdateCompletedPayload,
    RewardComponents,
    RewardComputedPayload,
    SeedEpoch,
    SeedGerminatedPayload,
    SeedInternalLevelChangedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingCompletedPayload,
    TrainingStartedPayload,
    assert_covers,
    head_sizes,
    slot_ids,
    to_wire,
)


def _import_tensorboardx() -> tuple[Any, Any]:
    """tensorboardX's FileWriter and summary builders, imported without torch. tensorboardX's writer module runs
    `import torch` only to accept tensors (Karn passes plain floats); where torch is installed that import costs
    seconds and would break the rule that `esper karn ...` never imports torch. A None entry in sys.modules makes
    that import fail as if torch were absent; a process that already holds torch (a training run) keeps it."""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # type: ignore[assignment]  # None is the documented "import fails" marker
    try:
        from tensorboardX import summary  # type: ignore[import-untyped]  # ships no type information
        from tensorboardX.writer import FileWriter  # type: ignore[import-untyped]
    finally:
        if hide:
            del sys.modules["torch"]
    return FileWriter, summary


FileWriter, tb_summary = _import_tensorboardx()
E = TelemetryEventType
P = TypeVar("P")
FLUSH_SECONDS: Final = 5  # how stale a live TensorBoard may be; the sink flushes on close too
MAX_QUEUE: Final = 1000  # records a writer queues for its thread: a small queue makes every add wait on the thread
RUN_WRITER: Final = "run"
BASELINE_SUFFIX: Final = "-host_baseline"
EVENT_FILE_PREFIX: Final = "events.out.tfevents."

# The value each action head chose in a FactoredAction (the `actions/<head>` histograms).
HEAD_VALUE: Final[Mapping[ActionHead, Callable[[FactoredAction], int]]] = {
    ActionHead.SLOT: lambda a: a.slot,
    ActionHead.BLUEPRINT: lambda a: int(a.blueprint),
    ActionHead.STYLE: lambda a: int(a.style),
    ActionHead.TEMPO: lambda a: int(a.tempo),
    ActionHead.ALPHA_TARGET: lambda a: int(a.alpha_target),
    ActionHead.ALPHA_SPEED: lambda a: int(a.alpha_speed),
    ActionHead.ALPHA_CURVE: lambda a: int(a.alpha_curve),
    ActionHead.OP: lambda a: int(a.op),
}
assert_covers(ActionHead, HEAD_VALUE, consumer="karn TensorBoard HEAD_VALUE")


class TensorBoardError(ValueError):
    """An event the mapping cannot place: an environment's event without its context, or before its run's
    TRAINING_STARTED."""


@dataclass(frozen=True, slots=True)
class Written:
    """What one TensorBoard run directory received."""

    logdir: Path
    scalars: int
    texts: int
    histograms: int

    def describe(self) -> str:
        return f"{self.logdir}: {self.scalars} scalars, {self.texts} texts, {self.histograms} histograms"


class _Writer:
    """One TensorBoard run: a FileWriter on its directory, counting what it wrote. An event's scalars go out as one
    record holding every value (one queue hand-off to the writer thread instead of one per scalar: about 8x fewer
    records per epoch); TensorBoard reads each value under its own tag."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._writer: Any = FileWriter(str(logdir), max_queue=MAX_QUEUE, flush_secs=FLUSH_SECONDS)
        self.scalars = 0
        self.texts = 0
        self.histograms = 0

    def add_scalars(self, values: Mapping[str, float], step: int, wall: float) -> None:
        if not values:
            return
        Value = tb_summary.Summary.Value
        record = tb_summary.Summary(value=[Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._writer.add_summary(record, global_step=step, walltime=wall)
        self.scalars += len(values)

    def text(self, tag: str, text: str, step: int, wall: float) -> None:
        self._writer.add_summary(tb_summary.text(tag, text), global_step=step, walltime=wall)
        self.texts += 1

    def histogram(self, tag: str, values: Sequence[float], step: int, wall: float) -> None:
        """A histogram with one bucket per distinct value (a few seeds per epoch: exact, and no numpy binning)."""
        distinct = sorted(set(values))
        self._raw(tag, values, distinct, [values.count(v) for v in distinct], step, wall)

    def categories(self, tag: str, choices: Sequence[int], size: int, step: int, wall: float) -> None:
        """A histogram of category indices 0..size-1 with one bucket per category (upper limits i + 0.5)."""
        counts = [0] * size
        for choice in choices:
            counts[choice] += 1
        self._raw(tag, choices, [i + 0.5 for i in range(size)], counts, step, wall)

    def _raw(
        self, tag: str, values: Sequence[float], limits: list[float], counts: list[int], step: int, wall: float
    ) -> None:
        """TensorBoard's histogram record: bucket i holds the values in (limits[i-1], limits[i]]."""
        record = tb_summary.histogram_raw(
            tag,
            min=min(values),
            max=max(values),
            num=len(values),
            sum=sum(values),
            sum_squares=sum(v * v for v in values),
            bucket_limits=limits,
            bucket_counts=counts,
        )
        self._writer.add_summary(record, global_step=step, walltime=wall)
        self.histograms += 1

    def written(self) -> Written:
        return Written(self.logdir, self.scalars, self.texts, self.histograms)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


@dataclass
class _RunState:
    """What the mapping remembers of one run between events."""

    episode_length: int | None = None
    head_sizes: dict[ActionHead, int] = field(default_factory=dict)
    starts: int = 0  # TRAINING_STARTED events seen (a resumed run has one more)
    choices: dict[int, dict[ActionHead, list[int]]] = field(default_factory=dict)  # env -> head -> this episode's


def _payload(event: TelemetryEvent, kind: type[P]) -> P:
    if not isinstance(event.payload, kind):
        raise TypeError(f"{event.event_type.name} event carries {type(event.payload).__name__}, not {kind.__name__}")
    return event.payload


def _wall(event: TelemetryEvent) -> float:
    return datetime.fromisoformat(event.timestamp).timestamp()


def _line(event: TelemetryEvent) -> str:
    """The event as the TUI, the page and the report show it: `e0 ep1 @3 r0c0 GERMINATE ...`."""
    wire = to_wire(event)
    assert isinstance(wire, dict), "an event is a record"
    return " ".join(part for part in (where(wire), render_event(wire)) if part)  # run-level events have no where


def _require(value: int | str | None, what: str, event: TelemetryEvent) -> Any:
    if value is None:
        raise TensorBoardError(f"{event.event_type.name} event {event.event_id} has no {what}; TensorBoard needs it")
    return value


class TensorBoardSink:
    """Writes each event's TensorBoard records under `logdir`/<run_id>/ (see the module docstring); the writers
    open on first use and flush every FLUSH_SECONDS and on close."""

    def __init__(self, logdir: Path) -> None:
        if logdir.exists() and not logdir.is_dir():
            raise NotADirectoryError(f"{logdir} is not a directory")
        self.logdir = logdir
        self._writers: dict[tuple[str, str], _Writer] = {}
        self._runs: dict[str, _RunState] = {}
        self._closed = False

    def write(self, event: TelemetryEvent) -> None:
        if self._closed:
            raise RuntimeError(f"TensorBoardSink for {self.logdir} is closed")
        HANDLERS[event.event_type](self, event)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        if not self._closed:
            for writer in self._writers.values():
                writer.close()
            self._closed = True

    def written(self) -> list[Written]:
        return [writer.written() for writer in self._writers.values()]

    # ---------------------------------------------------------------- where and when

    def _run(self, event: TelemetryEvent) -> _RunState:
        if event.run_id not in self._runs:
            if Path(event.run_id).name != event.run_id:
                raise TensorBoardError(f"run id {event.run_id!r} cannot name a directory under {self.logdir}")
            self._runs[event.run_id] = _RunState()
        return self._runs[event.run_id]

    def _writer(self, event: TelemetryEvent, name: str) -> _Writer:
        key = (event.run_id, name)
        if key not in self._writers:
            self._writers[key] = _Writer(self.logdir / event.run_id / name)
        return self._writers[key]

    def _env(self, event: TelemetryEvent, suffix: str = "") -> _Writer:
        return self._writer(event, f"env{_require(event.env_id, 'env_id', event)}{suffix}")

    def _step(self, event: TelemetryEvent) -> int:
        """The global epoch step of an environment's event: episode * episode_length + epoch."""
        length = self._run(event).episode_length
        if length is None:
            raise TensorBoardError(
                f"{event.event_type.name} of run {event.run_id} before its TRAINING_STARTED: the step needs the "
                "episode length"
            )
        episode: int = _require(event.episode, "episode", event)
        epoch: int = _require(event.epoch, "epoch", event)
        return episode * length + epoch

    def _scalars(self, writer: _Writer, values: Mapping[str, float | None], step: int, wall: float) -> None:
        """Each value under its tag; None (not measured) writes nothing."""
        writer.add_scalars({tag: value for tag, value in values.items() if value is not None}, step, wall)

    # ---------------------------------------------------------------- run-level events

    def _on_started(self, event: TelemetryEvent) -> None:
        payload = _payload(event, TrainingStartedPayload)
        run = self._run(event)
        run.episode_length = payload.episode_length
        run.head_sizes = head_sizes(len(slot_ids(payload.slot_config)))
        config = json.dumps(to_wire(payload), indent=2).replace("\n", "\n    ")  # an indented block is code
        self._writer(event, RUN_WRITER).text("training", f"{_line(event)}\n\n    {config}", run.starts, _wall(event))
        run.starts += 1

    def _on_completed(self, event: TelemetryEvent) -> None:
        payload = _payload(event, TrainingCompletedPayload)
        step, wall = max(self._run(event).starts - 1, 0), _wall(event)  # the start this completion ends
        writer = self._writer(event, RUN_WRITER)
        writer.text("training", _line(event), step, wall)
        values = {"run/wall_seconds": payload.wall_seconds, "run/episodes_completed": payload.episodes_completed}
        self._scalars(writer, values, step, wall)

    def _on_ppo_update(self, event: TelemetryEvent) -> None:
        p = _payload(event, PpoUpdateCompletedPayload)
        values: dict[str, float | None] = {
            "ppo/policy_loss": p.policy_loss,
            "ppo/value_loss": p.value_loss,
            "ppo/entropy": p.entropy,
            "ppo/approx_kl": p.approx_kl,
            "ppo/clip_fraction": p.clip_fraction,
            "ppo/explained_variance": p.explained_variance,
            "ppo/grad_norm": p.grad_norm,
            "ppo/learning_rate": p.learning_rate,
            "ppo/update_seconds": p.update_seconds,
        }
        values.update({f"ppo/entropy/{head.value}": value for head, value in p.head_entropies.items()})
        values.update({f"ppo/q/{op}": value for op, value in p.op_q_values.items()})
        self._scalars(self._writer(event, RUN_WRITER), values, p.round, _wall(event))

    def _on_checkpoint(self, event: TelemetryEvent) -> None:
        payload = event.payload
        if not isinstance(payload, CheckpointSavedPayload | CheckpointLoadedPayload):
            raise TypeError(f"{event.event_type.name} event carries {type(payload).__name__}")
        self._writer(event, RUN_WRITER).text("checkpoint", _line(event), payload.round, _wall(event))

    # ---------------------------------------------------------------- environment events, per epoch

    def _on_epoch(self, event: TelemetryEvent) -> None:
        p = _payload(event, EpochCompletedPayload)
        writer, step, wall = self._env(event), self._step(event), _wall(event)
        values: dict[str, float | None] = {
            "accuracy/train": p.train_accuracy,
            "accuracy/val": p.val_accuracy,
            "loss/train": p.train_loss,
            "loss/val": p.val_loss,
            "params/host": p.host_params,
            "params/seed": p.seed_params,
            "seeds/live": p.live_seeds,
            "seeds/fossilized": p.fossilized_seeds,
            "governor/rollback": float(p.governor_rollback),
            "time/epoch_seconds": p.epoch_seconds,
            "system/rss_mb": p.system.rss_mb,
            "system/cpu_seconds": p.system.cpu_seconds,
            "system/cuda_peak_mb": p.system.cuda_peak_mb,
        }
        for seed in p.seeds:
            values.update(_seed_values(seed))
        self._scalars(writer, values, step, wall)
        ratios = [s.delta_ratio for s in p.seeds if s.delta_ratio is not None]
        if ratios:
            writer.histogram("seeds/delta_ratio", ratios, step, wall)
        if p.seeds:
            writer.histogram("seeds/alpha", [s.alpha for s in p.seeds], step, wall)

    def _on_baseline(self, event: TelemetryEvent) -> None:
        p = _payload(event, HostBaselineEpochPayload)
        values: dict[str, float | None] = {
            "accuracy/train": p.train_accuracy,
            "accuracy/val": p.val_accuracy,
            "loss/train": p.train_loss,
            "loss/val": p.val_loss,
        }
        self._scalars(self._env(event, BASELINE_SUFFIX), values, self._step(event), _wall(event))

    def _on_reward(self, event: TelemetryEvent) -> None:
        components = _payload(event, RewardComputedPayload).components
        values = {f"reward/{name}": value for name, value in _components(components).items()}
        self._scalars(self._env(event), values, self._step(event), _wall(event))

    def _on_action(self, event: TelemetryEvent) -> None:
        """Op probabilities now; the heads' choices wait for the episode's end (`actions/<head>` histograms)."""
        p = _payload(event, ActionTakenPayload)
        env: int = _require(event.env_id, "env_id", event)
        step = self._step(event)
        choices = self._run(event).choices.setdefault(env, {})
        for head in HEAD_RELEVANCE_BY_OP[p.action.op]:  # what the op used; the other heads hold canonical values
            choices.setdefault(head, []).append(HEAD_VALUE[head](p.action))
        if p.op_probabilities is not None:
            values = {f"policy/op_probability/{op}": value for op, value in p.op_probabilities.items()}
            self._scalars(self._env(event), values, step, _wall(event))

    def _on_lifecycle(self, event: TelemetryEvent) -> None:
        """Seed lifecycle events (germinated, stage changed, gate evaluated, fossilized, pruned) as text."""
        self._env(event).text("lifecycle", _line(event), self._step(event), _wall(event))

    def _on_germinated(self, event: TelemetryEvent) -> None:
        p = _payload(event, SeedGerminatedPayload)
        self._on_lifecycle(event)
        slot: str = _require(event.slot_id, "slot_id", event)
        values = {f"slot/{slot}/internal_level": p.internal_level, f"slot/{slot}/active_params": p.params}
        self._scalars(self._env(event), values, self._step(event), _wall(event))

    def _on_internal_level(self, event: TelemetryEvent) -> None:
        p = _payload(event, SeedInternalLevelChangedPayload)
        self._on_lifecycle(event)
        slot: str = _require(event.slot_id, "slot_id", event)
        values = {f"slot/{slot}/internal_level": p.to_level, f"slot/{slot}/active_params": p.active_params}
        self._scalars(self._env(event), values, self._step(event), _wall(event))

    def _on_op_metrics(self, event: TelemetryEvent) -> None:
        p = _payload(event, InternalOpMetricsPayload)
        slot: str = _require(event.slot_id, "slot_id", event)
        values = {
            f"internal_ops/{slot}/op_count": p.op_count,
            f"internal_ops/{slot}/density": p.internal_op_density,
            f"internal_ops/{slot}/net_level_change": p.net_level_change,
            f"internal_ops/{slot}/reversal_rate": p.reversal_rate,
        }
        self._scalars(self._env(event), values, self._step(event), _wall(event))

    def _on_counterfactual(self, event: TelemetryEvent) -> None:
        p = _payload(event, CounterfactualDeltaPayload)
        slot: str = _require(event.slot_id, "slot_id", event)
        values = {
            f"counterfactual/{slot}/accuracy_delta": p.accuracy_delta,
            f"counterfactual/{slot}/loss_delta": p.loss_delta,
            f"counterfactual/{slot}/baseline_accuracy_delta": p.baseline_accuracy_delta,
        }
        self._scalars(self._env(event), values, self._step(event), _wall(event))

    def _on_rollback(self, event: TelemetryEvent) -> None:
        self._env(event).text("governor", _line(event), self._step(event), _wall(event))

    # ---------------------------------------------------------------- environment events, per episode

    def _on_outcome(self, event: TelemetryEvent) -> None:
        o = _payload(event, EpisodeOutcomePayload).outcome
        writer, wall = self._env(event), _wall(event)
        episode: int = _require(event.episode, "episode", event)
        values: dict[str, float | None] = {
            "episode/final_accuracy": o.final_accuracy,
            "episode/best_accuracy": o.best_accuracy,
            "episode/reward": o.episode_reward,
            "episode/added_params": o.added_params,
            "episode/param_ratio": o.param_ratio,
            "episode/germinated": o.germinated,
            "episode/fossilized": o.fossilized,
            "episode/pruned": o.pruned,
            "episode/internal_level_changes": o.internal_level_changes,
            "episode/invalid_actions": o.invalid_actions,
            "episode/gate_refusals": o.gate_refusals,
            "episode/governor_rollbacks": o.governor_rollbacks,
        }
        if o.reward_components is not None:
            values.update({f"episode/reward/{k}": v for k, v in _components(o.reward_components).items()})
        self._scalars(writer, values, episode, wall)
        self._action_histograms(event, writer, episode, wall)

    def _action_histograms(self, event: TelemetryEvent, writer: _Writer, episode: int, wall: float) -> None:
        """`actions/<head>`: the values each head chose over the episode, when the op used the head."""
        run = self._run(event)
        choices = run.choices.pop(_require(event.env_id, "env_id", event), {})
        for head in ActionHead:  # in head order, so a log always writes its histograms in one order
            if head in choices:
                writer.categories(f"actions/{head.value}", choices[head], run.head_sizes[head], episode, wall)


def _seed_values(seed: SeedEpoch) -> dict[str, float | None]:
    """A seed's per-epoch scalars, under its slot (seed ids change; the slot's chart follows each seed in turn)."""
    return {
        f"slot/{seed.slot_id}/stage": int(seed.stage),
        f"slot/{seed.slot_id}/alpha": seed.alpha,
        f"slot/{seed.slot_id}/delta_ratio": seed.delta_ratio,
        f"slot/{seed.slot_id}/contribution": seed.counterfactual_contribution,
    }


def _components(components: RewardComponents) -> dict[str, float]:
    """Every reward term by its field name (a new term gets its tag without a change here)."""
    return {name: float(value) for name, value in dataclasses.asdict(components).items()}


# What the mapping does with each event type; every TelemetryEventType has an entry (checked below), so a new one
# fails the tests until it is decided here.
HANDLERS: Final[Mapping[TelemetryEventType, Callable[[TensorBoardSink, TelemetryEvent], None]]] = {
    E.TRAINING_STARTED: TensorBoardSink._on_started,
    E.TRAINING_COMPLETED: TensorBoardSink._on_completed,
    E.EPOCH_COMPLETED: TensorBoardSink._on_epoch,
    E.SEED_GERMINATED: TensorBoardSink._on_germinated,
    E.SEED_STAGE_CHANGED: TensorBoardSink._on_lifecycle,
    E.SEED_GATE_EVALUATED: TensorBoardSink._on_lifecycle,
    E.SEED_FOSSILIZED: TensorBoardSink._on_lifecycle,
    E.SEED_PRUNED: TensorBoardSink._on_lifecycle,
    E.SEED_INTERNAL_LEVEL_CHANGED: TensorBoardSink._on_internal_level,
    E.ACTION_TAKEN: TensorBoardSink._on_action,
    E.REWARD_COMPUTED: TensorBoardSink._on_reward,
    E.EPISODE_OUTCOME: TensorBoardSink._on_outcome,
    E.PPO_UPDATE_COMPLETED: TensorBoardSink._on_ppo_update,
    E.INTERNAL_OP_METRICS: TensorBoardSink._on_op_metrics,
    E.COUNTERFACTUAL_DELTA: TensorBoardSink._on_counterfactual,
    E.GOVERNOR_ROLLBACK: TensorBoardSink._on_rollback,
    E.CHECKPOINT_SAVED: TensorBoardSink._on_checkpoint,
    E.CHECKPOINT_LOADED: TensorBoardSink._on_checkpoint,
    E.HOST_BASELINE_EPOCH: TensorBoardSink._on_baseline,
}
assert_covers(TelemetryEventType, HANDLERS, consumer="karn TensorBoard HANDLERS")


def event_files(directory: Path) -> list[Path]:
    """TensorBoard event files anywhere under `directory`."""
    return sorted(directory.rglob(EVENT_FILE_PREFIX + "*")) if directory.is_dir() else []


def export_tensorboard(run_dir: Path, logdir: Path) -> list[Written]:
    """Replay a run's events.jsonl through a TensorBoardSink into `logdir`/<run_id>/. The whole log is read (and
    validated) first; a TensorBoard run directory that already holds event files is refused (FileExistsError):
    TensorBoard would show both copies of every record."""
    log = read_events(run_dir / EVENTS_FILE)
    for run_id in dict.fromkeys(event.run_id for event in log):
        existing = event_files(logdir / run_id)
        if existing:
            raise FileExistsError(
                f"{logdir / run_id} already holds TensorBoard event files ({existing[0].name}, ...); export into "
                "another directory or remove it"
            )
    sink = TensorBoardSink(logdir)
    try:
        for event in log:
            sink.write(event)
    finally:
        sink.close()
    return sink.written()
