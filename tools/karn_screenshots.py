"""Regenerate docs/screenshots/: a real heuristic run and a real PPO run on digits, each shown in the TUI, the web
dashboard and the HTML report, and the web dashboard comparing two more: a heuristic run and a random run (the random
policy of the experiment packs: the heuristic run's config with the policy swapped) on digits_narrow, whose host is
under capacity so that growth shows, photographed with Debian's headless Chromium.

    uv run python tools/karn_screenshots.py [--runs-dir DIR] [--out docs/screenshots]

Runs are trained into --runs-dir (a temporary directory by default) unless they are already there.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from esper.cli.common import Interrupted
from esper.cli.main import main as esper
from esper.cli.plan import read_config, resolve
from esper.cli.progress import progress_for
from esper.cli.train import run_policy
from esper.karn.report import write_report
from esper.karn.store import RunStore
from esper.karn.tui import KarnApp
from esper.karn.web import DashboardServer
from esper.leyline import PolicyKind

RUNS = {
    "heuristic": ["train", "heuristic", "--episodes", "2", "--blueprints", "conv_ladder", "conv_heavy", "conv_light"],
    "ppo": ["train", "ppo", "--rounds", "4", "--envs", "4", "--episode-length", "20"],
}
# web-compare.png: the dashboard overlaying a heuristic run and the random policy on the same config.
COMPARED = {"narrow-heuristic": ["train", "heuristic", "--task", "digits_narrow", "--episodes", "3", "--epochs", "30"]}
RANDOM = "narrow-random"


def chromium_png(url: str, out: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        raise SystemExit("karn_screenshots: Debian's chromium is needed (make system-deps)")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def train_random(source: Path, run_dir: Path) -> None:
    """The random policy on a heuristic run's config (task, slots, blueprints, episodes, epochs, seed): `esper train`
    has no random subcommand, the experiment packs' random arms run it the same way (run_policy)."""
    config = dataclasses.replace(read_config(source), run_id=run_dir.name, policy=PolicyKind.RANDOM, heuristic=None)
    with progress_for(sys.stderr) as progress:
        result = run_policy(resolve(config, run_dir), progress)
    assert not isinstance(result, Interrupted), result


async def tui_svg(run_dir: Path, out: Path) -> None:
    app = KarnApp(run_dir)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, help="where the runs are (trained there if missing)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="karn-shots-"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, argv in (RUNS | COMPARED).items():
        if not (runs_dir / name / "summary.json").is_file():
            assert esper([*argv, "--run-dir", str(runs_dir / name)]) == 0
    if not (runs_dir / RANDOM / "summary.json").is_file():
        train_random(runs_dir / next(iter(COMPARED)), runs_dir / RANDOM)
    server = DashboardServer(runs_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as scratch:
        for name in RUNS:
            svg = Path(scratch) / f"tui-{name}.svg"
            asyncio.run(tui_svg(runs_dir / name, svg))
            chromium_png(svg.as_uri(), args.out / f"tui-{name}.png", 1400, 1000)
            chromium_png(f"{server.url}#run={name}", args.out / f"web-{name}.png", 1300, 1900)
            report = Path(scratch) / f"report-{name}.html"
            write_report(RunStore(runs_dir / name), report)
            chromium_png(report.as_uri(), args.out / f"report-{name}.png", 1200, 2000)
    chromium_png(f"{server.url}?compare={','.join([*COMPARED, RANDOM])}", args.out / "web-compare.png", 1300, 1150)
    server.shutdown()
    print(f"screenshots of {runs_dir} written to {args.out}")


if __name__ == "__main__":
    main()
