"""LiveRun over a heuristic-style run: the host-only baseline's epochs and the seed events of each environment's
current episode (and of the episodes before it, kept for the accuracy chart), the host-only final accuracy joined to
each episode's outcome, the latest process reading and what the run comparison overlays."""

from __future__ import annotations

from pathlib import Path

from karn_synthetic import (
    HEURISTIC_EPISODE_LENGTH,
    HEURISTIC_SEED_MARKS,
    PROVENANCE,
    heuristic_episode,
    heuristic_run,
    heuristic_start,
)

from esper.karn.live import HISTORY_EPISODES, LiveRun


def test_live_run_keeps_the_baseline_and_seed_marks_of_the_current_episode(tmp_path: Path) -> None:
    run = heuristic_start(tmp_path / "h")
    heuristic_episode(run, 0, 60.0)
    run.host_baseline(range(1, 4))  # the baseline is still training: epochs 1-3 of 6 written
    live = LiveRun(tmp_path / "h")
    live.refresh()
    snap = live.snapshot()
    (env,) = snap["envs"]
    # karn_synthetic.baseline_metrics: val accuracy 40 + 10 * episode + epoch.
    assert env["episode"] == 0 and env["baseline"] == [(1, 41.0), (2, 42.0), (3, 43.0)]
    assert [(m["epoch"], m["kind"], m["slot"]) for m in env["seed_marks"]] == list(HEURISTIC_SEED_MARKS)
    assert [m["seed_id"] for m in env["seed_marks"]] == ["env0-seed1"] * 3 + ["env0-seed2"] * 2
    assert snap["episodes"][0]["baseline_accuracy"] is None  # not the final until the baseline's last epoch
    assert any(entry["text"].startswith("host-only baseline epoch: val 43.0%") for entry in snap["log"])

    run.host_baseline(range(4, 7))
    live.refresh()
    snap = live.snapshot()
    assert [point[1] for point in snap["envs"][0]["baseline"]] == [41.0, 42.0, 43.0, 44.0, 45.0, 46.0]
    assert snap["episodes"][0]["final_accuracy"] == 60.0 and snap["episodes"][0]["baseline_accuracy"] == 46.0

    heuristic_episode(run, 1, 61.0)  # the next episode starts fresh curves; its baseline is not written yet
    live.refresh()
    snap = live.snapshot()
    (env,) = snap["envs"]
    assert env["episode"] == 1 and env["baseline"] == [] and len(env["accuracy"]) == 6
    assert [m["seed_id"] for m in env["seed_marks"]] == ["env0-seed3"] * 3 + ["env0-seed4"] * 2
    assert [(o["episode"], o["baseline_accuracy"]) for o in snap["episodes"]] == [(0, 46.0), (1, None)]
    run.host_baseline()
    run.finish()
    live.refresh()
    snap = live.snapshot()
    assert snap["status"] == "finished" and [p[1] for p in snap["envs"][0]["baseline"]][-1] == 56.0
    assert [o["baseline_accuracy"] for o in snap["episodes"]] == [46.0, 56.0]


def test_live_run_keeps_past_episodes_for_the_chart_and_the_latest_process_reading(tmp_path: Path) -> None:
    heuristic_run(tmp_path / "h", episodes=3)
    live = LiveRun(tmp_path / "h")
    live.refresh()
    snap = live.snapshot()
    (env,) = snap["envs"]
    # The current episode (2) in the env's own fields, the two before it as traces with their baselines and marks.
    assert env["episode"] == 2
    assert [trace["episode"] for trace in env["past_episodes"]] == [0, 1]
    first = env["past_episodes"][0]
    assert [point[1] for point in first["baseline"]] == [41.0, 42.0, 43.0, 44.0, 45.0, 46.0]
    assert len(first["accuracy"]) == HEURISTIC_EPISODE_LENGTH
    assert [(m["epoch"], m["kind"], m["slot"]) for m in first["seed_marks"]] == list(HEURISTIC_SEED_MARKS)
    # karn_synthetic: each epoch reports RSS 300 + epoch MiB and CPU 2 * epoch s, off CUDA; the provenance rides in
    # `started`.
    assert snap["system"] == {"rss_mb": 306.0, "cpu_seconds": 12.0, "cuda_peak_mb": None}
    assert snap["started"]["provenance"]["git_commit"] == PROVENANCE.git_commit
    # What the run comparison overlays: every outcome with its host-only final, env 0's traces oldest first.
    compared = live.comparison()
    assert compared["run_id"] == "h" and compared["status"] == "finished"
    assert [(o["final_accuracy"], o["baseline_accuracy"]) for o in compared["episodes"]] == [
        (60.0, 46.0),
        (61.0, 56.0),
        (62.0, 66.0),
    ]
    assert [trace["episode"] for trace in compared["accuracy"]] == [0, 1, 2]
    assert compared["accuracy"][2]["baseline"][-1] == (6, 66.0)


def test_live_run_bounds_the_past_episodes_it_keeps(tmp_path: Path) -> None:
    run = heuristic_start(tmp_path / "long")
    for episode in range(HISTORY_EPISODES + 3):  # one epoch each is enough to make an episode a trace
        run.start_episode(0, episode)
        run.epoch(0, 1, accuracy=50.0 + episode)
    live = LiveRun(tmp_path / "long")
    live.refresh()
    past = live.snapshot()["envs"][0]["past_episodes"]
    assert len(past) == HISTORY_EPISODES
    assert [trace["episode"] for trace in past] == list(range(2, HISTORY_EPISODES + 2))  # the oldest dropped
    assert past[0]["accuracy"] == [(1, 52.0)]
