"""The progress of a command: plain lines at most every PLAIN_EVERY seconds (and at every line that stays) in a log,
with the outermost bar's elapsed time and ETA; rich bars on a terminal. Time comes from a fake clock: no test
sleeps."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from esper.cli import progress as progress_module
from esper.cli.main import main
from esper.cli.progress import Progress, clock_time, progress_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_clock_time_writes_hours_minutes_seconds() -> None:
    assert clock_time(None) == "-:--:--"
    assert clock_time(0.0) == "0:00:00"
    assert clock_time(70.9) == "0:01:10"
    assert clock_time(3 * 3600 + 5 * 60 + 7) == "3:05:07"


def test_a_log_gets_a_line_every_n_seconds_and_at_each_episode_end() -> None:
    clock, stream = FakeClock(), StringIO()
    progress = Progress(stream, clock=clock, every=10.0)
    run = progress.bar("episodes", 2)
    epochs = progress.bar("episode 1/2 epoch", 4, share=0.5)
    clock.now = 5.0
    epochs.update(1, "acc 50.0%")
    assert stream.getvalue() == ""  # 5 s: too soon
    clock.now = 10.0
    epochs.update(2, "acc 60.0%")
    # The run is 0.5 x 2/4 = 0.25 episodes in after 10 s: 1.75 episodes left take 70 s at that pace.
    assert stream.getvalue().splitlines() == [
        "episodes 0/2 | episode 1/2 epoch 2/4 acc 60.0% | elapsed 0:00:10, ETA 0:01:10"
    ]
    clock.now = 15.0
    epochs.update(3, "acc 70.0%")
    epochs.close()
    with progress.bar("episode 1/2 host-only epoch", 4, share=0.5, offset=0.5) as baseline:
        clock.now = 19.0
        baseline.update(4, "acc 75.0%")
    assert len(stream.getvalue().splitlines()) == 1  # 9 s since the last line: still too soon
    clock.now = 20.0
    run.update(1, line="episode 1/2: accuracy 80.0%")  # always, and in place of the progress line due now
    clock.now = 29.0
    progress.bar("episode 2/2 epoch", 4, share=0.5).update(1, "acc 81.0%")  # 9 s after the episode's line
    clock.now = 30.0
    progress.bars[-1].update(2, "acc 82.0%")
    lines = stream.getvalue().splitlines()
    assert lines[1:] == [
        "episode 1/2: accuracy 80.0% | elapsed 0:00:20, ETA 0:00:20",
        "episodes 1/2 | episode 2/2 epoch 2/4 acc 82.0% | elapsed 0:00:30, ETA 0:00:18",  # 1.25 in 30 s
    ]
    assert "\x1b" not in stream.getvalue()


def test_a_resumed_bar_paces_only_its_own_rounds_and_closing_it_closes_its_inner_bars() -> None:
    clock, stream = FakeClock(), StringIO()
    progress = Progress(stream, clock=clock, every=10.0)
    rounds = progress.bar("rounds", 10, completed=3)  # resumed at round 3
    progress.done("resume: rewound")
    inner = progress.bar("inner", 1)
    clock.now = 20.0
    rounds.update(5, "120 env-steps/s, mean reward +0.250")
    rounds.close()
    assert progress.bars == [] and inner not in progress.bars
    inner.close()  # closed already with its outer bar: nothing happens
    assert stream.getvalue().splitlines() == [
        "resume: rewound | elapsed 0:00:00, ETA -:--:--",  # no round finished yet: no pace, no ETA
        # The bars after the one updated are written too: `inner` is still open inside `rounds`.
        "rounds 5/10 120 env-steps/s, mean reward +0.250 | inner 0/1 | elapsed 0:00:20, ETA 0:00:50",
    ]


def test_a_stream_that_is_not_a_terminal_gets_plain_lines_and_none_gets_nothing() -> None:
    stream = StringIO()
    with progress_for(stream) as progress:
        progress.bar("runs", 2)
        progress.done("[1/2] control seed 0 -> out/control-s0")
    assert stream.getvalue() == "[1/2] control seed 0 -> out/control-s0 | elapsed 0:00:00, ETA -:--:--\n"
    with progress_for(None) as quiet:  # another rank of a torchrun job
        quiet.bar("rounds", 2).update(1, "x")
        quiet.done("round 1/2")
        assert [b.description for b in quiet.bars] == ["rounds"]


def test_a_terminal_gets_bars_with_elapsed_eta_and_the_current_numbers() -> None:
    clock, out = FakeClock(), StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    progress = Progress(out, clock=clock, console=console, auto_refresh=False)
    with progress:
        run = progress.bar("episodes", 2)
        with progress.bar("episode 1/2 epoch", 4, share=0.5) as epochs:
            clock.now = 10.0
            epochs.update(2, "acc  60.0% (best  60.0) seeds live 1")
            drawn = out.getvalue()
            assert "episode 1/2 epoch" in drawn and "2/4" in drawn and "acc  60.0% (best  60.0) seeds live 1" in drawn
            assert "0:00:10" in drawn and "ETA 0:01:10" in drawn  # the run's bar: 0.25 of 2 episodes in 10 s
            assert "ETA 0:00:10" in drawn  # the epochs' bar: 2 of 4 in 10 s
        with progress.bar("episode 1/2 host-only epoch", 4, share=0.5, offset=0.5) as baseline:
            baseline.update(1, "acc  55.0%")
            # Its own bar, drawn after the episode's epochs closed (their last frame holds "seeds live").
            assert "episode 1/2 host-only epoch" in out.getvalue().split("seeds live 1")[-1]
        clock.now = 20.0
        run.update(1, line="episode 1/2: accuracy 80.0%")
        assert "episode 1/2: accuracy 80.0% | elapsed 0:00:20, ETA 0:00:20" in out.getvalue()
        run.close()
        assert progress.bars == []
        progress.bar("rounds", 3).update(1, "99 env-steps/s")  # the bars come back for the next run
        assert "99 env-steps/s" in out.getvalue()
    assert "\x1b[" in out.getvalue()  # drawn in place: cursor movement, not lines


def test_a_heuristic_run_shows_its_episode_and_baseline_bars_in_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0.0)  # every update writes its line
    argv = ["train", "heuristic", "--task", "digits", "--episodes", "1", "--epochs", "2", "--run-dir"]
    assert main([*argv, str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" acc ")[0] for line in lines[:-1]] == [
        "episodes 0/1 | episode 1/1 epoch 1/2",
        "episodes 0/1 | episode 1/1 epoch 2/2",
        "episodes 0/1 | episode 1/1 host-only epoch 1/2",
        "episodes 1/1 | episode 1/1 host-only epoch 2/2",  # the baseline's last epoch ends the episode's work
    ]
    assert "seeds live" in lines[0] and "seeds live" not in lines[2]  # the baseline has no seeds
    assert all(" | elapsed " in line and ", ETA " in line for line in lines)
    assert lines[-1].startswith("episode 1/1: accuracy ") and lines[-1].endswith(", ETA 0:00:00")


def test_a_run_whose_stderr_is_a_pipe_prints_plain_lines(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "esper.cli.main", "train", "heuristic", "--task", "digits", "--episodes", "1"]
    command += ["--epochs", "1", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("episode 1/1: accuracy ") and " | elapsed 0:" in last and last.endswith(", ETA 0:00:00")
