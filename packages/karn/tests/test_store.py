from __future__ import annotations

import json
from pathlib import Path

import pytest
from karn_synthetic import (
    CHANNEL_GROUP_SIZE,
    HEURISTIC_EPISODE_LENGTH,
    OP,
    OVERSHOOT_SEEDS,
    SyntheticRun,
    baseline_metrics,
    channel_run,
    every_event_type_run,
    heuristic_run,
    lattice_run,
    overshoot_run,
    scripted_run,
)

from esper.karn import OVERSHOOT_WINDOW, VIEW_FOR_EVENT, VIEWS, QueryError, RunStore, list_run_dirs, read_events
from esper.karn.eventlog import EventTail
from esper.leyline import TelemetryEventType, WireError


def test_every_event_type_is_queryable_in_its_view(tmp_path: Path) -> None:
    store = RunStore(every_event_type_run(tmp_path / "all"))
    present = {row[0] for row in store.query("SELECT DISTINCT event_type FROM events").rows}
    assert present == {t.name for t in TelemetryEventType}
    for event_type, view in VIEW_FOR_EVENT.items():
        seqs = store.query("SELECT seq FROM events WHERE event_type = ?", [event_type.name]).rows
        # `runs` folds TRAINING_COMPLETED into its start's row, under completed_seq
        column = "completed_seq" if event_type is TelemetryEventType.TRAINING_COMPLETED else "seq"
        found = store.query(f"SELECT count(*) FROM {view} WHERE {column} IN (SELECT unnest(?))", [[s[0] for s in seqs]])
        assert found.rows[0][0] == len(seqs) >= 1, event_type


def test_views_decode_enums_and_compute_the_internal_op_summary(tmp_path: Path) -> None:
    store = RunStore(every_event_type_run(tmp_path / "all"))
    ops = [r[0] for r in store.query("SELECT op FROM actions ORDER BY seq").rows]
    assert ops == ["GERMINATE", "GROW_INTERNAL", "SHRINK_INTERNAL", "FOSSILIZE", "GERMINATE", "PRUNE"]
    summary = store.one("SELECT grow_count, shrink_count, net_level_change, max_level FROM internal_op_summary")
    assert summary == {"grow_count": 1, "shrink_count": 1, "net_level_change": 0, "max_level": 2}
    seeds = store.query("SELECT blueprint_id, ended_as, internal_kind, surface FROM seeds ORDER BY germinated_seq").rows
    assert seeds == [
        ("conv_ladder", "FOSSILIZED", "CONV_LADDER", "BLOCK_END"),
        ("conv_heavy", "PRUNED", "NONE", "BLOCK_END"),
    ]
    stage = store.one("SELECT to_stage FROM seed_lifecycle WHERE event_type = 'SEED_STAGE_CHANGED' LIMIT 1")
    assert stage == {"to_stage": "GERMINATED"}
    advantage = store.one("SELECT accuracy_advantage FROM counterfactual_deltas")
    assert advantage == {"accuracy_advantage": pytest.approx(1.5)}
    assert store.one("SELECT rollbacks_per_episode FROM rollback_rate") == {"rollbacks_per_episode": 1.0}
    # ROI: (91 - 90) points over 200 params = 5 points per 1000 params.
    assert store.one("SELECT roi_per_kparam FROM roi") == {"roi_per_kparam": pytest.approx(5.0)}
    entropy = store.one("SELECT first_entropy, updates FROM head_entropy_trend WHERE head = 'op'")
    assert entropy == {"first_entropy": pytest.approx(0.7), "updates": 1}


def test_seed_epochs_has_one_row_per_seed_per_epoch_with_its_delta_ratio(tmp_path: Path) -> None:
    # r0c0: a ladder germinated at epoch 1 and fossilized at 4; r0c1: conv_heavy germinated at 2 and pruned at 3,
    # then reported as PRUNED (unmeasured) until the episode ends. Each EPOCH_COMPLETED reports the seeds in slots
    # after the epoch, so a seed first appears the epoch after its germination (karn_synthetic: seed n's delta ratio
    # is 0.1 n + 0.01 k at the k-th epoch it is reported in).
    run = SyntheticRun(tmp_path / "d", episode_length=5)
    run.start_episode(0, 3)
    run.decide(0, 1, OP.GERMINATE, blueprint="conv_ladder")
    run.decide(0, 2, OP.GERMINATE, slot="r0c1", blueprint="conv_heavy")
    run.decide(0, 3, OP.PRUNE, slot="r0c1")
    run.decide(0, 4, OP.FOSSILIZE)
    run.decide(0, 5, OP.WAIT)
    run.outcome(0, 90.0, 100)
    run.finish()
    store = RunStore(tmp_path / "d")
    rows = store.query(
        "SELECT epoch, slot_id, seed_id, blueprint_id, stage, alpha, delta_ratio, counterfactual_contribution "
        "FROM seed_epochs ORDER BY seq, slot_id"
    ).rows
    assert rows == [
        (2, "r0c0", "env0-seed1", "conv_ladder", "GERMINATED", 0.0, 0.11, None),
        (3, "r0c0", "env0-seed1", "conv_ladder", "GERMINATED", 0.0, 0.12, None),
        (3, "r0c1", "env0-seed2", "conv_heavy", "GERMINATED", 0.0, 0.21, None),
        (4, "r0c0", "env0-seed1", "conv_ladder", "GERMINATED", 0.0, 0.13, None),
        (4, "r0c1", "env0-seed2", "conv_heavy", "PRUNED", 0.0, None, None),
        (5, "r0c0", "env0-seed1", "conv_ladder", "FOSSILIZED", 1.0, 0.14, 0.4),
        (5, "r0c1", "env0-seed2", "conv_heavy", "PRUNED", 0.0, None, None),
    ]
    keys = store.query("SELECT DISTINCT run_id, rank, env_id, episode FROM seed_epochs").rows
    assert keys == [("d", 0, 0, 3)]
    # Each row keeps its EPOCH_COMPLETED's seq and timestamp, in file order.
    joined = store.query(
        "SELECT count(*) FROM seed_epochs s JOIN epochs e USING (seq) WHERE s.epoch = e.epoch "
        "AND s.timestamp = e.timestamp AND e.slot_id IS NULL"
    ).rows
    assert joined == [(7,)]
    assert store.one("SELECT max(delta_ratio) AS top FROM seed_epochs WHERE seed_id = 'env0-seed1'") == {"top": 0.14}


def test_host_baseline_has_one_row_per_baseline_epoch_with_its_metrics(tmp_path: Path) -> None:
    # Two episodes, each followed by its host-only baseline: env 0, the episode, epochs 1-6 (karn_synthetic:
    # val accuracy 40 + 10 * episode + epoch, train accuracy one point higher, losses 1.1 / epoch and 1.3 / epoch).
    store = RunStore(heuristic_run(tmp_path / "h", episodes=2))
    rows = store.query(
        "SELECT run_id, rank, env_id, episode, epoch, slot_id, train_loss, train_accuracy, val_loss, val_accuracy "
        "FROM host_baseline ORDER BY seq"
    ).rows
    assert rows == [
        (
            "h",
            0,
            0,
            episode,
            epoch,
            None,
            1.1 / epoch,
            41.0 + 10 * episode + epoch,
            1.3 / epoch,
            40.0 + 10 * episode + epoch,
        )
        for episode in (0, 1)
        for epoch in range(1, HEURISTIC_EPISODE_LENGTH + 1)
    ]
    assert rows[-1][-1] == baseline_metrics(1, 6).val_accuracy == 56.0
    # Each baseline epoch is written after its episode's own events and before the next episode's.
    order = store.query(
        "SELECT b.episode, max(b.seq) < (SELECT min(seq) FROM epochs WHERE episode = b.episode + 1), "
        "min(b.seq) > (SELECT seq FROM episode_outcomes WHERE episode = b.episode) FROM host_baseline b GROUP BY 1 "
        "ORDER BY 1"
    ).rows
    assert order == [(0, True, True), (1, None, True)]
    # The overlay: each grown epoch has its host-only twin (same env, episode, epoch).
    joined = store.query(
        "SELECT count(*) FROM epochs e JOIN host_baseline b USING (run_id, rank, env_id, episode, epoch)"
    ).rows
    assert joined == [(12,)]
    assert RunStore(scripted_run(tmp_path / "ppo", [], episode_length=2)).view("host_baseline").rows == []


def test_anti_thrash_reversal_rate_and_density(tmp_path: Path) -> None:
    # Germinated at epoch 1 of 10 and live to the end: 9 decisions while live. Ops +,+,-,+ flip direction twice
    # in 3 steps; net +2 over 4 ops is a level convergence of 0.5.
    ops = [
        (1, OP.GERMINATE),
        (2, OP.GROW_INTERNAL),
        (3, OP.GROW_INTERNAL),
        (4, OP.SHRINK_INTERNAL),
        (8, OP.GROW_INTERNAL),
    ]
    store = RunStore(scripted_run(tmp_path / "t", ops, episode_length=10))
    row = store.one("SELECT * FROM anti_thrash")
    assert row is not None
    assert row["op_count"] == 4 and row["decisions_while_live"] == 9
    assert row["internal_op_density"] == pytest.approx(4 / 9)
    assert row["reversal_rate"] == pytest.approx(2 / 3)
    assert row["net_level_change"] == 2
    assert row["level_convergence"] == pytest.approx(0.5)


def test_internal_op_share_counts_only_decisions_with_a_live_ladder(tmp_path: Path) -> None:
    # Before the ladder exists (epoch 1 germinates conv_heavy elsewhere) decisions don't count; after it is pruned
    # neither do they.
    run = SyntheticRun(tmp_path / "s", episode_length=8)
    run.start_episode(0, 0)
    run.decide(0, 1, OP.GERMINATE, slot="r0c1", blueprint="conv_heavy")  # no ladder yet: not counted
    run.decide(0, 2, OP.GERMINATE, blueprint="conv_ladder")  # the germination itself: not counted
    run.decide(0, 3, OP.GROW_INTERNAL)  # counted, internal
    run.decide(0, 4, OP.FOSSILIZE, slot="r0c1")  # counted, not internal
    run.decide(0, 5, OP.PRUNE)  # counted (the ladder was live when deciding), not internal
    run.decide(0, 6, OP.PRUNE, slot="r0c1", success=False)  # ladder gone: not counted
    run.outcome(0, 90.0, 100)
    run.finish()
    row = RunStore(tmp_path / "s").one("SELECT * FROM internal_op_share")
    assert row == {"run_id": "s", "non_wait_decisions_with_ladder": 3, "internal_ops": 1, "internal_op_share": 1 / 3}


def test_a_torn_last_line_is_reported_and_skipped(tmp_path: Path) -> None:
    run_dir = scripted_run(tmp_path / "killed", [(1, OP.GERMINATE)], episode_length=4)
    events = run_dir / "events.jsonl"
    complete = len(events.read_text().splitlines())
    with events.open("a") as f:
        f.write('{"event_id": "abc", "event_ty')  # the process died mid-write
    store = RunStore(run_dir)
    assert store.torn_tail is not None and store.torn_tail.line == complete + 1
    assert "torn last line" in store.torn_tail.describe(events)
    assert store.query("SELECT count(*) FROM events").rows[0][0] == complete
    assert len(read_events(events)) == complete


def test_a_malformed_middle_line_is_an_error_naming_its_line(tmp_path: Path) -> None:
    run_dir = scripted_run(tmp_path / "bad", [(1, OP.GERMINATE)], episode_length=4)
    events = run_dir / "events.jsonl"
    lines = events.read_text().splitlines()
    lines[2] = lines[2].replace('"severity":"info"', '"severity":"loud"')
    events.write_text("\n".join(lines) + "\n")
    with pytest.raises(WireError, match=r"severity: .*events.jsonl:3: .loud. is not allowed; allowed values: .debug"):
        RunStore(run_dir)
    lines[2] = "not json"
    events.write_text("\n".join(lines) + "\n")
    with pytest.raises(WireError, match=r"events.jsonl:3: not JSON"):
        RunStore(run_dir)


def test_tail_reads_only_completed_lines(tmp_path: Path) -> None:
    run_dir = scripted_run(tmp_path / "live", [], episode_length=2)
    events = run_dir / "events.jsonl"
    text = events.read_text()
    events.write_text(text[: len(text) - 10])  # the writer is mid-line
    tail = EventTail(events)
    first = tail.poll()
    assert len(first) == len(text.splitlines()) - 1
    events.write_text(text)  # the line is finished
    rest = tail.poll()
    assert [e["seq"] for e in rest] == [len(first) + 1]
    assert json.loads(text.splitlines()[-1])["event_id"] == rest[0]["event_id"]


def test_queries_fail_with_duckdb_messages_and_views_are_listed(tmp_path: Path) -> None:
    store = RunStore(scripted_run(tmp_path / "q", [], episode_length=2))
    with pytest.raises(QueryError, match="nope"):
        store.query("SELECT * FROM nope")
    with pytest.raises(QueryError, match="unknown view 'nope'; views: events, runs"):
        store.view("nope")
    assert all(description for description, _ in VIEWS.values())


def test_list_run_dirs_finds_runs_only(tmp_path: Path) -> None:
    scripted_run(tmp_path / "a", [], episode_length=2)
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in list_run_dirs(tmp_path)] == ["a"]
    with pytest.raises(FileNotFoundError, match="no such runs directory"):
        list_run_dirs(tmp_path / "missing")


def test_invalid_actions_and_gate_refusals_are_counted_apart(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "r", episode_length=4)
    run.start_episode(0, 1)
    run.decide(0, 1, OP.GERMINATE)
    run.decide(0, 2, OP.FOSSILIZE, success=False)  # the rule set refuses it: invalid
    run.decide(0, 3, OP.ADVANCE, success=False, gate_refused=True)  # valid, refused on a measurement
    run.decide(0, 4, OP.WAIT)
    run.outcome(0, 90.0, 100)
    run.finish()
    row = RunStore(tmp_path / "r").one(
        "SELECT decisions, invalid, invalid_action_rate, gate_refusals, gate_refusal_rate FROM invalid_action_rate"
    )
    assert row == {
        "decisions": 4,
        "invalid": 1,
        "invalid_action_rate": 0.25,
        "gate_refusals": 1,
        "gate_refusal_rate": 0.25,
    }


def test_the_slots_view_lists_each_slot_with_its_surface_in_action_order(tmp_path: Path) -> None:
    # karn_synthetic.LATTICE: two layers, POST_ATTN (r0c*) and POST_MLP (r1c*); action order is the forward order
    # (layer * 2 + rank), not the ids' row-major order (r0c0 r0c1 r1c0 r1c1).
    store = RunStore(lattice_run(tmp_path / "l"))
    rows = store.query('SELECT run_id, action_index, slot_id, surface, "order", channels, position FROM slots').rows
    assert rows == [
        ("l", 0, "r0c0", "POST_ATTN", 0, 32, 0.25),
        ("l", 1, "r1c0", "POST_MLP", 1, 32, 0.5),
        ("l", 2, "r0c1", "POST_ATTN", 2, 32, 0.75),
        ("l", 3, "r1c1", "POST_MLP", 3, 32, 1.0),
    ]
    run = store.one("SELECT slot_ids, lattice_size, topology FROM runs")
    assert run == {"slot_ids": ["r0c0", "r1c0", "r0c1", "r1c1"], "lattice_size": 4, "topology": "transformer"}
    # A block-end CNN run: three BLOCK_END slots, in order.
    cnn = RunStore(scripted_run(tmp_path / "c", [], episode_length=2))
    assert cnn.query("SELECT slot_id, surface, channels FROM slots ORDER BY action_index").rows == [
        ("r0c0", "BLOCK_END", 4),
        ("r0c1", "BLOCK_END", 8),
        ("r0c2", "BLOCK_END", 16),
    ]


def test_seeds_and_their_lifecycle_carry_the_surface_of_their_slot(tmp_path: Path) -> None:
    store = RunStore(lattice_run(tmp_path / "l"))
    seeds = store.query(
        "SELECT slot_id, blueprint_id, internal_kind, surface, ended_as, counterfactual_contribution FROM seeds "
        "ORDER BY germinated_seq"
    ).rows
    assert seeds == [
        ("r0c0", "lora_ladder", "LORA_LADDER", "POST_ATTN", "FOSSILIZED", 0.4),
        ("r1c0", "lora_large", "NONE", "POST_MLP", "PRUNED", None),
        ("r0c1", "lora", "NONE", "POST_ATTN", None, None),
    ]
    germinated = store.query(
        "SELECT slot_id, surface FROM seed_lifecycle WHERE event_type = 'SEED_GERMINATED' ORDER BY seq"
    ).rows
    assert germinated == [("r0c0", "POST_ATTN"), ("r1c0", "POST_MLP"), ("r0c1", "POST_ATTN")]
    assert store.query("SELECT DISTINCT surface FROM seed_lifecycle WHERE event_type <> 'SEED_GERMINATED'").rows == [
        (None,)
    ]


def test_surface_usage_counts_match_the_hand_counted_lattice_log(tmp_path: Path) -> None:
    # karn_synthetic.lattice_run, by surface:
    # POST_ATTN (r0c0, r0c1): germinations e1 (lora_ladder r0c0), e8 (lora r0c1) = 2; internal ops e2, e5 = 2;
    #   prunes 0; fossilizations e7 = 1; non-WAIT decisions e1, e2, e5, e7, e8 = 5; contribution at the end: the
    #   fossilized ladder's 0.4 (r0c1 is still live).
    # POST_MLP (r1c0, r1c1): germinations e3 (lora_large) = 1; internal ops 0; prunes e6 = 1; fossilizations 0;
    #   non-WAIT decisions e3, e6, e9 (invalid, still a decision) = 3; the pruned seed was never measured: NULL.
    store = RunStore(lattice_run(tmp_path / "l"))
    rows = store.view("surface_usage").records()
    assert rows == [
        {
            "run_id": "l",
            "surface": "POST_ATTN",
            "slots": 2,
            "germinations": 2,
            "internal_ops": 2,
            "prunes": 0,
            "fossilizations": 1,
            "non_wait_decisions": 5,
            "mean_final_contribution": 0.4,
        },
        {
            "run_id": "l",
            "surface": "POST_MLP",
            "slots": 2,
            "germinations": 1,
            "internal_ops": 0,
            "prunes": 1,
            "fossilizations": 0,
            "non_wait_decisions": 3,
            "mean_final_contribution": None,
        },
    ]
    non_wait = store.one("SELECT count(*) AS n FROM actions WHERE op <> 'WAIT'")
    assert non_wait == {"n": sum(row["non_wait_decisions"] for row in rows)}  # every decision lands on a surface
    # A block-end run has one surface; every decision lands on it.
    cnn = RunStore(every_event_type_run(tmp_path / "all"))
    (block,) = cnn.view("surface_usage").records()
    assert (block["surface"], block["germinations"], block["non_wait_decisions"]) == ("BLOCK_END", 2, 6)


def test_the_ladder_views_count_a_lora_ladder_as_a_ladder(tmp_path: Path) -> None:
    # lattice_run: the lora_ladder in r0c0 is live from its germination (e1) to its fossilization (e7): the non-WAIT
    # decisions e2 (GROW), e3, e5 (GROW), e6, e7 count, two of them internal.
    store = RunStore(lattice_run(tmp_path / "l"))
    row = store.one("SELECT * FROM internal_op_share")
    assert row == {"run_id": "l", "non_wait_decisions_with_ladder": 5, "internal_ops": 2, "internal_op_share": 0.4}
    # Its trajectory: two grows over the 6 decisions (e2-e7, the WAIT at e4 included) taken while it was live.
    thrash = store.one(
        "SELECT seed_id, op_count, decisions_while_live, net_level_change, reversal_rate FROM anti_thrash"
    )
    assert thrash == {
        "seed_id": "env0-seed1",
        "op_count": 2,
        "decisions_while_live": 6,
        "net_level_change": 2,
        "reversal_rate": 0.0,
    }


def test_the_seed_views_carry_a_channel_ladders_group_size_and_0_for_other_seeds(tmp_path: Path) -> None:
    # karn_synthetic.channel_run: a channel_ladder in r0c1 (pre-pool; CHANNEL_GROUP_SIZE = 2 channels per group) grown
    # once at epoch 2, and a conv_heavy in r1c0 (post-pool) germinated at 3.
    assert CHANNEL_GROUP_SIZE == 2
    store = RunStore(channel_run(tmp_path / "c").run_dir)
    seeds = store.query(
        "SELECT slot_id, blueprint_id, internal_kind, internal_group_size, surface FROM seeds ORDER BY germinated_seq"
    ).rows
    assert seeds == [
        ("r0c1", "channel_ladder", "CHANNEL_LADDER", 2, "PRE_POOL"),
        ("r1c0", "conv_heavy", "NONE", 0, "POST_POOL"),
    ]
    levels = store.query(
        "SELECT seed_id, internal_kind, from_level, to_level, max_level, group_size FROM internal_levels"
    )
    assert levels.rows == [("env0-seed1", "CHANNEL_LADDER", 1, 2, 4, 2)]
    germinated = store.query(
        "SELECT seed_id, internal_level, internal_group_size FROM seed_lifecycle WHERE event_type = 'SEED_GERMINATED' "
        "ORDER BY seq"
    ).rows
    assert germinated == [("env0-seed1", 1, 2), ("env0-seed2", 0, 0)]
    # seed_epochs: each report of a seed carries its germination's group size (the ladder from epoch 2, conv_heavy
    # from epoch 4).
    per_epoch = store.query("SELECT epoch, seed_id, internal_group_size FROM seed_epochs ORDER BY seq, slot_id").rows
    assert per_epoch == [
        (2, "env0-seed1", 2),
        (3, "env0-seed1", 2),
        (4, "env0-seed1", 2),
        (4, "env0-seed2", 0),
    ]
    # A block-end run's ladders and fixed seeds have no channel groups.
    cnn = RunStore(every_event_type_run(tmp_path / "all"))
    assert cnn.query("SELECT DISTINCT internal_group_size FROM seeds").rows == [(0,)]
    assert cnn.query("SELECT DISTINCT group_size FROM internal_levels").rows == [(0,)]


def test_overshoot_prunes_match_the_hand_counted_log(tmp_path: Path) -> None:
    # karn_synthetic.overshoot_run (OVERSHOOT_SEEDS): four ladders pruned; the channel ladder 3 epochs after first
    # reaching level 4 of 4 and a conv_ladder exactly 5 after are overshoot prunes; a conv_ladder pruned 8 epochs after
    # its top and one that never reached it (level 2 of 4) are not.
    assert OVERSHOOT_WINDOW == 5
    store = RunStore(overshoot_run(tmp_path / "o"))
    assert store.query("SELECT count(*) FROM seeds WHERE ended_as = 'PRUNED'").rows == [(4,)]
    rows = store.view("overshoot_prunes").records()
    expected = [
        {
            "run_id": "o",
            "env_id": 0,
            "episode": 0,
            "slot_id": slot,
            "seed_id": seed_id,
            "blueprint_id": blueprint,
            "top_epoch": top,
            "pruned_epoch": pruned,
        }
        for seed_id, slot, blueprint, top, pruned, overshoot in OVERSHOOT_SEEDS
        if overshoot
    ]
    assert [row["seed_id"] for row in expected] == ["env0-seed1", "env0-seed4"]
    assert rows == expected
    assert rows[0]["top_epoch"] == 4 and rows[0]["pruned_epoch"] == 7  # 3 epochs after
    rate = store.view("overshoot_prune_rate").records()
    assert rate == [{"run_id": "o", "episodes": 1, "overshoot_prunes": 2, "per_episode": 2.0}]
    assert f"OVERSHOOT_WINDOW = {OVERSHOOT_WINDOW} epochs" in VIEWS["overshoot_prunes"][0]
    # A run whose ladder never reached its top level has none; a run without a finished episode has no rate.
    quiet = RunStore(scripted_run(tmp_path / "q", [(1, OP.GERMINATE), (2, OP.GROW_INTERNAL), (3, OP.PRUNE)]))
    assert quiet.view("overshoot_prunes").rows == []
    assert quiet.view("overshoot_prune_rate").records() == [
        {"run_id": "q", "episodes": 1, "overshoot_prunes": 0, "per_episode": 0.0}
    ]
    unfinished = SyntheticRun(tmp_path / "u", episode_length=2)
    unfinished.start_episode(0, 0)
    unfinished.decide(0, 1, OP.WAIT)
    unfinished.finish()
    assert RunStore(tmp_path / "u").view("overshoot_prune_rate").records() == [
        {"run_id": "u", "episodes": 0, "overshoot_prunes": 0, "per_episode": None}
    ]
