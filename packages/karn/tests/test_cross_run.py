"""One RunStore over several runs (`RunStore.of_runs`): every view spans them and keeps `run_id`, and each view
filtered to one run id reads exactly what that run's own store reads (env ids, seed ids and line numbers repeat
across runs; baselines and torn tails stay per run)."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from karn_synthetic import (
    OP,
    SyntheticRun,
    baseline_metrics,
    channel_run,
    every_event_type_run,
    heuristic_run,
    lattice_run,
    overshoot_run,
    scripted_run,
)

from esper.karn import VIEWS, QueryError, RunStore
from esper.karn.store import DuplicateRunIdError

Rows = Counter[tuple[object, ...]]


def two_env_run(run_dir: Path) -> Path:
    """Two environments, one episode each: env 0 grows a ladder twice and prunes it, env 1 grows and shrinks one and
    fossilizes it; the remaining event types once (`extras`); outcomes 70 and 75 with 100 and 300 added params, one
    rollback; summary baseline 65."""
    run = SyntheticRun(run_dir, episode_length=6, n_envs=2)
    for env, ops in (
        (0, [OP.GERMINATE, OP.GROW_INTERNAL, OP.GROW_INTERNAL, OP.WAIT, OP.PRUNE, OP.WAIT]),
        (1, [OP.GERMINATE, OP.GROW_INTERNAL, OP.SHRINK_INTERNAL, OP.GROW_INTERNAL, OP.FOSSILIZE, OP.WAIT]),
    ):
        run.start_episode(env, 0)
        for epoch, op in enumerate(ops, start=1):
            run.decide(env, epoch, op)
    run.extras(0)
    run.outcome(0, 70.0, 100, rollbacks=1)
    run.outcome(1, 75.0, 300)
    run.ppo_update(1, 0.3)
    run.ppo_update(2, 0.05)
    run.finish(baseline_accuracy=65.0)
    return run_dir


def unfinished_run(run_dir: Path) -> Path:
    """Started, never completed (no TRAINING_COMPLETED, no summary.json: no baseline)."""
    return channel_run(run_dir, finish=False).run_dir


# a ladder at its top level (4 of 4) at epoch 6, pruned at 8: an overshoot prune
LADDER = [(1, OP.GERMINATE), (2, OP.GROW_INTERNAL), (3, OP.GROW_INTERNAL), (4, OP.SHRINK_INTERNAL)]
LADDER += [(5, OP.GROW_INTERNAL), (6, OP.GROW_INTERNAL), (8, OP.PRUNE)]
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "heuristic": lambda d: heuristic_run(d, episodes=2),
    "ppo": lambda d: scripted_run(d, LADDER, episode_length=10, op_entropies=(0.6, 0.05), rollbacks=2),
    "every": every_event_type_run,
    "lattice": lattice_run,
    "overshoot": overshoot_run,
    "two_env": two_env_run,
    "unfinished": unfinished_run,
}
# summary.json's host-only baseline of each run (None: no summary)
BASELINES = {
    "heuristic": baseline_metrics(1, 6).val_accuracy,
    "ppo": 85.0,
    "every": 90.0,
    "lattice": 85.0,
    "overshoot": 85.0,
    "two_env": 65.0,
    "unfinished": None,
}


def _cell(value: object) -> object:
    """A cell as a hashable, comparable value (floats rounded: the same numbers summed in another order)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 9)
    if isinstance(value, list):
        return tuple(_cell(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _cell(v)) for k, v in value.items()))
    return value


def _rows(store: RunStore, sql: str, params: list[object] | None = None) -> Rows:
    return Counter(tuple(_cell(v) for v in row) for row in store.query(sql, params or []).rows)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def alone(pool: dict[str, Path]) -> dict[str, dict[str, Rows]]:
    """Each run's rows of each view, from its own single-run store."""
    out = {}
    for name, run_dir in pool.items():
        with RunStore(run_dir) as store:
            out[name] = {view: _rows(store, f"SELECT * FROM {view}") for view in VIEWS}
    return out


@pytest.fixture
def combined(pool: dict[str, Path]) -> Iterator[RunStore]:
    with RunStore.of_runs(list(pool.values())) as store:
        yield store


def test_the_pool_can_show_runs_mixing(alone: dict[str, dict[str, Rows]]) -> None:
    """Every view has rows in at least two runs, and the runs share seed ids (and env ids, and line numbers): only
    run_id tells them apart, so a view that joined or aggregated across runs would differ from the runs alone."""
    for view in VIEWS:
        assert sum(1 for rows in alone.values() if rows[view]) >= 2, view
    seeds = [{row[4] for row in alone[name]["seeds"]} for name in ("ppo", "every", "two_env", "overshoot")]
    assert "env0-seed1" in set.intersection(*seeds)
    assert {row[4] for row in alone["ppo"]["overshoot_prunes"]} == {"env0-seed1"}


def test_every_view_has_a_run_id_column_and_spans_every_run(combined: RunStore, pool: dict[str, Path]) -> None:
    for view in VIEWS:
        result = combined.query(f"SELECT * FROM {view} LIMIT 0")
        assert "run_id" in result.columns, view
    assert {row[0] for row in combined.query("SELECT DISTINCT run_id FROM events").rows} == set(pool)
    assert {row[0] for row in combined.query("SELECT run_id FROM runs").rows} == set(pool)
    assert [run.run_dir for run in combined.runs] == list(pool.values())


def test_each_view_filtered_to_a_run_equals_that_runs_own_store(
    combined: RunStore, alone: dict[str, dict[str, Rows]]
) -> None:
    for view in VIEWS:
        total = combined.query(f"SELECT count(*) FROM {view}").rows[0][0]
        assert total == sum(sum(rows[view].values()) for rows in alone.values()), view
        for name, own in alone.items():
            assert _rows(combined, f"SELECT * FROM {view} WHERE run_id = ?", [name]) == own[view], (view, name)


@settings(max_examples=8, deadline=None)
@given(names=st.lists(st.sampled_from(sorted(BUILDERS)), min_size=2, max_size=4, unique=True))
def test_any_runs_together_read_as_each_run_alone(
    names: list[str], pool: dict[str, Path], alone: dict[str, dict[str, Rows]]
) -> None:
    with RunStore.of_runs([pool[name] for name in names]) as store:
        for view in VIEWS:
            every = _rows(store, f"SELECT * FROM {view}")
            assert every == sum((alone[name][view] for name in names), Counter()), view


def test_per_run_aggregates_and_baselines_stay_per_run(combined: RunStore) -> None:
    roi = {row[0]: row[1:] for row in combined.query("SELECT run_id, baseline_accuracy, roi_per_kparam FROM roi").rows}
    assert {name: baseline for name, (baseline, _) in roi.items()} == {
        name: baseline for name, baseline in BASELINES.items() if name != "unfinished"
    }
    # two_env: mean final accuracy 72.5 over its own baseline 65, per 200 mean added params / 1000
    assert roi["two_env"][1] == pytest.approx((72.5 - 65.0) / 0.2)
    # the unfinished run completes nowhere (another run's TRAINING_COMPLETED is not its own)
    completed = combined.query("SELECT run_id, completed_seq FROM runs WHERE completed_seq IS NULL").rows
    assert completed == [("unfinished", None)]
    rates = combined.query("SELECT run_id, episodes, rollbacks FROM rollback_rate ORDER BY run_id").rows
    assert dict((r, (e, n)) for r, e, n in rates)["two_env"] == (2, 1)
    assert dict((r, (e, n)) for r, e, n in rates)["ppo"] == (1, 2)


def test_single_run_accessors_refuse_a_store_of_several(combined: RunStore, pool: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="holds 7 runs, not one"):
        combined.run_dir  # noqa: B018 - the property is what is tested
    with pytest.raises(ValueError, match="holds 7 runs, not one"):
        combined.torn_tail  # noqa: B018
    with RunStore.of_runs([pool["ppo"]]) as one:
        assert one.run_dir == pool["ppo"] and one.baseline_accuracy == 85.0 and one.torn_tail is None


def test_torn_tails_are_reported_per_run(tmp_path: Path) -> None:
    killed = scripted_run(tmp_path / "killed", LADDER, episode_length=10)
    whole = scripted_run(tmp_path / "whole", LADDER, episode_length=10)
    events = killed / "events.jsonl"
    complete = len(events.read_text().splitlines())
    with events.open("a") as f:
        f.write('{"event_id": "abc", "event_ty')  # the process died mid-write
    with RunStore.of_runs([whole, killed]) as store:
        torn = {run.run_dir.name: run.log.torn_tail for run in store.runs}
        assert torn["whole"] is None
        assert torn["killed"] is not None and torn["killed"].line == complete + 1
        counts = dict(store.query("SELECT run_id, count(*) FROM events GROUP BY run_id").rows)
        assert counts == {"killed": complete, "whole": complete}


def test_a_run_id_in_two_directories_is_refused(tmp_path: Path) -> None:
    run_dir = scripted_run(tmp_path / "a", LADDER, episode_length=10)
    with pytest.raises(DuplicateRunIdError, match=r"run id 'a' is in both .*a and .*a"):
        RunStore.of_runs([run_dir, run_dir])
    shutil.copytree(run_dir, tmp_path / "copy")
    with pytest.raises(DuplicateRunIdError, match=r"run id 'a' is in both .*/a and .*/copy"):
        RunStore.of_runs([run_dir, tmp_path / "copy"])
    with pytest.raises(ValueError, match="no run directories"):
        RunStore.of_runs([])
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunStore.of_runs([run_dir, tmp_path])


def test_raw_events_keep_the_runs_order_then_each_files_order(pool: dict[str, Path]) -> None:
    order = ["two_env", "heuristic"]
    with RunStore.of_runs([pool[name] for name in order]) as store:
        rows = store.query("SELECT run_id, seq FROM events").rows
    sizes = [len((pool[name] / "events.jsonl").read_text().splitlines()) for name in order]
    assert rows == [(name, seq) for name, size in zip(order, sizes, strict=True) for seq in range(1, size + 1)]


def test_copy_query_writes_whole_files_or_none(combined: RunStore, tmp_path: Path) -> None:
    out = tmp_path / "epochs.csv"
    sql = "SELECT run_id, count(*) AS n FROM epochs GROUP BY run_id ORDER BY run_id; -- per run"
    assert combined.copy_query(sql, out, "csv") == len(combined.query(sql).rows) == 7
    assert out.read_text().splitlines()[:2] == ["run_id,n", "every,6"]
    with pytest.raises(QueryError, match="nope"):
        combined.copy_query("SELECT nope FROM epochs", out, "csv")
    assert out.read_text().splitlines()[1] == "every,6"  # the earlier file is untouched
    with pytest.raises(QueryError, match="nope"):
        combined.copy_query("SELECT nope FROM epochs", tmp_path / "new.parquet", "parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.csv"]  # no temporary file is left behind
