"""`esper karn sql [RUN ...] QUERY`: one query over several runs or every run in --runs-dir, and `--csv FILE` /
`--parquet FILE` written by DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from karn_synthetic import OP, heuristic_run, scripted_run

from esper.cli.main import main

LADDER = [(1, OP.GERMINATE), (3, OP.GROW_INTERNAL), (5, OP.GROW_INTERNAL)]
PER_RUN = "SELECT run_id, count(*) AS decisions, avg(tempo) AS tempo FROM actions GROUP BY run_id ORDER BY run_id"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def usage_exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's own refusal: exit 2 and its message."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Three runs with different outcomes: 'alpha' (12 decisions), 'beta' (8, one rejected) and 'gamma' (heuristic,
    12 decisions over 2 episodes)."""
    runs_dir = tmp_path / "runs"
    scripted_run(runs_dir / "alpha", LADDER, episode_length=12, final_accuracy=91.0)
    scripted_run(runs_dir / "beta", [(1, OP.GERMINATE), (2, OP.PRUNE)], episode_length=8, invalid_epochs=(2,))
    heuristic_run(runs_dir / "gamma", episodes=2)
    return runs_dir


def _read_back(sql: str) -> list[dict[str, object]]:
    """The rows DuckDB reads from a written file, as records."""
    cursor = duckdb.connect().execute(sql)
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, _ = run_cli([*argv, "--json"], capsys)
    assert code == 0
    records: list[dict[str, object]] = json.loads(out)
    return records


def test_a_query_spans_the_runs_named_and_each_keeps_its_own_rows(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--runs-dir", str(runs)]
    both = _json(["karn", "sql", "alpha", str(runs / "beta"), PER_RUN, *flags], capsys)
    alone = [_json(["karn", "sql", run, PER_RUN, *flags], capsys)[0] for run in ("alpha", "beta")]
    assert both == alone and [r["decisions"] for r in both] == [12, 8]
    invalid = _json(
        ["karn", "sql", "alpha", "beta", "SELECT * FROM invalid_action_rate ORDER BY run_id", *flags], capsys
    )
    assert [(r["run_id"], r["invalid"]) for r in invalid] == [("alpha", 0), ("beta", 1)]


def test_without_a_run_the_query_spans_every_run_in_runs_dir(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    every = _json(["karn", "sql", PER_RUN, "--runs-dir", str(runs)], capsys)
    named = _json(["karn", "sql", "alpha", "beta", "gamma", PER_RUN, "--runs-dir", str(runs)], capsys)
    assert every == named and [r["run_id"] for r in every] == ["alpha", "beta", "gamma"]
    code, out, _ = run_cli(
        ["karn", "sql", "--runs-dir", str(runs), "SELECT run_id, policy FROM runs ORDER BY 1"], capsys
    )
    assert code == 0 and "gamma   heuristic" in out and "(3 rows)" in out


def test_csv_and_parquet_hold_the_rows_json_prints(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT run_id, seq, episode, epoch, val_accuracy, slot_id FROM epochs ORDER BY run_id, seq"
    flags = ["--runs-dir", str(runs)]
    records = _json(["karn", "sql", query, *flags], capsys)
    out = tmp_path / "epochs.csv"
    code, printed, _ = run_cli(["karn", "sql", query, *flags, "--csv", str(out)], capsys)
    assert code == 0 and printed == f"wrote {len(records)} rows to {out} (csv)\n" and len(records) == 12 + 8 + 12
    assert _read_back(f"SELECT * FROM read_csv('{out}', header = true)") == records

    query = "SELECT run_id, task, slot_ids, episodes_completed FROM runs ORDER BY run_id -- one per run"
    records = _json(["karn", "sql", query, *flags], capsys)
    out = tmp_path / "runs.parquet"
    code, printed, _ = run_cli(["karn", "sql", query, *flags, "--parquet", str(out)], capsys)
    assert code == 0 and printed == f"wrote 3 rows to {out} (parquet)\n"
    assert _read_back(f"SELECT * FROM read_parquet('{out}')") == records
    assert records[0]["slot_ids"] == ["r0c0", "r0c1", "r0c2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.csv", "runs", "runs.parquet"]  # no temporary file


def test_one_run_still_reads_as_before(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["karn", "sql", str(runs / "beta"), "SELECT op, success FROM actions WHERE op = 'PRUNE'"], capsys
    )
    assert code == 0 and out.splitlines()[2].split() == ["PRUNE", "False"] and "(1 row)" in out


def test_output_flags_exclude_each_other(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["karn", "sql", "alpha", "SELECT 1", "--runs-dir", str(runs)]
    err = usage_exit([*base, "--csv", str(tmp_path / "a.csv"), "--parquet", str(tmp_path / "a.parquet")], capsys)
    assert "argument --parquet: not allowed with argument --csv" in err
    err = usage_exit([*base, "--json", "--csv", str(tmp_path / "a.csv")], capsys)
    assert "argument --csv: not allowed with argument --json" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_bad_input_exits_2_naming_it(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--runs-dir", str(runs)]
    out = tmp_path / "rows.csv"
    code, _, err = run_cli(["karn", "sql", "SELECT nope FROM actions", *flags, "--csv", str(out)], capsys)
    assert code == 2 and "query:" in err and "nope" in err and not out.exists()
    code, _, err = run_cli(["karn", "sql", "alpha", "beta", "SELECT nope FROM actions", *flags], capsys)
    assert code == 2 and "query:" in err and "nope" in err
    code, _, err = run_cli(["karn", "sql", "SELECT 1", *flags, "--parquet", str(tmp_path / "no" / "x.parquet")], capsys)
    assert code == 2 and f"--parquet: {tmp_path / 'no' / 'x.parquet'} is not a file in an existing directory" in err
    code, _, err = run_cli(["karn", "sql", "alpha", "alpha", "SELECT 1", *flags], capsys)
    assert code == 2 and "RUN: run id 'alpha' is in both" in err
    code, _, err = run_cli(["karn", "sql", "alpha", "missing", "SELECT 1", *flags], capsys)
    assert code == 2 and "'missing' is neither a run directory nor a run in" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_runs_dir_without_runs_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "not-a-run").mkdir(parents=True)
    code, _, err = run_cli(["karn", "sql", "SELECT 1", "--runs-dir", str(tmp_path / "empty")], capsys)
    assert code == 2 and f"--runs-dir: no runs in {tmp_path / 'empty'}" in err
    code, _, err = run_cli(["karn", "sql", "SELECT 1", "--runs-dir", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and f"--runs-dir: {tmp_path / 'nowhere'} is not a directory" in err


def test_each_runs_torn_tail_is_reported(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (runs / "beta" / "events.jsonl").open("a") as f:
        f.write('{"event_id": "x", "ev')
    code, out, err = run_cli(["karn", "sql", "SELECT count(*) AS n FROM events", "--runs-dir", str(runs)], capsys)
    assert code == 0 and err.count("torn last line") == 1 and f"{runs / 'beta' / 'events.jsonl'}:" in err
