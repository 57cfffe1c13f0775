"""LiveRun over a heuristic-style run: the host-only baseline's epochs and the seed events of each environment's
current episode, and the host-only final accuracy joined to each episode's outcome."""

from __future__ import annotations

from pathlib import Path

from karn_synthetic import HEURISTIC_SEED_MARKS, heuristic_episode, heuristic_start

from esper.karn.live import LiveRun


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
