"""One-line human renderings of every telemetry event type: the event log of the TUI, the web page and the report.

Renderers take the validated wire form (enums as values) and show member names. RENDERERS covers every
TelemetryEventType (checked at import), so a new event type cannot reach a dashboard unrendered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

from esper.karn.eventlog import WireEvent
from esper.leyline import (
    BlueprintAction,
    GateLevel,
    LifecycleOp,
    SeedStage,
    SurfaceType,
    TelemetryEventType,
    assert_covers,
)

E = TelemetryEventType
Payload = Mapping[str, Any]


# The seed events the accuracy charts mark at their epochs (the page and the report), by the name they show.
SEED_MARKS: Final[Mapping[TelemetryEventType, str]] = {
    E.SEED_GERMINATED: "germinate",
    E.SEED_INTERNAL_LEVEL_CHANGED: "level",
    E.SEED_FOSSILIZED: "fossilize",
    E.SEED_PRUNED: "prune",
}


def op_name(value: int) -> str:
    return LifecycleOp(value).name


def stage_name(value: int) -> str:
    return SeedStage(value).name


def surface_name(value: int) -> str:
    """A surface as the dashboards show it: `post_attn`, `block_end`, ..."""
    return SurfaceType(value).name.lower()


def format_cell(value: object) -> str:
    """A query result cell as text: `-` for NULL, 4 significant digits for floats, seconds for timestamps."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _started(p: Payload) -> str:
    ranks = "" if p["world_size"] == 1 else f", {p['world_size']} ranks ({p['parallel_mode']}-parallel)"
    config = p["slot_config"]
    slots = ", ".join(f"{spec['slot_id']} {surface_name(spec['surface'])}" for spec in config["slots"])
    return (
        f"training started: {p['task']} / {p['policy']}, {p['n_envs']} env(s) x {p['episode_length']} epochs, "
        f"slots {slots} ({len(config['slots'])} of {config['lattice_size']}), seed {p['seed']}{ranks}"
    )


def _completed(p: Payload) -> str:
    state = "interrupted" if p["interrupted"] else "completed"
    return f"training {state}: {p['episodes_completed']} episode(s) in {p['wall_seconds']:.1f}s"


def _epoch(p: Payload) -> str:
    loss = "non-finite" if p["train_loss"] is None else f"{p['train_loss']:.3f}"
    rollback = " (governor rollback)" if p["governor_rollback"] else ""
    return (
        f"epoch: val {_pct(p['val_accuracy'])} loss {p['val_loss']:.3f}, train loss {loss}, "
        f"{p['live_seeds']} live seed(s), +{p['seed_params']} params{rollback}"
    )


def _baseline(p: Payload) -> str:
    return (
        f"host-only baseline epoch: val {_pct(p['val_accuracy'])} loss {p['val_loss']:.3f}, "
        f"train {_pct(p['train_accuracy'])} loss {p['train_loss']:.3f}"
    )


def _groups(group_size: int) -> str:
    """A channel ladder's group size as its renderings name it (`, 2 channels per group`); '' for other seeds."""
    return f", {group_size} channels per group" if group_size > 0 else ""


def _germinated(p: Payload) -> str:
    level = f", level {p['internal_level']}/{p['internal_max_level']}" if p["internal_kind"] else ""
    level += _groups(p["internal_group_size"])
    return (
        f"germinated {p['blueprint_id']} on {surface_name(p['surface'])} ({p['seed_id']}, {p['params']} params{level})"
    )


def _stage(p: Payload) -> str:
    return f"{p['seed_id']}: {stage_name(p['from_stage'])} -> {stage_name(p['to_stage'])} (alpha {p['alpha']:.2f})"


def _gate(p: Payload) -> str:
    result = p["result"]
    verdict = "passed" if result["passed"] else "failed"
    return f"{p['seed_id']}: gate {GateLevel(result['gate']).name} {verdict}: {result['message']}"


def _fossilized(p: Payload) -> str:
    return f"fossilized {p['blueprint_id']} ({p['seed_id']}, +{p['params_added']} params)"


def _pruned(p: Payload) -> str:
    return f"pruned {p['blueprint_id']} ({p['seed_id']}) by {p['initiator']}: {p['reason']}"


def _level(p: Payload) -> str:
    arrow = "grow" if p["to_level"] > p["from_level"] else "shrink"
    return (
        f"{p['seed_id']}: internal {arrow} {p['from_level']} -> {p['to_level']} of {p['max_level']} "
        f"({p['active_params']} active params{_groups(p['group_size'])})"
    )


def _action(p: Payload) -> str:
    action = p["action"]
    op = op_name(action["op"])
    target = ""
    if op == "GERMINATE":
        target = f" {BlueprintAction(action['blueprint']).name.lower()}"
    outcome = ""
    if not p["success"]:
        outcome = f" {'REFUSED BY GATE' if p['gate_refused'] else 'INVALID'} ({p['rejection_reason']})"
    return f"{p['policy']} chose {op}{target}{outcome}"


def _reward(p: Payload) -> str:
    parts = p["components"]
    nonzero = ", ".join(f"{k} {v:+.3f}" for k, v in parts.items() if k != "total" and v != 0)
    return f"reward {parts['total']:+.3f} for {op_name(p['op'])}" + (f" ({nonzero})" if nonzero else "")


def _outcome(p: Payload) -> str:
    o = p["outcome"]
    reward = "" if o["episode_reward"] is None else f", reward {o['episode_reward']:+.2f}"
    return (
        f"episode done: final {_pct(o['final_accuracy'])} (best {_pct(o['best_accuracy'])}), "
        f"+{o['added_params']} params{reward}"
    )


def _ppo(p: Payload) -> str:
    return (
        f"PPO update {p['round']}: policy {p['policy_loss']:.3f}, value {p['value_loss']:.3f}, "
        f"entropy {p['entropy']:.3f}, KL {p['approx_kl']:.4f}, clip {p['clip_fraction']:.2f}, "
        f"EV {p['explained_variance']:.2f}"
    )


def _op_metrics(p: Payload) -> str:
    return (
        f"internal ops: density {p['internal_op_density']:.2f}, net {p['net_level_change']:+d}, "
        f"reversal {p['reversal_rate']:.2f} over {p['window']}"
    )


def _counterfactual(p: Payload) -> str:
    baseline = p["baseline_accuracy_delta"]
    versus = "" if baseline is None else f" vs NOOP {baseline:+.2f}"
    return (
        f"{op_name(p['op'])} {p['from_level']} -> {p['to_level']}: accuracy {p['accuracy_delta']:+.2f}{versus} "
        f"after {p['horizon_epochs']} epoch(s)"
    )


def _rollback(p: Payload) -> str:
    pruned = f", pruned {' '.join(p['pruned_slots'])}" if p["pruned_slots"] else ""
    return f"GOVERNOR ROLLBACK ({p['reason']}) to epoch {p['restored_epoch']}{pruned}"


def _saved(p: Payload) -> str:
    return f"checkpoint saved after round {p['round']}: {p['path']}"


def _loaded(p: Payload) -> str:
    return f"checkpoint loaded at round {p['round']}: {p['path']}"


RENDERERS: Final[Mapping[TelemetryEventType, Callable[[Payload], str]]] = {
    E.TRAINING_STARTED: _started,
    E.TRAINING_COMPLETED: _completed,
    E.EPOCH_COMPLETED: _epoch,
    E.SEED_GERMINATED: _germinated,
    E.SEED_STAGE_CHANGED: _stage,
    E.SEED_GATE_EVALUATED: _gate,
    E.SEED_FOSSILIZED: _fossilized,
    E.SEED_PRUNED: _pruned,
    E.SEED_INTERNAL_LEVEL_CHANGED: _level,
    E.ACTION_TAKEN: _action,
    E.REWARD_COMPUTED: _reward,
    E.EPISODE_OUTCOME: _outcome,
    E.PPO_UPDATE_COMPLETED: _ppo,
    E.INTERNAL_OP_METRICS: _op_metrics,
    E.COUNTERFACTUAL_DELTA: _counterfactual,
    E.GOVERNOR_ROLLBACK: _rollback,
    E.CHECKPOINT_SAVED: _saved,
    E.CHECKPOINT_LOADED: _loaded,
    E.HOST_BASELINE_EPOCH: _baseline,
}
assert_covers(TelemetryEventType, RENDERERS, consumer="karn RENDERERS")


def where(event: WireEvent) -> str:
    """env/episode/epoch/slot as a compact prefix, e.g. `e0 ep1 @17 r0c0`."""
    parts = []
    if event["env_id"] is not None:
        parts.append(f"e{event['env_id']}")
    if event["episode"] is not None:
        parts.append(f"ep{event['episode']}")
    if event["epoch"] is not None:
        parts.append(f"@{event['epoch']}")
    if event["slot_id"] is not None:
        parts.append(str(event["slot_id"]))
    return " ".join(parts)


def render_event(event: WireEvent) -> str:
    return RENDERERS[TelemetryEventType[event["event_type"]]](event["payload"])
