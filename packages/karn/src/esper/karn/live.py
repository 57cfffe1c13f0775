"""The live state of one run, folded incrementally from its growing events.jsonl: what the TUI and the web page
show. `refresh()` reads only the new complete lines; `snapshot()` is the JSON-ready state.

Curves keep every point of the long horizon (per-episode outcomes, PPO updates) and the per-epoch detail of each
environment's current episode, so a long run's page stays small: the |delta| / |x| of each seed (SeedEpoch's
delta_ratio, from EPOCH_COMPLETED) too, as do the host-only baseline's epochs of that episode
(HOST_BASELINE_EPOCH, written after the episode's own events) and its seed events (germinate, internal level change,
fossilize, prune) at their epochs. The accuracy chart also draws the last HISTORY_EPISODES episodes before the
current one (their accuracy, baseline and seed events: `past_episodes`), so episode boundaries show. The host-only
final accuracy of each episode joins its outcome. The slots come from TRAINING_STARTED's slot config, in action
order, each lane with its surface (`post_attn`, `block_end`, ...) and, for a channel ladder, its channels per group
(`group_size`, 0 for every other seed). TRAINING_STARTED's provenance rides in `started`; `system` is the latest
EPOCH_COMPLETED's process reading (RSS, CPU time, CUDA peak).

`comparison()` is the smaller record the dashboard's run comparison overlays: the outcome of every episode and env
0's accuracy traces.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from esper.karn.eventlog import EventTail, WireEvent
from esper.karn.render import SEED_MARKS, op_name, render_event, stage_name, surface_name, where
from esper.karn.store import EVENTS_FILE
from esper.karn.store import REWARD_PARTS as STORE_REWARD_PARTS
from esper.leyline import TelemetryEventType, assert_covers

E = TelemetryEventType
LOG_LENGTH: Final = 400
HISTORY_EPISODES: Final = 20  # finished episodes kept per environment for the accuracy chart: a long run stays small
REWARD_PARTS: Final = tuple(part for part in STORE_REWARD_PARTS if part != "total")  # shown per component
PPO_FIELDS: Final = (
    "round",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "grad_norm",
    "update_seconds",
)
Payload = dict[str, Any]  # an event's payload in its JSON form


@dataclass
class SlotLane:
    """A slot of one environment over its current episode: the stage at each epoch, and the seed in it."""

    surface: str | None = None  # the slot's surface (lower-case name); None: a slot the slot config did not name
    stage: str = "DORMANT"
    blueprint: str | None = None
    level: int | None = None
    max_level: int | None = None
    group_size: int = 0  # channels per group of the seed's channel ladder (0: no seed, or not a channel ladder)
    stages: list[str] = field(default_factory=list)  # stage at the end of epoch 1, 2, ...
    delta_ratio: float | None = None  # |delta| / |x| of the seed in the slot at the latest epoch (None: unmeasured)


@dataclass
class SeedCurve:
    """One seed's |delta| / |x| at each epoch of the current episode that reported it (None: not measured)."""

    slot: str
    blueprint: str
    points: list[tuple[int, float | None]] = field(default_factory=list)


@dataclass
class EnvState:
    episode: int = 0
    epoch: int = 0
    val_accuracy: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    live_seeds: int = 0
    seed_params: int = 0
    last_action: str = "-"
    last_reward: float | None = None
    slots: dict[str, SlotLane] = field(default_factory=dict)
    accuracy: list[tuple[int, float]] = field(default_factory=list)
    losses: list[tuple[int, float | None, float]] = field(default_factory=list)
    rewards: list[tuple[int, float]] = field(default_factory=list)
    delta_ratios: dict[str, SeedCurve] = field(default_factory=dict)  # by seed id, in order of first report
    baseline: list[tuple[int, float]] = field(default_factory=list)  # host-only val accuracy per epoch (env 0 only)
    seed_marks: list[dict[str, Any]] = field(default_factory=list)  # epoch, kind (a SEED_MARKS name), slot, seed

    def trace(self) -> dict[str, Any]:
        """The episode as the accuracy charts draw it: its accuracy, its host-only baseline and its seed events."""
        return {
            "episode": self.episode,
            "accuracy": self.accuracy,
            "baseline": self.baseline,
            "seed_marks": self.seed_marks,
        }


class LiveRun:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.tail = EventTail(run_dir / EVENTS_FILE)
        self.events = 0
        self.started: dict[str, Any] | None = None
        self.completed: dict[str, Any] | None = None
        self.slot_ids: list[str] = []  # in action order
        self.surfaces: dict[str, str] = {}  # slot id -> surface name (lower case)
        self.envs: dict[int, EnvState] = {}
        self.past: dict[int, deque[dict[str, Any]]] = {}  # env -> its last HISTORY_EPISODES episodes' traces
        self.system: dict[str, Any] | None = None  # the latest EPOCH_COMPLETED's SystemMetrics
        self.ops: Counter[str] = Counter()
        self.invalid = 0
        self.gate_refusals = 0
        self.internal_levels = 0
        self.rollbacks = 0
        self.reward_sums: dict[str, float] = dict.fromkeys(REWARD_PARTS, 0.0)
        self.reward_steps = 0
        self.episodes: list[dict[str, Any]] = []
        self.baseline_finals: dict[tuple[int, int], float] = {}  # (env, episode) -> host-only final val accuracy
        self.ppo: list[dict[str, Any]] = []
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LENGTH)

    def refresh(self) -> int:
        """Fold the newly completed lines; returns how many events arrived."""
        new = self.tail.poll()
        for event in new:
            self.apply(event)
        return len(new)

    def _env(self, event: WireEvent) -> EnvState:
        env_id = event["env_id"]
        assert isinstance(env_id, int), f"{event['event_type']} without env_id"
        if env_id not in self.envs:
            self.envs[env_id] = EnvState(slots=self._lanes())
        env = self.envs[env_id]
        episode = event["episode"]
        if episode is not None and episode != env.episode:  # a new episode starts with fresh lanes and curves
            if env.accuracy or env.baseline or env.seed_marks:  # not the placeholder of an env seen mid-run
                self.past.setdefault(env_id, deque(maxlen=HISTORY_EPISODES)).append(env.trace())
            self.envs[env_id] = env = EnvState(episode=episode, slots=self._lanes())
        return env

    def _lanes(self) -> dict[str, SlotLane]:
        """Fresh lanes for the configured slots, in action order."""
        return {slot: SlotLane(surface=self.surfaces[slot]) for slot in self.slot_ids}

    def _lane(self, env: EnvState, event: WireEvent) -> SlotLane:
        slot = event["slot_id"]
        assert isinstance(slot, str), f"{event['event_type']} without slot_id"
        return self._slot(env, slot)

    def _marked_lane(self, event: WireEvent, p: Payload) -> SlotLane:
        """The lane of a seed event the accuracy chart marks at its epoch (SEED_MARKS), once marked."""
        env = self._env(event)
        lane = self._lane(env, event)
        kind = SEED_MARKS[TelemetryEventType[event["event_type"]]]
        env.seed_marks.append(
            {"epoch": event["epoch"], "kind": kind, "slot": event["slot_id"], "seed_id": p["seed_id"]}
        )
        return lane

    def _slot(self, env: EnvState, slot: str) -> SlotLane:
        if slot not in env.slots:
            env.slots[slot] = SlotLane(surface=self.surfaces[slot] if slot in self.surfaces else None)
        return env.slots[slot]

    def apply(self, event: WireEvent) -> None:
        """Fold one event into the state, then into the event log."""
        self.events += 1
        kind = TelemetryEventType[event["event_type"]]
        _FOLDS[kind](self, event, event["payload"])
        if kind is not E.EPOCH_COMPLETED or event["env_id"] == 0:  # one env's epochs are enough to show progress
            self.log.append(
                {
                    "seq": event["seq"],
                    "type": event["event_type"],
                    "severity": event["severity"],
                    "where": where(event),
                    "text": render_event(event),
                }
            )

    # ------------------------------------------------------------ one fold per event type (see _FOLDS)
    def _on_training_started(self, event: WireEvent, p: Payload) -> None:
        self.started = p
        self.completed = None
        specs = p["slot_config"]["slots"]
        self.slot_ids = [spec["slot_id"] for spec in specs]
        self.surfaces = {spec["slot_id"]: surface_name(spec["surface"]) for spec in specs}

    def _on_training_completed(self, event: WireEvent, p: Payload) -> None:
        self.completed = p

    def _on_epoch(self, event: WireEvent, p: Payload) -> None:
        env = self._env(event)
        env.epoch = event["epoch"]
        env.val_accuracy, env.val_loss, env.train_loss = p["val_accuracy"], p["val_loss"], p["train_loss"]
        env.live_seeds, env.seed_params = p["live_seeds"], p["seed_params"]
        self.system = p["system"]
        env.accuracy.append((env.epoch, p["val_accuracy"]))
        env.losses.append((env.epoch, p["train_loss"], p["val_loss"]))
        reported = {seed["slot_id"]: seed for seed in p["seeds"]}
        for slot, seed in reported.items():
            if seed["seed_id"] not in env.delta_ratios:
                env.delta_ratios[seed["seed_id"]] = SeedCurve(slot, seed["blueprint_id"])
            env.delta_ratios[seed["seed_id"]].points.append((env.epoch, seed["delta_ratio"]))
            self._slot(env, slot)  # a lane for it even when TRAINING_STARTED did not name the slot
        for slot, lane in env.slots.items():
            lane.delta_ratio = reported[slot]["delta_ratio"] if slot in reported else None
            lane.stages.append(lane.stage)

    def _on_host_baseline(self, event: WireEvent, p: Payload) -> None:
        env = self._env(event)
        env.baseline.append((event["epoch"], p["val_accuracy"]))
        assert self.started is not None, "HOST_BASELINE_EPOCH before TRAINING_STARTED"
        if event["epoch"] == self.started["episode_length"]:  # the baseline ran the whole episode: its final
            self.baseline_finals[event["env_id"], event["episode"]] = p["val_accuracy"]

    def _on_germinated(self, event: WireEvent, p: Payload) -> None:
        lane = self._marked_lane(event, p)
        lane.blueprint = p["blueprint_id"]
        lane.delta_ratio = None  # a new seed: not measured until its first epoch
        lane.level = p["internal_level"] if p["internal_kind"] else None
        lane.max_level = p["internal_max_level"] if p["internal_kind"] else None
        lane.group_size = p["internal_group_size"]

    def _on_stage_changed(self, event: WireEvent, p: Payload) -> None:
        lane = self._lane(self._env(event), event)
        lane.stage = stage_name(p["to_stage"])
        lane.blueprint = p["blueprint_id"]

    def _on_fossilized(self, event: WireEvent, p: Payload) -> None:
        self._marked_lane(event, p).stage = "FOSSILIZED"

    def _on_pruned(self, event: WireEvent, p: Payload) -> None:
        self._marked_lane(event, p).stage = "PRUNED"

    def _on_internal_level(self, event: WireEvent, p: Payload) -> None:
        lane = self._marked_lane(event, p)
        lane.level, lane.max_level, lane.group_size = p["to_level"], p["max_level"], p["group_size"]
        self.internal_levels += 1

    def _on_action(self, event: WireEvent, p: Payload) -> None:
        env = self._env(event)
        op = op_name(p["action"]["op"])
        self.ops[op] += 1
        if p["gate_refused"]:
            self.gate_refusals += 1
        elif not p["success"]:
            self.invalid += 1
        env.last_action = op + ("" if p["success"] else " (refused by a gate)" if p["gate_refused"] else " (invalid)")

    def _on_reward(self, event: WireEvent, p: Payload) -> None:
        env = self._env(event)
        total = p["components"]["total"]
        env.last_reward = total
        env.rewards.append((event["epoch"], total))
        for part in REWARD_PARTS:
            self.reward_sums[part] += p["components"][part]
        self.reward_steps += 1

    def _on_episode_outcome(self, event: WireEvent, p: Payload) -> None:
        o = p["outcome"]
        self.episodes.append(
            {
                "env": event["env_id"],
                "episode": event["episode"],
                "final_accuracy": o["final_accuracy"],
                "reward": o["episode_reward"],
                "added_params": o["added_params"],
            }
        )

    def _on_ppo_update(self, event: WireEvent, p: Payload) -> None:
        self.ppo.append({key: p[key] for key in PPO_FIELDS} | {"head_entropies": dict(p["head_entropies"])})

    def _on_rollback(self, event: WireEvent, p: Payload) -> None:
        self.rollbacks += 1

    def _log_only(self, event: WireEvent, p: Payload) -> None:
        """Events the panels do not show: they appear in the event log only."""

    @property
    def status(self) -> str:
        if self.completed is not None:
            return "interrupted" if self.completed["interrupted"] else "finished"
        return "running" if self.started is not None else "waiting"

    def reward_means(self) -> dict[str, float]:
        steps = max(self.reward_steps, 1)
        return {part: total / steps for part, total in self.reward_sums.items()}

    def snapshot(self, log_after: int = 0) -> dict[str, Any]:
        """JSON-ready state; the event log only holds entries with seq > log_after."""
        return {
            "run_id": self.run_dir.name,
            "status": self.status,
            "events": self.events,
            "started": self.started,
            "completed": self.completed,
            "slot_ids": self.slot_ids,
            "surfaces": self.surfaces,
            "system": self.system,
            "envs": [
                _env_snapshot(env_id, env) | {"past_episodes": self._past(env_id)}
                for env_id, env in sorted(self.envs.items())
            ],
            "ops": dict(self.ops.most_common()),
            "invalid_actions": self.invalid,
            "gate_refusals": self.gate_refusals,
            "internal_level_changes": self.internal_levels,
            "governor_rollbacks": self.rollbacks,
            "reward_means": self.reward_means(),
            "episodes": self.outcomes(),
            "ppo": self.ppo,
            "log": [entry for entry in self.log if entry["seq"] > log_after],
        }

    def outcomes(self) -> list[dict[str, Any]]:
        """Every episode's outcome, in the order they ended, with its host-only final accuracy."""
        return [outcome | {"baseline_accuracy": self._baseline_final(outcome)} for outcome in self.episodes]

    def comparison(self) -> dict[str, Any]:
        """What the dashboard overlays when it compares runs: the run's identity, the outcome of every episode and
        env 0's accuracy traces (its past episodes kept for the chart, then the current one)."""
        traces = [*self._past(0), self.envs[0].trace()] if 0 in self.envs else []
        return {
            "run_id": self.run_dir.name,
            "status": self.status,
            "started": self.started,
            "episodes": self.outcomes(),
            "accuracy": traces,
        }

    def _past(self, env_id: int) -> list[dict[str, Any]]:
        """The traces of the episodes an environment finished before its current one (kept: HISTORY_EPISODES)."""
        return list(self.past[env_id]) if env_id in self.past else []

    def _baseline_final(self, outcome: dict[str, Any]) -> float | None:
        """The host-only final val accuracy of an outcome's episode (None: no baseline, or not finished yet)."""
        key = (outcome["env"], outcome["episode"])
        return self.baseline_finals[key] if key in self.baseline_finals else None


def _env_snapshot(env_id: int, env: EnvState) -> dict[str, Any]:
    """One environment's current episode, JSON-ready."""
    return {
        "env": env_id,
        "episode": env.episode,
        "epoch": env.epoch,
        "val_accuracy": env.val_accuracy,
        "train_loss": env.train_loss,
        "val_loss": env.val_loss,
        "live_seeds": env.live_seeds,
        "seed_params": env.seed_params,
        "last_action": env.last_action,
        "last_reward": env.last_reward,
        "accuracy": env.accuracy,
        "baseline": env.baseline,
        "seed_marks": env.seed_marks,
        "losses": env.losses,
        "rewards": env.rewards,
        "slots": {
            slot: {
                "surface": lane.surface,
                "stage": lane.stage,
                "blueprint": lane.blueprint,
                "level": lane.level,
                "max_level": lane.max_level,
                "group_size": lane.group_size,
                "stages": lane.stages,
                "delta_ratio": lane.delta_ratio,
            }
            for slot, lane in env.slots.items()
        },
        "delta_ratios": [
            {"seed_id": seed_id, "slot": curve.slot, "blueprint": curve.blueprint, "points": curve.points}
            for seed_id, curve in env.delta_ratios.items()
        ],
    }


# How LiveRun folds each event type; every TelemetryEventType has an entry, so a new one fails the tests until the
# live views decide what to show of it.
_FOLDS: Final[Mapping[TelemetryEventType, Callable[[LiveRun, WireEvent, Payload], None]]] = {
    E.TRAINING_STARTED: LiveRun._on_training_started,
    E.TRAINING_COMPLETED: LiveRun._on_training_completed,
    E.EPOCH_COMPLETED: LiveRun._on_epoch,
    E.SEED_GERMINATED: LiveRun._on_germinated,
    E.SEED_STAGE_CHANGED: LiveRun._on_stage_changed,
    E.SEED_GATE_EVALUATED: LiveRun._log_only,
    E.SEED_FOSSILIZED: LiveRun._on_fossilized,
    E.SEED_PRUNED: LiveRun._on_pruned,
    E.SEED_INTERNAL_LEVEL_CHANGED: LiveRun._on_internal_level,
    E.ACTION_TAKEN: LiveRun._on_action,
    E.REWARD_COMPUTED: LiveRun._on_reward,
    E.EPISODE_OUTCOME: LiveRun._on_episode_outcome,
    E.PPO_UPDATE_COMPLETED: LiveRun._on_ppo_update,
    E.INTERNAL_OP_METRICS: LiveRun._log_only,
    E.COUNTERFACTUAL_DELTA: LiveRun._log_only,
    E.GOVERNOR_ROLLBACK: LiveRun._on_rollback,
    E.CHECKPOINT_SAVED: LiveRun._log_only,
    E.CHECKPOINT_LOADED: LiveRun._log_only,
    E.HOST_BASELINE_EPOCH: LiveRun._on_host_baseline,
}
assert_covers(TelemetryEventType, _FOLDS, consumer="karn LiveRun folds")
