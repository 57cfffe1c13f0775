"""The TensorBoard mapping, read back with TensorBoard's own event reader: tags, steps, values and wall times are
those of the events (scalars travel as float32, hence the relative tolerance)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from karn_synthetic import (
    HEURISTIC_EPISODE_LENGTH,
    OP,
    SyntheticRun,
    baseline_metrics,
    delta_ratio,
    every_event_type_run,
    heuristic_run,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from esper.karn import read_events
from esper.karn.tensorboard import HANDLERS, TensorBoardError, TensorBoardSink, export_tensorboard
from esper.leyline import (
    ActionHead,
    EpochCompletedPayload,
    LifecycleOp,
    PolicyKind,
    RewardComputedPayload,
    TelemetryEvent,
    TelemetryEventType,
    assert_covers,
)

F32 = 1e-6  # relative tolerance of a float32 scalar


def load(logdir: Path) -> EventAccumulator:
    """Everything in one TensorBoard run directory (size guidance 0: keep every record)."""
    assert logdir.is_dir(), f"no TensorBoard run {logdir}"
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def texts(acc: EventAccumulator, tag: str) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(f"{tag}/text_summary")]


def wall(event: TelemetryEvent) -> float:
    return datetime.fromisoformat(event.timestamp).timestamp()


def close_to(pairs: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    return [s for s, _ in pairs] == [s for s, _ in expected] and all(
        v == pytest.approx(e, rel=F32) for (_, v), (_, e) in zip(pairs, expected, strict=True)
    )


@pytest.fixture(scope="module")
def heuristic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """karn_synthetic's two-episode heuristic run (episodes of 6 epochs) exported once: (run dir, TensorBoard dir)."""
    root = tmp_path_factory.mktemp("tb")
    run_dir = heuristic_run(root / "heur", episodes=2)
    export_tensorboard(run_dir, root / "tb")
    return run_dir, root / "tb" / "heur"


def test_every_event_type_has_a_mapping() -> None:
    assert_covers(TelemetryEventType, HANDLERS, consumer="karn TensorBoard HANDLERS")


def test_epoch_scalars_sit_at_the_global_epoch_step(heuristic: tuple[Path, Path]) -> None:
    run_dir, tb = heuristic
    env0 = load(tb / "env0")
    epochs = [e for e in read_events(run_dir / "events.jsonl") if isinstance(e.payload, EpochCompletedPayload)]
    assert len(epochs) == 12
    step = [(e.episode or 0) * HEURISTIC_EPISODE_LENGTH + (e.epoch or 0) for e in epochs]
    assert step == list(range(1, 13))  # episode 1's epochs 1..6 continue episode 0's axis at 7..12
    payloads = [e.payload for e in epochs if isinstance(e.payload, EpochCompletedPayload)]
    assert close_to(scalars(env0, "accuracy/val"), [(s, p.val_accuracy) for s, p in zip(step, payloads, strict=True)])
    assert close_to(
        scalars(env0, "loss/train"), [(s, p.train_loss or 0.0) for s, p in zip(step, payloads, strict=True)]
    )
    assert close_to(scalars(env0, "params/seed"), [(s, p.seed_params) for s, p in zip(step, payloads, strict=True)])
    assert close_to(scalars(env0, "system/rss_mb")[:2], [(1, 301.0), (2, 302.0)])
    assert [e.wall_time for e in env0.Scalars("accuracy/val")] == [wall(e) for e in epochs]  # the events' own time
    # seed 1 (a ladder in r0c0 from epoch 1) is first reported at epoch 2 with delta ratio 0.11, then 0.12, ...
    assert close_to(scalars(env0, "slot/r0c0/delta_ratio")[:3], [(2, 0.11), (3, 0.12), (4, 0.13)])
    assert close_to(scalars(env0, "slot/r0c0/internal_level"), [(1, 1), (2, 2), (7, 1), (8, 2)])
    assert close_to(scalars(env0, "slot/r0c0/active_params"), [(1, 100), (2, 80), (7, 100), (8, 80)])


def test_the_host_baseline_shares_the_accuracy_tags_in_a_run_of_its_own(heuristic: tuple[Path, Path]) -> None:
    _, tb = heuristic
    baseline = load(tb / "env0-host_baseline")
    assert set(baseline.Tags()["scalars"]) == {"accuracy/train", "accuracy/val", "loss/train", "loss/val"}
    expected = [(ep * 6 + epoch, baseline_metrics(ep, epoch).val_accuracy) for ep in (0, 1) for epoch in range(1, 7)]
    assert expected[6] == (7, 51.0)  # episode 1, epoch 1: 40 + 10 + 1
    assert close_to(scalars(baseline, "accuracy/val"), expected)
    assert close_to(scalars(baseline, "loss/val")[:2], [(1, 1.3), (2, 0.65)])


def test_episode_outcomes_and_action_choices_per_episode(heuristic: tuple[Path, Path]) -> None:
    _, tb = heuristic
    env0 = load(tb / "env0")
    assert close_to(scalars(env0, "episode/final_accuracy"), [(0, 60.0), (1, 61.0)])
    assert close_to(scalars(env0, "episode/added_params"), [(0, 80), (1, 80)])
    assert "episode/reward/total" not in env0.Tags()["scalars"]  # the synthetic outcome has no components
    # Each episode: GERMINATE, GROW_INTERNAL, WAIT, FOSSILIZE, GERMINATE, PRUNE (one bucket per op value)
    ops = env0.Histograms("actions/op")
    assert [h.step for h in ops] == [0, 1]
    op_counts = [0] * len(LifecycleOp)
    for op in (OP.GERMINATE, OP.GROW_INTERNAL, OP.WAIT, OP.FOSSILIZE, OP.GERMINATE, OP.PRUNE):
        op_counts[op] += 1
    assert ops[0].histogram_value.bucket == op_counts
    assert ops[0].histogram_value.bucket_limit == [i + 0.5 for i in range(len(LifecycleOp))]
    # the slot head counts only for the ops that use it (not WAIT): r0c0 three times, r0c1 twice, r0c2 never
    assert env0.Histograms("actions/slot")[1].histogram_value.bucket == [3, 2, 0]
    blueprints = env0.Histograms("actions/blueprint")[0].histogram_value  # only the two GERMINATEs use it
    assert (blueprints.num, blueprints.min, blueprints.max) == (2, 7, 13)  # conv_heavy 7, conv_ladder 13
    # GERMINATE uses the style, tempo and alpha target heads, PRUNE the alpha speed and curve: every head is there
    assert {f"actions/{h.value}" for h in ActionHead} <= set(env0.Tags()["histograms"])
    assert env0.Histograms("actions/alpha_speed")[0].histogram_value.num == 1  # the one PRUNE


def test_delta_ratio_histogram_holds_every_measured_seed(heuristic: tuple[Path, Path]) -> None:
    _, tb = heuristic
    histograms = {h.step: h.histogram_value for h in load(tb / "env0").Histograms("seeds/delta_ratio")}
    # epoch 6 of episode 0: the fossilized ladder (5th report) and conv_heavy in r0c1 (1st report, germinated at 5)
    at6 = histograms[6]
    assert at6.num == 2
    assert at6.min == pytest.approx(delta_ratio(1, 5)) and at6.max == pytest.approx(delta_ratio(2, 1))
    assert at6.sum == pytest.approx(delta_ratio(1, 5) + delta_ratio(2, 1))
    assert at6.bucket_limit == pytest.approx([0.15, 0.21]) and at6.bucket == [1, 1]  # a bucket per value
    assert 1 not in histograms  # epoch 1: no seed yet (the ladder germinates after the epoch)


def test_seed_lifecycle_is_text_at_its_epoch(heuristic: tuple[Path, Path]) -> None:
    _, tb = heuristic
    lines = texts(load(tb / "env0"), "lifecycle")
    # the renderings of the TUI, the page and the report, after the event's env, episode, epoch and slot
    assert lines[:4] == [
        (1, "e0 ep0 @1 r0c0 germinated conv_ladder on block_end (env0-seed1, 100 params, level 1/4)"),
        (1, "e0 ep0 @1 r0c0 env0-seed1: DORMANT -> GERMINATED (alpha 0.00)"),
        (2, "e0 ep0 @2 r0c0 env0-seed1: internal grow 1 -> 2 of 4 (80 active params)"),
        (4, "e0 ep0 @4 r0c0 fossilized conv_ladder (env0-seed1, +80 params)"),
    ]
    assert (6, "e0 ep0 @6 r0c1 pruned conv_heavy (env0-seed2) by policy: policy") in lines
    assert (8, "e0 ep1 @2 r0c0 env0-seed3: internal grow 1 -> 2 of 4 (80 active params)") in lines  # step 6 + 2
    # one text per lifecycle event of each episode: germinate + stage twice, grow, fossilize, prune
    assert len(lines) == 2 * 7


def test_run_level_text_and_ppo_updates_per_round(tmp_path: Path) -> None:
    """Two environments of a PPO run: each its own TensorBoard run on one epoch axis; updates at their round."""
    run = SyntheticRun(tmp_path / "ppo", episode_length=3, n_envs=2, policy=PolicyKind.PPO)
    for round_ in (1, 2):
        for env in (0, 1):
            run.start_episode(env, round_ - 1)
            for epoch in (1, 2, 3):
                run.decide(env, epoch, OP.WAIT, reward=0.1 * env + 0.01 * epoch + round_)
            run.outcome(env, 70.0 + env, 0)
        run.ppo_update(round_, op_entropy=0.5 / round_)
    run.finish(episodes=4)
    written = export_tensorboard(tmp_path / "ppo", tmp_path / "tb")
    assert sorted(w.logdir.name for w in written) == ["env0", "env1", "run"]
    env1 = load(tmp_path / "tb" / "ppo" / "env1")
    rewards = [
        ((e.episode or 0) * 3 + (e.epoch or 0), e.payload.components.total)
        for e in read_events(tmp_path / "ppo" / "events.jsonl")
        if isinstance(e.payload, RewardComputedPayload) and e.env_id == 1
    ]
    assert len(rewards) == 6 and close_to(scalars(env1, "reward/total"), rewards)
    assert scalars(env1, "reward/total")[3][0] == 4  # episode 1, epoch 1
    assert scalars(env1, "reward/contribution")[3][1] == pytest.approx(0.1 + 0.01 + 2, rel=F32)
    ppo = load(tmp_path / "tb" / "ppo" / "run")
    assert close_to(scalars(ppo, "ppo/entropy/op"), [(1, 0.5), (2, 0.25)])
    assert close_to(scalars(ppo, "ppo/entropy/slot"), [(1, 0.9), (2, 0.9)])
    assert close_to(scalars(ppo, "ppo/approx_kl"), [(1, 0.01), (2, 0.01)])
    assert close_to(scalars(ppo, "ppo/policy_loss"), [(1, 0.1), (2, 0.1)])
    assert close_to(scalars(ppo, "ppo/q/GROW_INTERNAL"), [(1, 0.1), (2, 0.1)])
    (started, completed) = texts(ppo, "training")
    assert started[0] == completed[0] == 0
    assert started[1].startswith("training started: digits / ppo, 2 env(s) x 3 epochs")
    assert '"episode_length": 3' in started[1]
    assert close_to(scalars(ppo, "run/episodes_completed"), [(0, 4)])


def test_every_event_type_leaves_its_records(tmp_path: Path) -> None:
    export_tensorboard(every_event_type_run(tmp_path / "all"), tmp_path / "tb")
    env0 = load(tmp_path / "tb" / "all" / "env0")
    tags = env0.Tags()["scalars"]
    assert close_to(scalars(env0, "internal_ops/r0c0/density"), [(2, 0.08)])
    assert close_to(scalars(env0, "counterfactual/r0c0/accuracy_delta"), [(2, 2.0)])
    assert close_to(scalars(env0, "counterfactual/r0c0/baseline_accuracy_delta"), [(2, 0.5)])
    assert "reward/thrash_penalty" in tags and "system/rss_mb" in tags and "system/cuda_peak_mb" not in tags
    (rollback,) = texts(env0, "governor")
    assert rollback == (6, "e0 ep0 @6 GOVERNOR ROLLBACK (divergence) to epoch 1")
    assert any("gate G1 failed" in text for _, text in texts(env0, "lifecycle"))
    run = load(tmp_path / "tb" / "all" / "run")
    assert [(step, text.split(":")[0]) for step, text in texts(run, "checkpoint")] == [
        (1, "checkpoint saved after round 1"),
        (1, "checkpoint loaded at round 1"),
    ]


def test_export_refuses_a_directory_that_already_holds_the_run(heuristic: tuple[Path, Path]) -> None:
    run_dir, tb = heuristic
    with pytest.raises(FileExistsError, match="already holds TensorBoard event files"):
        export_tensorboard(run_dir, tb.parent)


def test_an_epoch_before_training_started_is_refused(heuristic: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = heuristic
    events = read_events(run_dir / "events.jsonl")
    sink = TensorBoardSink(tmp_path / "tb")
    with pytest.raises(TensorBoardError, match="EPOCH_COMPLETED of run heur before its TRAINING_STARTED"):
        sink.write(events[1])
    sink.close()
    with pytest.raises(RuntimeError, match="is closed"):
        sink.write(events[0])


def test_a_file_is_not_a_log_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        TensorBoardSink(tmp_path / "file")
