"""The run store: a run directory's append-only `events.jsonl` (the source of truth) loaded into DuckDB, with one
view per telemetry family and the analytics views on top.

Every line is validated against the TelemetryEvent schema before DuckDB sees it (DuckDB's own JSON reader would
drop a bad line silently); the validated events reach DuckDB through one bulk `read_json` of a temporary NDJSON
file, which is ~100x faster than row inserts. Enums travel on the wire as values; the views show member names,
using CASE expressions generated from the Leyline enums, so a new member shows up without touching SQL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, Literal

import duckdb

from esper.karn.contracts import RunSummary
from esper.karn.eventlog import EventLog, TornTail, WireEvent, read_event_log
from esper.leyline import (
    ActionHead,
    BlueprintAction,
    GateLevel,
    GerminationStyle,
    LifecycleOp,
    RewardComponents,
    SeedInternalKind,
    SeedStage,
    SurfaceType,
    TelemetryEventType,
    assert_covers,
    loads,
)

EVENTS_FILE: Final = "events.jsonl"
SUMMARY_FILE: Final = "summary.json"

_RAW_COLUMNS: Final[Mapping[str, str]] = {
    "seq": "INTEGER",
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "run_id": "VARCHAR",
    "rank": "INTEGER",
    "env_id": "INTEGER",
    "episode": "INTEGER",
    "epoch": "INTEGER",
    "slot_id": "VARCHAR",
    "severity": "VARCHAR",
    "payload": "JSON",
}


def _names(enum: type[Enum], expr: str, *, lower: bool = False) -> str:
    """SQL mapping an enum value to its member name (NULL for NULL)."""
    arms = " ".join(f"WHEN {m.value!r} THEN '{m.name.lower() if lower else m.name}'" for m in enum)
    return f"(CASE {expr} {arms} END)"


_KEYS: Final = "seq, run_id, rank, env_id, episode, epoch, slot_id, timestamp"
# A seed pruned at most this many epochs after it first reached its top internal level is an overshoot prune (the
# `overshoot_prunes` view, the `overshoot_prunes` exit gate): it grew to the top, then was thrown away.
OVERSHOOT_WINDOW: Final = 5
# Reward component columns, in the contract's order (the last is the total).
REWARD_PARTS: Final = tuple(f.name for f in dataclasses.fields(RewardComponents))
HEADS: Final = tuple(head.value for head in ActionHead)

E = TelemetryEventType


def _of(*types: TelemetryEventType) -> str:
    return "event_type IN (" + ", ".join(f"'{t.name}'" for t in types) + ")"


# ---------------------------------------------------------------- payload paths
JsonType = Literal["integer", "number", "string", "boolean", "array"]


@dataclass(frozen=True)
class PayloadPath:
    """One JSON path a view reads from the payload of one event type. The views' SQL is built from these (through
    `_Payload`), and a test resolves every one against that event type's payload schema: a renamed or misspelt
    field fails the test instead of silently reading NULL."""

    view: str
    event_type: TelemetryEventType
    # dotted, as in the SQL's '$.a.b'; a key of a map is a segment too ('head_entropies.op'), and a field of each
    # record of an array is read through `[*]` ('seeds[*].delta_ratio', see `_Payload.items`)
    path: str
    json_type: JsonType | None  # what the SQL expects there (None: kept as JSON, any type)


_PATHS: dict[PayloadPath, None] = {}  # every path read so far, in order, without repeats


class _Payload:
    """The payload column of the rows a view reads (events of `event_types`, under the table alias `alias`). Each
    method returns the SQL reading one field and records its path for every event type carrying it: `of` when
    given (a view over several event types reads some fields from only some of them), else all of them."""

    def __init__(self, view: str, *event_types: TelemetryEventType, alias: str = "") -> None:
        self.view = view
        self.event_types = event_types
        self.column = f"{alias}.payload" if alias else "payload"
        self.prefix = ""  # where `column` sits in the payload: '' here, 'seeds[*].' for the records of `seeds`

    @property
    def where(self) -> str:
        """The filter selecting this view's events."""
        return _of(*self.event_types)

    def _path(self, path: str, json_type: JsonType | None, of: tuple[TelemetryEventType, ...]) -> str:
        carriers = of or self.event_types
        if not set(carriers) <= set(self.event_types):
            raise ValueError(f"view {self.view}: {path} is read from events the view does not select")
        for event_type in carriers:
            _PATHS[PayloadPath(self.view, event_type, self.prefix + path, json_type)] = None
        return f"'$.{path}'"

    def integer(self, path: str, *of: TelemetryEventType, sql_type: str = "BIGINT") -> str:
        return f"CAST({self.column}->>{self._path(path, 'integer', of)} AS {sql_type})"

    def number(self, path: str, *of: TelemetryEventType) -> str:
        return f"CAST({self.column}->>{self._path(path, 'number', of)} AS DOUBLE)"

    def text(self, path: str, *of: TelemetryEventType) -> str:
        return f"({self.column}->>{self._path(path, 'string', of)})"

    def boolean(self, path: str, *of: TelemetryEventType) -> str:
        return f"CAST({self.column}->>{self._path(path, 'boolean', of)} AS BOOLEAN)"

    def array(self, path: str, *of: TelemetryEventType, sql_type: str) -> str:
        return f"CAST({self.column}->{self._path(path, 'array', of)} AS {sql_type})"

    def strings(self, path: str, *of: TelemetryEventType) -> str:
        """The strings at a path through an array of records (`a.b[*].c`), as a VARCHAR[] in the array's order."""
        return f"({self.column}->>{self._path(path, 'string', of)})"

    def json(self, path: str, *of: TelemetryEventType) -> str:
        return f"{self.column}->{self._path(path, None, of)}"

    def items(self, path: str, *of: TelemetryEventType, alias: str) -> _Items:
        """A reader of the records in the array at `path`: its `unnest` (in a SELECT list) makes one row per record,
        named `alias`, and its methods read a record's fields (recorded as `path[*].field`)."""
        return _Items(self, path, of, alias)


class _Items(_Payload):
    """The records of an array field of a view's payload, one row each. `unnest` goes in the SELECT list of the
    query over the events (it keeps the array's order); an outer query reads the fields from `alias`."""

    def __init__(self, payload: _Payload, path: str, of: tuple[TelemetryEventType, ...], alias: str) -> None:
        super().__init__(payload.view, *(of or payload.event_types))
        self.column = alias
        self.prefix = f"{payload.prefix}{path}[*]."
        array = payload._path(path, "array", of)
        self.unnest = f"unnest(CAST({payload.column}->{array} AS JSON[])) AS {alias}"
        # the record's index in the array (from 0), beside `unnest` in the same SELECT list
        self.index = f"generate_subscripts(CAST({payload.column}->{array} AS JSON[]), 1) - 1"


_STARTED = _Payload("runs", E.TRAINING_STARTED, alias="s")
_COMPLETED = _Payload("runs", E.TRAINING_COMPLETED, alias="c")
_EPOCH = _Payload("epochs", E.EPOCH_COMPLETED)
_BASELINE = _Payload("host_baseline", E.HOST_BASELINE_EPOCH)
_SEED = _Payload(
    "seed_lifecycle", E.SEED_GERMINATED, E.SEED_STAGE_CHANGED, E.SEED_GATE_EVALUATED, E.SEED_FOSSILIZED, E.SEED_PRUNED
)
_GERMINATED = _Payload("seeds", E.SEED_GERMINATED, alias="g")
_ENDED = _Payload("seeds", E.SEED_FOSSILIZED, E.SEED_PRUNED, alias="e")
_LEVEL = _Payload("internal_levels", E.SEED_INTERNAL_LEVEL_CHANGED)
_ACTION = _Payload("actions", E.ACTION_TAKEN)
_REWARD = _Payload("rewards", E.REWARD_COMPUTED)
_OUTCOME = _Payload("episode_outcomes", E.EPISODE_OUTCOME)
_PPO = _Payload("ppo_updates", E.PPO_UPDATE_COMPLETED)
_WINDOW = _Payload("internal_op_metrics", E.INTERNAL_OP_METRICS)
_DELTA = _Payload("counterfactual_deltas", E.COUNTERFACTUAL_DELTA)
_ROLLBACK = _Payload("governor_rollbacks", E.GOVERNOR_ROLLBACK)
_CHECKPOINT = _Payload("checkpoints", E.CHECKPOINT_SAVED, E.CHECKPOINT_LOADED)
_EPOCH_SEEDS = _Payload("seed_epochs", E.EPOCH_COMPLETED)
_EPOCH_SEED_BIRTH = _Payload("seed_epochs", E.SEED_GERMINATED)
_SLOT_CONFIG = _Payload("slots", E.TRAINING_STARTED)
_SLOT = _SLOT_CONFIG.items("slot_config.slots", alias="spec")
_SEED_EPOCH = _EPOCH_SEEDS.items("seeds", alias="seed")

_STAGED = (E.SEED_STAGE_CHANGED, E.SEED_PRUNED)  # the seed_lifecycle events with a from_stage
_ENDING = (E.SEED_FOSSILIZED, E.SEED_PRUNED)


# name -> (description, SQL). Order matters: later views use earlier ones.
def _per_episode(view: str, count: str, rate: str) -> str:
    """A per-run rate: rows of `view` counted as `count`, finished episodes, and `rate` = count per episode (NULL: no
    finished episode); every run appears, with 0 where it has no such row."""
    return f"""
        WITH e AS (SELECT run_id, count(*) AS episodes FROM episode_outcomes GROUP BY run_id),
             c AS (SELECT run_id, count(*) AS {count} FROM {view} GROUP BY run_id)
        SELECT r.run_id, coalesce(e.episodes, 0) AS episodes, coalesce(c.{count}, 0) AS {count},
          coalesce(c.{count}, 0) / nullif(e.episodes, 0) AS {rate}
        FROM (SELECT DISTINCT run_id FROM runs) r LEFT JOIN e USING (run_id) LEFT JOIN c USING (run_id)
        """


VIEWS: Final[dict[str, tuple[str, str]]] = {
    "events": ("Every event: envelope columns and the payload as JSON.", "SELECT * FROM raw_events"),
    "runs": (
        "One row per training start, with its completion when there is one. slot_ids: the enabled slots in action "
        "order (the slot config's; `slots` has each with its surface); lattice_size: the injection points the host "
        "exposes.",
        f"""
        WITH s AS (SELECT * FROM raw_events WHERE {_STARTED.where}),
             c AS (SELECT * FROM raw_events WHERE {_COMPLETED.where})
        SELECT s.seq, s.run_id, s.timestamp AS started_at,
          {_STARTED.text("task")} AS task, {_STARTED.text("policy")} AS policy,
          {_STARTED.text("topology")} AS topology,
          {_STARTED.integer("n_envs", sql_type="INTEGER")} AS n_envs,
          {_STARTED.integer("episode_length", sql_type="INTEGER")} AS episode_length,
          {_STARTED.integer("max_seeds", sql_type="INTEGER")} AS max_seeds,
          {_STARTED.integer("seed")} AS seed, {_STARTED.text("device")} AS device,
          {_STARTED.integer("host_params")} AS host_params,
          {_STARTED.integer("world_size", sql_type="INTEGER")} AS world_size,
          {_STARTED.text("parallel_mode")} AS parallel_mode,
          {_STARTED.strings("slot_config.slots[*].slot_id")} AS slot_ids,
          {_STARTED.integer("slot_config.lattice_size", sql_type="INTEGER")} AS lattice_size,
          {_STARTED.array("blueprints", sql_type="VARCHAR[]")} AS blueprints,
          c.seq AS completed_seq, c.timestamp AS completed_at,
          {_COMPLETED.integer("episodes_completed", sql_type="INTEGER")} AS episodes_completed,
          {_COMPLETED.number("wall_seconds")} AS wall_seconds,
          {_COMPLETED.boolean("interrupted")} AS interrupted
        FROM s ASOF LEFT JOIN c ON c.run_id = s.run_id AND c.seq >= s.seq
        """,
    ),
    "slots": (
        "One row per enabled slot per training start (TRAINING_STARTED's slot config): action_index (the slot "
        "head's value: slots are in action order, sorted by `order`), slot_id, surface (where in the host it sits), "
        'order (the injection point\'s place in the forward pass; quote it: "order"), channels (width at the point) '
        "and position (relative depth, for display).",
        f"""
        WITH s AS (SELECT seq, run_id, {_SLOT.unnest}, {_SLOT.index} AS action_index
                   FROM raw_events WHERE {_SLOT_CONFIG.where})
        SELECT seq, run_id, action_index, {_SLOT.text("slot_id")} AS slot_id,
          {_names(SurfaceType, _SLOT.integer("surface"))} AS surface, {_SLOT.integer("order")} AS "order",
          {_SLOT.integer("channels")} AS channels, {_SLOT.number("position")} AS position
        FROM s
        """,
    ),
    "epochs": (
        "Host epochs per environment: losses, accuracies, parameters, live seeds, timing.",
        f"""SELECT {_KEYS}, {_EPOCH.number("train_loss")} AS train_loss,
          {_EPOCH.number("train_accuracy")} AS train_accuracy,
          {_EPOCH.number("val_loss")} AS val_loss, {_EPOCH.number("val_accuracy")} AS val_accuracy,
          {_EPOCH.integer("host_params")} AS host_params, {_EPOCH.integer("seed_params")} AS seed_params,
          {_EPOCH.integer("live_seeds")} AS live_seeds, {_EPOCH.integer("fossilized_seeds")} AS fossilized_seeds,
          {_EPOCH.number("epoch_seconds")} AS epoch_seconds,
          {_EPOCH.boolean("governor_rollback")} AS governor_rollback
        FROM raw_events WHERE {_EPOCH.where}""",
    ),
    "host_baseline": (
        "HOST_BASELINE_EPOCH: each epoch of the host-only baseline a heuristic or random run trains after an episode "
        "(the same host, seeded alike, every slot dormant, for the same epochs), under that episode's env (0), "
        "episode and epoch: losses and accuracies, to read the grown curves in `epochs` against.",
        f"""SELECT {_KEYS}, {_BASELINE.number("train_loss")} AS train_loss,
          {_BASELINE.number("train_accuracy")} AS train_accuracy,
          {_BASELINE.number("val_loss")} AS val_loss, {_BASELINE.number("val_accuracy")} AS val_accuracy
        FROM raw_events WHERE {_BASELINE.where}""",
    ),
    "seed_epochs": (
        "One row per seed per EPOCH_COMPLETED (every seed in a slot after the epoch, in slot order; slot_id is the "
        "seed's): stage, alpha, delta_ratio (mean |delta| / |x| over the epoch's training batches: what the seed adds "
        "at full amplitude relative to the host features reaching it; NULL when not measured), the counterfactual "
        "contribution and internal_group_size (channels per group of a channel ladder, 0 for every other seed, from "
        "the seed's SEED_GERMINATED; NULL when the log has no germination of it).",
        f"""
        WITH e AS (SELECT seq, run_id, rank, env_id, episode, epoch, timestamp, {_SEED_EPOCH.unnest}
                   FROM raw_events WHERE {_EPOCH_SEEDS.where}),
             g AS (SELECT run_id, rank, env_id, episode, {_EPOCH_SEED_BIRTH.text("seed_id")} AS seed_id,
                     any_value({_EPOCH_SEED_BIRTH.integer("internal_group_size")}) AS internal_group_size
                   FROM raw_events WHERE {_EPOCH_SEED_BIRTH.where} GROUP BY ALL),
             s AS (SELECT seq, run_id, rank, env_id, episode, epoch, {_SEED_EPOCH.text("slot_id")} AS slot_id,
                     timestamp, {_SEED_EPOCH.text("seed_id")} AS seed_id,
                     {_SEED_EPOCH.text("blueprint_id")} AS blueprint_id,
                     {_names(SeedStage, _SEED_EPOCH.integer("stage"))} AS stage,
                     {_SEED_EPOCH.number("alpha")} AS alpha, {_SEED_EPOCH.number("delta_ratio")} AS delta_ratio,
                     {_SEED_EPOCH.number("counterfactual_contribution")} AS counterfactual_contribution
                   FROM e)
        SELECT s.*, g.internal_group_size
        FROM s LEFT JOIN g USING (run_id, rank, env_id, episode, seed_id)
        """,
    ),
    "seed_lifecycle": (
        "Seed lifecycle events (germinated, stage changes, gate results, fossilized, pruned), one row each; "
        "internal_kind, internal_level, internal_group_size (channels per group of a channel ladder; 0 for every other "
        "seed) and surface (the slot's) come with the germination.",
        f"""SELECT {_KEYS}, event_type, {_SEED.text("seed_id")} AS seed_id,
          {_SEED.text("blueprint_id", E.SEED_GERMINATED, E.SEED_STAGE_CHANGED, *_ENDING)} AS blueprint_id,
          {_names(SeedStage, _SEED.integer("from_stage", *_STAGED))} AS from_stage,
          {_names(SeedStage, _SEED.integer("to_stage", E.SEED_STAGE_CHANGED))} AS to_stage,
          {_names(GateLevel, _SEED.integer("result.gate", E.SEED_GATE_EVALUATED))} AS gate,
          {_SEED.boolean("result.passed", E.SEED_GATE_EVALUATED)} AS gate_passed,
          {_SEED.text("result.message", E.SEED_GATE_EVALUATED)} AS gate_message,
          {_SEED.text("reason", E.SEED_PRUNED)} AS prune_reason,
          {_SEED.text("initiator", E.SEED_PRUNED)} AS prune_initiator,
          COALESCE({_SEED.integer("params", E.SEED_GERMINATED)}, {_SEED.integer("params_added", E.SEED_FOSSILIZED)},
            -{_SEED.integer("params_removed", E.SEED_PRUNED)}) AS params_delta,
          {_SEED.number("counterfactual_contribution", *_ENDING)} AS counterfactual_contribution,
          {_names(SeedInternalKind, _SEED.integer("internal_kind", E.SEED_GERMINATED))} AS internal_kind,
          {_SEED.integer("internal_level", E.SEED_GERMINATED)} AS internal_level,
          {_SEED.integer("internal_group_size", E.SEED_GERMINATED)} AS internal_group_size,
          {_names(SurfaceType, _SEED.integer("surface", E.SEED_GERMINATED))} AS surface
        FROM raw_events WHERE {_SEED.where}""",
    ),
    "seeds": (
        "One row per germinated seed: where (slot and its surface), which blueprint and internal kind (NONE: not a "
        "ladder), internal_group_size (channels per group of a channel ladder; 0 for every other seed), when it "
        "started and how it ended (NULL: still live), with its counterfactual contribution at the end (percentage "
        "points; NULL: still live or never measured).",
        f"""
        WITH g AS (SELECT * FROM raw_events WHERE {_GERMINATED.where}),
             e AS (SELECT * FROM raw_events WHERE {_ENDED.where})
        SELECT g.run_id, g.env_id, g.episode, g.slot_id, {_GERMINATED.text("seed_id")} AS seed_id,
          {_GERMINATED.text("blueprint_id")} AS blueprint_id, {_GERMINATED.integer("params")} AS params,
          {_names(SeedInternalKind, _GERMINATED.integer("internal_kind"))} AS internal_kind,
          {_GERMINATED.integer("internal_group_size")} AS internal_group_size,
          {_names(SurfaceType, _GERMINATED.integer("surface"))} AS surface,
          g.epoch AS germinated_epoch, g.seq AS germinated_seq,
          CASE e.event_type WHEN '{E.SEED_FOSSILIZED.name}' THEN 'FOSSILIZED'
                            WHEN '{E.SEED_PRUNED.name}' THEN 'PRUNED' END AS ended_as,
          e.epoch AS ended_epoch, e.seq AS ended_seq,
          {_ENDED.number("counterfactual_contribution")} AS counterfactual_contribution
        FROM g LEFT JOIN e ON e.run_id = g.run_id AND {_ENDED.text("seed_id")} = {_GERMINATED.text("seed_id")}
        """,
    ),
    "internal_levels": (
        "SEED_INTERNAL_LEVEL_CHANGED: each successful GROW/SHRINK_INTERNAL with its level delta; group_size: channels "
        "per group of a channel ladder (0 for every other seed).",
        f"""SELECT {_KEYS}, {_LEVEL.text("seed_id")} AS seed_id, {_LEVEL.text("blueprint_id")} AS blueprint_id,
          {_names(SeedInternalKind, _LEVEL.integer("internal_kind"))} AS internal_kind,
          {_LEVEL.integer("from_level")} AS from_level, {_LEVEL.integer("to_level")} AS to_level,
          {_LEVEL.integer("to_level")} - {_LEVEL.integer("from_level")} AS level_delta,
          {_LEVEL.integer("max_level")} AS max_level, {_LEVEL.integer("active_params")} AS active_params,
          {_LEVEL.integer("group_size")} AS group_size
        FROM raw_events WHERE {_LEVEL.where}""",
    ),
    "actions": (
        "Every decision: the chosen op and heads, whether it was applied, the ops the mask allowed.",
        f"""SELECT {_KEYS}, {_ACTION.text("policy")} AS policy,
          {_names(LifecycleOp, _ACTION.integer("action.op"))} AS op, {_ACTION.integer("action.slot")} AS slot_index,
          {_names(BlueprintAction, _ACTION.integer("action.blueprint"), lower=True)} AS blueprint_id,
          {_names(GerminationStyle, _ACTION.integer("action.style"))} AS style,
          {_ACTION.integer("action.tempo")} AS tempo, {_ACTION.integer("action.alpha_target")} AS alpha_target,
          {_ACTION.integer("action.alpha_speed")} AS alpha_speed,
          {_ACTION.integer("action.alpha_curve")} AS alpha_curve,
          {_ACTION.boolean("success")} AS success, {_ACTION.text("rejection_reason")} AS rejection_reason,
          {_ACTION.boolean("gate_refused")} AS gate_refused,
          list_transform({_ACTION.array("valid_ops", sql_type="INTEGER[]")},
            lambda v: {_names(LifecycleOp, "v")}) AS valid_ops,
          {_ACTION.json("op_probabilities")} AS op_probabilities
        FROM raw_events WHERE {_ACTION.where}""",
    ),
    "rewards": (
        "REWARD_COMPUTED: every reward component per step.",
        f"SELECT {_KEYS}, {_names(LifecycleOp, _REWARD.integer('op'))} AS op, "
        + ", ".join(f"{_REWARD.number('components.' + part)} AS {part}" for part in REWARD_PARTS)
        + f" FROM raw_events WHERE {_REWARD.where}",
    ),
    "episode_outcomes": (
        "EPISODE_OUTCOME: one row per finished episode.",
        f"""SELECT {_KEYS}, {_OUTCOME.number("outcome.final_accuracy")} AS final_accuracy,
          {_OUTCOME.number("outcome.best_accuracy")} AS best_accuracy,
          {_OUTCOME.integer("outcome.episode_length")} AS episode_length,
          {_OUTCOME.number("outcome.episode_reward")} AS episode_reward,
          {_OUTCOME.integer("outcome.host_params")} AS host_params,
          {_OUTCOME.integer("outcome.added_params")} AS added_params,
          {_OUTCOME.number("outcome.param_ratio")} AS param_ratio,
          {_OUTCOME.integer("outcome.germinated")} AS germinated,
          {_OUTCOME.integer("outcome.fossilized")} AS fossilized, {_OUTCOME.integer("outcome.pruned")} AS pruned,
          {_OUTCOME.integer("outcome.internal_level_changes")} AS internal_level_changes,
          {_OUTCOME.integer("outcome.invalid_actions")} AS invalid_actions,
          {_OUTCOME.integer("outcome.gate_refusals")} AS gate_refusals,
          {_OUTCOME.integer("outcome.governor_rollbacks")} AS governor_rollbacks
        FROM raw_events WHERE {_OUTCOME.where}""",
    ),
    "ppo_updates": (
        "PPO_UPDATE_COMPLETED: losses, KL, clipping, explained variance, per-head entropies, Q(s, op).",
        f"""SELECT {_KEYS}, {_PPO.integer("round")} AS round, {_PPO.number("policy_loss")} AS policy_loss,
          {_PPO.number("value_loss")} AS value_loss, {_PPO.number("entropy")} AS entropy,
          {_PPO.number("approx_kl")} AS approx_kl, {_PPO.number("clip_fraction")} AS clip_fraction,
          {_PPO.number("explained_variance")} AS explained_variance, {_PPO.number("grad_norm")} AS grad_norm,
          {_PPO.number("learning_rate")} AS learning_rate, {_PPO.number("update_seconds")} AS update_seconds, """
        + ", ".join(f"{_PPO.number('head_entropies.' + head)} AS entropy_{head}" for head in HEADS)
        + f""", {_PPO.json("op_q_values")} AS op_q_values
        FROM raw_events WHERE {_PPO.where}""",
    ),
    "head_entropies": (
        "Per-head policy entropy per PPO update, one row per (update, head).",
        " UNION ALL ".join(
            f"SELECT seq, run_id, round, '{head}' AS head, entropy_{head} AS entropy FROM ppo_updates" for head in HEADS
        ),
    ),
    "internal_op_metrics": (
        "INTERNAL_OP_METRICS: Simic's rolling anti-thrash window per slot.",
        f"""SELECT {_KEYS}, {_WINDOW.integer("window")} AS window, {_WINDOW.integer("op_count")} AS op_count,
          {_WINDOW.number("internal_op_density")} AS internal_op_density,
          {_WINDOW.integer("net_level_change")} AS net_level_change,
          {_WINDOW.number("reversal_rate")} AS reversal_rate
        FROM raw_events WHERE {_WINDOW.where}""",
    ),
    "counterfactual_deltas": (
        "COUNTERFACTUAL_DELTA: loss/accuracy/params before and after an internal op, and the advantage over the "
        "NOOP baseline (observational, not reward).",
        f"""SELECT {_KEYS}, {_names(LifecycleOp, _DELTA.integer("op"))} AS op,
          {_DELTA.integer("from_level")} AS from_level,
          {_DELTA.integer("to_level")} AS to_level, {_DELTA.integer("horizon_epochs")} AS horizon_epochs,
          {_DELTA.number("loss_before")} AS loss_before, {_DELTA.number("loss_after")} AS loss_after,
          {_DELTA.number("accuracy_before")} AS accuracy_before, {_DELTA.number("accuracy_after")} AS accuracy_after,
          {_DELTA.integer("params_before")} AS params_before, {_DELTA.integer("params_after")} AS params_after,
          {_DELTA.number("loss_delta")} AS loss_delta, {_DELTA.number("accuracy_delta")} AS accuracy_delta,
          {_DELTA.number("baseline_accuracy_delta")} AS baseline_accuracy_delta,
          {_DELTA.number("accuracy_delta")} - {_DELTA.number("baseline_accuracy_delta")} AS accuracy_advantage
        FROM raw_events WHERE {_DELTA.where}""",
    ),
    "governor_rollbacks": (
        "GOVERNOR_ROLLBACK: why the governor restored a snapshot and which slots it pruned.",
        f"""SELECT {_KEYS}, {_ROLLBACK.text("reason")} AS reason, {_ROLLBACK.number("loss")} AS loss,
          {_ROLLBACK.number("threshold")} AS threshold, {_ROLLBACK.integer("restored_epoch")} AS restored_epoch,
          {_ROLLBACK.array("pruned_slots", sql_type="VARCHAR[]")} AS pruned_slots
        FROM raw_events WHERE {_ROLLBACK.where}""",
    ),
    "checkpoints": (
        "CHECKPOINT_SAVED / CHECKPOINT_LOADED.",
        f"""SELECT {_KEYS}, CASE event_type WHEN '{E.CHECKPOINT_SAVED.name}' THEN 'saved' ELSE 'loaded' END AS kind,
          {_CHECKPOINT.text("path")} AS path, {_CHECKPOINT.integer("round")} AS round
        FROM raw_events WHERE {_CHECKPOINT.where}""",
    ),
    # ---------------------------------------------------------------- analytics
    "internal_op_summary": (
        "Per seed: GROW/SHRINK_INTERNAL counts, net level change, level range and mean active params.",
        """SELECT run_id, env_id, episode, slot_id, seed_id, blueprint_id,
          count(*) FILTER (WHERE level_delta > 0) AS grow_count,
          count(*) FILTER (WHERE level_delta < 0) AS shrink_count,
          sum(level_delta) AS net_level_change, min(to_level) AS min_level, max(to_level) AS max_level,
          avg(active_params) AS mean_active_params, min(epoch) AS first_epoch, max(epoch) AS last_epoch
        FROM internal_levels GROUP BY ALL""",
    ),
    "action_distribution": (
        "Decisions per op: count, share of all decisions, how many were applied.",
        """SELECT run_id, op, count(*) AS decisions, count(*) / sum(count(*)) OVER (PARTITION BY run_id) AS share,
          count(*) FILTER (WHERE success) AS applied
        FROM actions GROUP BY run_id, op""",
    ),
    "anti_thrash": (
        "Per ladder seed (internal kind not NONE: conv_ladder, lora_ladder, channel_ladder) with an internal-op "
        "trajectory: op density (internal ops / decisions taken while the seed was live), net level change, reversal "
        "rate (direction flips / (ops - 1)) and level convergence (|net level change| / ops: 1 when the level moves "
        "one way, 0 when it oscillates back to where it started).",
        f"""
        WITH steps AS (
          SELECT *, sign(level_delta) AS direction,
            lag(sign(level_delta)) OVER (PARTITION BY run_id, seed_id ORDER BY seq) AS previous
          FROM internal_levels),
        life AS (
          SELECT s.run_id, s.seed_id,
            (SELECT count(*) FROM actions a WHERE a.run_id = s.run_id AND a.env_id = s.env_id
               AND a.episode = s.episode AND a.seq > s.germinated_seq
               AND (s.ended_seq IS NULL OR a.seq <= s.ended_seq)) AS decisions
          FROM seeds s WHERE s.internal_kind <> '{SeedInternalKind.NONE.name}')
        SELECT st.run_id, st.env_id, st.episode, st.slot_id, st.seed_id, count(*) AS op_count,
          f.decisions AS decisions_while_live, count(*) / greatest(f.decisions, 1) AS internal_op_density,
          sum(st.level_delta) AS net_level_change,
          CASE WHEN count(*) > 1
            THEN count(*) FILTER (WHERE st.previous IS NOT NULL AND st.direction <> st.previous) / (count(*) - 1)
            ELSE 0.0 END AS reversal_rate,
          abs(sum(st.level_delta)) / count(*) AS level_convergence
        FROM steps st JOIN life f USING (run_id, seed_id)
        GROUP BY st.run_id, st.env_id, st.episode, st.slot_id, st.seed_id, f.decisions
        """,
    ),
    "internal_op_share": (
        "GROW/SHRINK_INTERNAL share of non-WAIT decisions taken while a ladder seed (any seed with an internal kind: "
        "conv_ladder, lora_ladder, channel_ladder) was live in that env.",
        f"""
        WITH ladder AS (SELECT * FROM seeds WHERE internal_kind <> '{SeedInternalKind.NONE.name}'),
        decided AS (
          SELECT a.run_id, a.seq, a.op FROM actions a
          WHERE a.op <> 'WAIT' AND EXISTS (
            SELECT 1 FROM ladder l WHERE l.run_id = a.run_id AND l.env_id = a.env_id AND l.episode = a.episode
              AND l.germinated_seq < a.seq AND (l.ended_seq IS NULL OR a.seq <= l.ended_seq)))
        SELECT r.run_id, count(d.seq) AS non_wait_decisions_with_ladder,
          count(d.seq) FILTER (WHERE d.op IN ('GROW_INTERNAL', 'SHRINK_INTERNAL')) AS internal_ops,
          CASE WHEN count(d.seq) > 0
            THEN count(d.seq) FILTER (WHERE d.op IN ('GROW_INTERNAL', 'SHRINK_INTERNAL')) / count(d.seq)
          END AS internal_op_share
        FROM (SELECT DISTINCT run_id FROM runs) r LEFT JOIN decided d USING (run_id) GROUP BY r.run_id
        """,
    ),
    "surface_usage": (
        "Per run and surface of its enabled slots: slots (enabled slots on it); germinations (seeds germinated on "
        "it); internal_ops (applied GROW/SHRINK_INTERNAL on its seeds); prunes and fossilizations (its seeds that "
        "ended so); non_wait_decisions (every non-WAIT decision whose slot head chose a slot on it, applied or not, "
        "mapped through the slot config in force); mean_final_contribution (the mean counterfactual contribution, in "
        "percentage points, of its seeds at their end, over those that ended with one measured; NULL: none).",
        """
        WITH enabled AS (
          SELECT run_id, surface, count(DISTINCT slot_id) AS slots, min("order") AS first_order
          FROM slots GROUP BY run_id, surface),
        grown AS (
          SELECT run_id, surface, count(*) AS germinations, count(*) FILTER (WHERE ended_as = 'PRUNED') AS prunes,
            count(*) FILTER (WHERE ended_as = 'FOSSILIZED') AS fossilizations,
            avg(counterfactual_contribution) AS mean_final_contribution
          FROM seeds GROUP BY run_id, surface),
        internal AS (
          SELECT l.run_id, s.surface, count(*) AS internal_ops
          FROM internal_levels l JOIN seeds s ON s.run_id = l.run_id AND s.seed_id = l.seed_id
          GROUP BY l.run_id, s.surface),
        decided AS (
          SELECT a.run_id, s.surface, count(*) AS non_wait_decisions
          FROM actions a ASOF JOIN slots s
            ON s.run_id = a.run_id AND s.action_index = a.slot_index AND a.seq >= s.seq
          WHERE a.op <> 'WAIT' GROUP BY a.run_id, s.surface)
        SELECT e.run_id, e.surface, e.slots, coalesce(g.germinations, 0) AS germinations,
          coalesce(i.internal_ops, 0) AS internal_ops, coalesce(g.prunes, 0) AS prunes,
          coalesce(g.fossilizations, 0) AS fossilizations, coalesce(d.non_wait_decisions, 0) AS non_wait_decisions,
          g.mean_final_contribution
        FROM enabled e LEFT JOIN grown g USING (run_id, surface) LEFT JOIN internal i USING (run_id, surface)
          LEFT JOIN decided d USING (run_id, surface)
        ORDER BY e.run_id, e.first_order
        """,
    ),
    "blueprint_frequency": (
        "Applied GERMINATE decisions per blueprint and their share of all germinations.",
        """SELECT run_id, blueprint_id, count(*) AS germinations,
          count(*) / sum(count(*)) OVER (PARTITION BY run_id) AS frequency
        FROM actions WHERE op = 'GERMINATE' AND success GROUP BY run_id, blueprint_id""",
    ),
    "invalid_action_rate": (
        "Decisions; invalid ones (refused by the structural rule set the masks apply) and their rate; gate refusals "
        "(valid, refused by a seed gate on a measurement) and their rate.",
        """SELECT run_id, count(*) AS decisions, count(*) FILTER (WHERE NOT success AND NOT gate_refused) AS invalid,
          count(*) FILTER (WHERE NOT success AND NOT gate_refused) / count(*) AS invalid_action_rate,
          count(*) FILTER (WHERE gate_refused) AS gate_refusals,
          count(*) FILTER (WHERE gate_refused) / count(*) AS gate_refusal_rate
        FROM actions GROUP BY ALL""",
    ),
    "head_entropy_trend": (
        "Per head over PPO updates: first, last, min, mean entropy and the least-squares slope per round.",
        """SELECT run_id, head, count(*) AS updates, arg_min(entropy, seq) AS first_entropy,
          arg_max(entropy, seq) AS last_entropy, min(entropy) AS min_entropy, avg(entropy) AS mean_entropy,
          regr_slope(entropy, round) AS slope_per_round
        FROM head_entropies GROUP BY ALL""",
    ),
    "rollback_rate": (
        "Governor rollbacks per finished episode.",
        _per_episode("governor_rollbacks", "rollbacks", "rollbacks_per_episode"),
    ),
    "overshoot_prunes": (
        f"Overshoot prunes: seeds pruned within OVERSHOOT_WINDOW = {OVERSHOOT_WINDOW} epochs of first reaching their "
        "top internal level (the seed's first SEED_INTERNAL_LEVEL_CHANGED with to_level = max_level, at top_epoch; "
        f"pruned_epoch - top_epoch <= {OVERSHOOT_WINDOW}), one row each: a ladder grown to the top and thrown away "
        "soon after. A seed that never reached its top level is never one.",
        f"""
        WITH top AS (
          SELECT run_id, seed_id, arg_min(epoch, seq) AS top_epoch
          FROM internal_levels WHERE to_level = max_level GROUP BY run_id, seed_id)
        SELECT s.run_id, s.env_id, s.episode, s.slot_id, s.seed_id, s.blueprint_id, t.top_epoch,
          s.ended_epoch AS pruned_epoch
        FROM seeds s JOIN top t USING (run_id, seed_id)
        WHERE s.ended_as = 'PRUNED' AND s.ended_epoch - t.top_epoch <= {OVERSHOOT_WINDOW}
        ORDER BY s.ended_seq
        """,
    ),
    "overshoot_prune_rate": (
        "Overshoot prunes (overshoot_prunes) per finished episode: episodes, overshoot_prunes, per_episode (NULL: no "
        "finished episode).",
        _per_episode("overshoot_prunes", "overshoot_prunes", "per_episode"),
    ),
    "roi": (
        "Accuracy gain over the host-only baseline per 1000 added trainable parameters (NULL without a baseline "
        "or without added parameters).",
        """SELECT o.run_id, count(*) AS episodes, avg(o.final_accuracy) AS mean_final_accuracy,
          avg(o.added_params) AS mean_added_params, any_value(b.baseline_accuracy) AS baseline_accuracy,
          avg(o.final_accuracy) - any_value(b.baseline_accuracy) AS accuracy_gain,
          (avg(o.final_accuracy) - any_value(b.baseline_accuracy)) / nullif(avg(o.added_params) / 1000.0, 0)
            AS roi_per_kparam
        FROM episode_outcomes o LEFT JOIN baseline b USING (run_id) GROUP BY o.run_id""",
    ),
}

# Every payload path the views read, per view and event type: packages/karn/tests/test_store_paths.py checks each
# against the payload's JSON Schema, and that the views' SQL reads no payload path outside this table.
PAYLOAD_PATHS: Final[tuple[PayloadPath, ...]] = tuple(_PATHS)
_UNKNOWN_VIEWS = {path.view for path in PAYLOAD_PATHS} - VIEWS.keys()
if _UNKNOWN_VIEWS:
    raise ValueError(f"payload paths name views that do not exist: {sorted(_UNKNOWN_VIEWS)}")

# Where each event type can be queried: every TelemetryEventType has a view.
VIEW_FOR_EVENT: Final[Mapping[TelemetryEventType, str]] = {
    E.TRAINING_STARTED: "runs",
    E.TRAINING_COMPLETED: "runs",
    E.EPOCH_COMPLETED: "epochs",
    E.SEED_GERMINATED: "seed_lifecycle",
    E.SEED_STAGE_CHANGED: "seed_lifecycle",
    E.SEED_GATE_EVALUATED: "seed_lifecycle",
    E.SEED_FOSSILIZED: "seed_lifecycle",
    E.SEED_PRUNED: "seed_lifecycle",
    E.SEED_INTERNAL_LEVEL_CHANGED: "internal_levels",
    E.ACTION_TAKEN: "actions",
    E.REWARD_COMPUTED: "rewards",
    E.EPISODE_OUTCOME: "episode_outcomes",
    E.PPO_UPDATE_COMPLETED: "ppo_updates",
    E.INTERNAL_OP_METRICS: "internal_op_metrics",
    E.COUNTERFACTUAL_DELTA: "counterfactual_deltas",
    E.GOVERNOR_ROLLBACK: "governor_rollbacks",
    E.CHECKPOINT_SAVED: "checkpoints",
    E.CHECKPOINT_LOADED: "checkpoints",
    E.HOST_BASELINE_EPOCH: "host_baseline",
}
assert_covers(TelemetryEventType, VIEW_FOR_EVENT, consumer="karn VIEW_FOR_EVENT")


class QueryError(ValueError):
    """A SQL query the store could not run; the message is DuckDB's."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def is_run_dir(path: Path) -> bool:
    return (path / EVENTS_FILE).is_file()


def list_run_dirs(runs_dir: Path) -> list[Path]:
    """Run directories directly under `runs_dir`, oldest first (by their event log's modification time)."""
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no such runs directory")
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(runs, key=lambda p: ((p / EVENTS_FILE).stat().st_mtime, p.name))


def read_baseline_accuracy(run_dir: Path) -> float | None:
    """The host-only baseline of summary.json (written when the run finished); None when there is none yet."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    return loads(RunSummary, path.read_text(encoding="utf-8")).baseline_accuracy


class DuplicateRunIdError(ValueError):
    """Two run directories of one store hold events of the same run id: a query could not tell them apart."""


@dataclass(frozen=True)
class StoredRun:
    """One run directory of a store: its event log (with its torn last line, if any) and its host-only baseline
    accuracy (summary.json's unless given)."""

    run_dir: Path
    log: EventLog
    baseline_accuracy: float | None

    @classmethod
    def read(cls, run_dir: Path, baseline_accuracy: float | None = None) -> StoredRun:
        if not is_run_dir(run_dir):
            raise FileNotFoundError(f"{run_dir}: not a run directory (no {EVENTS_FILE})")
        log = read_event_log(run_dir / EVENTS_FILE)
        return cls(
            run_dir, log, baseline_accuracy if baseline_accuracy is not None else read_baseline_accuracy(run_dir)
        )

    @property
    def run_ids(self) -> list[str]:
        """The run ids its events carry, in order of first appearance (one, for a run Esper wrote)."""
        return list(dict.fromkeys(str(event["run_id"]) for event in self.log.events))


def _check_distinct(runs: Sequence[StoredRun]) -> None:
    """Every run id belongs to one run directory (the views tell runs apart by run_id alone)."""
    owner: dict[str, Path] = {}
    for run in runs:
        for run_id in run.run_ids:
            if run_id in owner:
                raise DuplicateRunIdError(
                    f"run id {run_id!r} is in both {owner[run_id]} and {run.run_dir}: a query over both could not "
                    "tell their events apart"
                )
            owner[run_id] = run.run_dir


CopyFormat = Literal["csv", "parquet"]
_COPY_OPTIONS: Final[Mapping[CopyFormat, str]] = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet"}
_COPY_SOURCE: Final = "karn_copy_source"  # the query being written, registered under this name


class RunStore:
    """Run directories in an in-memory DuckDB: `raw_events` plus the views in VIEWS. `RunStore(run_dir)` holds one
    run; `RunStore.of_runs(run_dirs)` holds several, every view spanning them. Each view keeps `run_id` and computes
    per run (joins, windows and aggregates go by run_id), so a query over several runs filtered to one run id reads
    what that run's own store reads. `seq` is a line number of its own run's log: (run_id, seq) identifies an
    event."""

    runs: tuple[StoredRun, ...]  # in the order given; `raw_events` holds their events in that order
    con: duckdb.DuckDBPyConnection

    def __init__(self, run_dir: Path, *, baseline_accuracy: float | None = None) -> None:
        self._open((StoredRun.read(run_dir, baseline_accuracy),))

    @classmethod
    def of_runs(cls, run_dirs: Sequence[Path]) -> RunStore:
        """One store over several run directories, each with its own summary.json baseline; DuplicateRunIdError
        when two hold the same run id (the same directory twice, or a copy)."""
        if not run_dirs:
            raise ValueError("RunStore.of_runs: no run directories given")
        store = cls.__new__(cls)
        store._open(tuple(StoredRun.read(run_dir) for run_dir in run_dirs))
        return store

    def _open(self, runs: tuple[StoredRun, ...]) -> None:
        _check_distinct(runs)
        self.runs = runs
        self.con = duckdb.connect(":memory:")
        load_events(self.con, [run.log.events for run in runs])
        self.con.execute("CREATE TABLE baseline (run_id VARCHAR, baseline_accuracy DOUBLE)")
        baselines = [(run_id, run.baseline_accuracy) for run in runs for run_id in run.run_ids]
        if baselines:
            self.con.executemany("INSERT INTO baseline VALUES (?, ?)", baselines)
        create_views(self.con)

    def _only(self) -> StoredRun:
        """The run of a single-run store; a store of several has no one run directory (read `runs`)."""
        if len(self.runs) != 1:
            raise ValueError(f"this store holds {len(self.runs)} runs, not one: read RunStore.runs")
        return self.runs[0]

    @property
    def run_dir(self) -> Path:
        return self._only().run_dir

    @property
    def log(self) -> EventLog:
        return self._only().log

    @property
    def baseline_accuracy(self) -> float | None:
        return self._only().baseline_accuracy

    @property
    def torn_tail(self) -> TornTail | None:
        return self._only().log.torn_tail

    def query(self, sql: str, params: Sequence[object] = ()) -> QueryResult:
        try:
            cursor = self.con.execute(sql, list(params))
        except duckdb.Error as exc:  # re-raised as the store's own error type, with DuckDB's message
            raise QueryError(str(exc)) from exc
        columns = [d[0] for d in cursor.description] if cursor.description else []
        return QueryResult(columns, cursor.fetchall())

    def copy_query(self, sql: str, out: Path, file_format: CopyFormat) -> int:
        """Write the rows of a query to `out` as CSV (with a header) or Parquet through DuckDB's COPY, and return how
        many. The file is written beside `out` under a temporary name and renamed: a failed query or write leaves no
        half-written file (and an existing `out` untouched)."""
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            count = self._copy(sql, Path(name), file_format)
            os.replace(name, out)
        except BaseException:  # the temporary file goes; the error goes on
            os.unlink(name)
            raise
        return count

    def _copy(self, sql: str, path: Path, file_format: CopyFormat) -> int:
        # DuckDB parses the query as `query` would (comments, a trailing semicolon); COPY then writes its rows
        target = str(path).replace("'", "''")
        try:
            relation = self.con.sql(sql)
            if relation is None:
                raise QueryError(f"the query returns no rows to write: {sql}")
            self.con.register(_COPY_SOURCE, relation)
            try:
                rows = self.con.execute(f"COPY {_COPY_SOURCE} TO '{target}' ({_COPY_OPTIONS[file_format]})").fetchall()
            finally:
                self.con.unregister(_COPY_SOURCE)
        except duckdb.Error as exc:  # re-raised as the store's own error type, with DuckDB's message
            raise QueryError(str(exc)) from exc
        return int(rows[0][0])

    def view(self, name: str) -> QueryResult:
        if name not in VIEWS:
            raise QueryError(f"unknown view {name!r}; views: {', '.join(VIEWS)}")
        return self.query(f"SELECT * FROM {name}")

    def one(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        records = self.query(sql, params).records()
        if len(records) > 1:
            raise QueryError(f"expected at most one row, got {len(records)}: {sql}")
        return records[0] if records else None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_events(con: duckdb.DuckDBPyConnection, runs: Sequence[Sequence[WireEvent]]) -> None:
    """Create `raw_events` from the validated wire events of each run (in the runs' order, each in file order) with
    one bulk read of a temporary NDJSON file."""
    columns = ", ".join(f"{name}: '{sql_type}'" for name, sql_type in {**_RAW_COLUMNS, "run_order": "INTEGER"}.items())
    fd, name = tempfile.mkstemp(prefix="karn-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for order, events in enumerate(runs):
                for event in events:
                    out.write(json.dumps({**event, "run_order": order}) + "\n")
        if any(runs):
            source = f"read_json('{name}', format = 'newline_delimited', columns = {{{columns}}})"
            con.execute(
                f"CREATE TABLE raw_events AS SELECT * EXCLUDE (run_order) FROM {source} ORDER BY run_order, seq"
            )
        else:
            fields = ", ".join(f"{n} {t}" for n, t in _RAW_COLUMNS.items())
            con.execute(f"CREATE TABLE raw_events ({fields})")
    finally:
        os.unlink(name)


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, (_, sql) in VIEWS.items():
        try:
            con.execute(f"CREATE VIEW {name} AS {sql}")
        except duckdb.Error as exc:  # a broken view is a bug in this module: say which one
            raise QueryError(f"view {name}: {exc}") from exc
