"""The Textual app driven by its pilot over scripted runs: panels filled, live updates, a narrow terminal."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from karn_synthetic import OP, PROVENANCE, SyntheticRun, channel_run, lattice_run
from textual.widgets import DataTable, RichLog, Static

from esper.karn.tui import KarnApp, provenance_text
from esper.leyline import to_wire


def _text(app: KarnApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def _shown(app: KarnApp, selector: str) -> list[str]:
    """The lines a widget shows on screen, as the terminal gets them (cut to its width, padding stripped)."""
    widget = app.query_one(selector, Static)
    return [strip.text.strip() for strip in widget.render_lines(widget.region.reset_offset)]


def ladder_run(run_dir: Path, *, finish: bool = True) -> SyntheticRun:
    run = SyntheticRun(run_dir, episode_length=6, n_envs=2)
    for env in (0, 1):
        run.start_episode(env, 0)
    run.decide(0, 1, OP.GERMINATE, blueprint="conv_ladder")
    run.decide(1, 1, OP.WAIT)
    run.decide(0, 2, OP.GROW_INTERNAL)
    run.decide(0, 3, OP.ADVANCE, success=False)
    run.ppo_update(1, 0.05)
    if finish:
        run.outcome(0, 91.0, 120, rollbacks=1)
        run.finish(baseline_accuracy=90.0)
    return run


def test_the_tui_shows_every_panel_of_a_finished_run(tmp_path: Path) -> None:
    ladder_run(tmp_path / "r")

    async def drive() -> None:
        app = KarnApp(tmp_path / "r")
        async with app.run_test(size=(140, 48)) as pilot:
            await pilot.pause()
            assert "r · digits / ppo · finished" in _text(app, "#header")
            assert "1 rollback(s)" in _text(app, "#header")
            # Where the run came from (karn_synthetic.PROVENANCE) and the latest epoch's process reading (env 0's
            # epoch 3: RSS 300 + 3 MiB, CPU 2 * 3 s; no CUDA peak off CUDA), as the terminal shows them.
            assert _shown(app, "#header")[1:] == [
                "commit 0123456 · esper train heuristic --task digits",
                "RSS 303 MiB · CPU 6.0 s · device cpu · esper 0.1.0 · torch 2.9.1 · Python 3.11.7 · synthetic-host "
                "(Linux-synthetic)",
            ]
            table = app.query_one("#envs", DataTable)
            assert table.row_count == 2
            assert table.get_row_at(0)[7] == "ADVANCE (invalid)"
            actions = _text(app, "#actions")
            assert "GROW_INTERNAL" in actions and "1 invalid, 0 refused by gates" in actions
            lanes = _text(app, "#lanes")
            assert "r0c0 block_end conv_ladder L2/4" in lanes and "gg" in lanes  # GERMINATED at epochs 2 and 3
            # The |delta|/|x| column: the seed's latest (epoch 3, its 2nd report: 0.1 * 1 + 0.01 * 2); no seed: -.
            assert re.search(r"slot +surface +blueprint .* \|δ\|/\|x\| stage per epoch", lanes)
            assert re.search(r"r0c0 block_end conv_ladder L2/4 +0\.120 ·gg GERMINATED", lanes)
            assert re.search(r"r0c1 block_end - +- ··· DORMANT", lanes)
            assert "op-head entropy     0.050" in _text(app, "#ppo")
            log_lines = [str(line.text) for line in app.query_one("#log", RichLog).lines]
            assert any("internal grow 1 -> 2" in line for line in log_lines)
            assert any("GOVERNOR ROLLBACK (divergence)" in line for line in log_lines)
            await pilot.press("e")  # the lanes switch to env 1, which has no seed
            assert "env 1" in _text(app, "#lanes")
            assert re.search(r"r0c0 block_end - +- · DORMANT", _text(app, "#lanes"))  # one epoch, no seed
            app.save_screenshot(filename="tui.svg", path=str(tmp_path))
        assert (tmp_path / "tui.svg").stat().st_size > 1000

    asyncio.run(drive())


def test_the_tui_follows_a_run_that_is_still_writing(tmp_path: Path) -> None:
    run = ladder_run(tmp_path / "live", finish=False)

    async def drive() -> None:
        app = KarnApp(tmp_path / "live", poll_seconds=0.05)
        async with app.run_test(size=(140, 48)) as pilot:
            await pilot.pause()
            assert "running" in _text(app, "#header")
            run.decide(0, 4, OP.SHRINK_INTERNAL)
            run.outcome(0, 92.0, 80)
            run.finish()
            for _ in range(40):
                await pilot.pause(0.05)
                if "finished" in _text(app, "#header"):
                    break
            assert "finished" in _text(app, "#header")
            assert "L1/4" in _text(app, "#lanes")
            assert re.search(r"r0c0 block_end conv_ladder L1/4 +0\.130 ", _text(app, "#lanes"))  # epoch 4, written live

    asyncio.run(drive())


def test_the_lanes_of_a_lattice_run_name_each_slots_surface_in_action_order(tmp_path: Path) -> None:
    lattice_run(tmp_path / "l")

    async def drive() -> None:
        app = KarnApp(tmp_path / "l")
        async with app.run_test(size=(140, 48)) as pilot:
            await pilot.pause()
            lanes = _text(app, "#lanes").splitlines()
            labels = [line.split()[:2] for line in lanes if re.match(r"r\dc\d ", line)]
            assert labels == [["r0c0", "post_attn"], ["r1c0", "post_mlp"], ["r0c1", "post_attn"], ["r1c1", "post_mlp"]]
            # The fossilized lora_ladder (level 3 of 4 after two grows) and the live lora on the other POST_ATTN slot.
            assert any(re.match(r"r0c0 post_attn lora_ladder L3/4 .* FOSSILIZED$", line) for line in lanes)
            assert any(re.match(r"r0c1 post_attn lora +0\.320 .* GERMINATED$", line) for line in lanes)
            log_lines = [str(line.text) for line in app.query_one("#log", RichLog).lines]
            assert any("germinated lora_large on post_mlp" in line for line in log_lines)

    asyncio.run(drive())


def test_a_channel_ladders_lane_names_its_channels_per_group(tmp_path: Path) -> None:
    # karn_synthetic.channel_run: a channel_ladder (2 channels per group) germinated in the pre-pool r0c1 at epoch 1
    # and grown to level 2; conv_heavy in the post-pool r1c0 at epoch 3 (no groups: nothing extra); the rest empty.
    channel_run(tmp_path / "c")

    async def drive() -> None:
        app = KarnApp(tmp_path / "c")
        async with app.run_test(size=(140, 48)) as pilot:
            await pilot.pause()
            lanes = _text(app, "#lanes").splitlines()
            labels = {line.split()[0]: line for line in lanes if re.match(r"r\dc\d ", line)}
            assert list(labels) == ["r0c0", "r1c0", "r0c1", "r1c1", "r0c2"]
            # Epoch 4: the ladder's third report (0.1 * 1 + 0.01 * 3), conv_heavy's first (0.1 * 2 + 0.01 * 1).
            assert re.match(r"r0c1 pre_pool +channel_ladder L2/4 x2ch +0\.130 ·ggg GERMINATED$", labels["r0c1"])
            assert re.match(r"r1c0 post_pool conv_heavy +0\.210 ···g GERMINATED$", labels["r1c0"])
            assert not re.search(r"x\d+ch", labels["r1c0"] + labels["r0c0"])
            log_lines = [str(line.text) for line in app.query_one("#log", RichLog).lines]
            assert any(
                line.endswith("internal grow 1 -> 2 of 4 (80 active params, 2 channels per group)")
                for line in log_lines
            )

    asyncio.run(drive())


def test_the_header_names_the_ranks_of_a_distributed_run(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "d", episode_length=4, world_size=2)
    run.start_episode(0, 0)
    run.decide(0, 1, OP.WAIT)

    async def drive() -> None:
        app = KarnApp(tmp_path / "d")
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            assert "digits / ppo · 2 ranks (envs) · running" in _text(app, "#header")

    asyncio.run(drive())


def test_a_narrow_terminal_stacks_the_panels(tmp_path: Path) -> None:
    ladder_run(tmp_path / "n")

    async def drive() -> None:
        app = KarnApp(tmp_path / "n")
        async with app.run_test(size=(70, 60)) as pilot:
            await pilot.pause()
            assert app.screen.has_class("narrow")
            envs = app.query_one("#envs", DataTable)
            actions = app.query_one("#actions", Static)
            assert actions.region.y > envs.region.y  # stacked, not side by side
            assert actions.region.right <= 70 and envs.region.right <= 70
            assert "GROW_INTERNAL" in _text(app, "#actions")

    asyncio.run(drive())


def test_a_narrow_header_cuts_each_line_at_its_end(tmp_path: Path) -> None:
    ladder_run(tmp_path / "n")

    async def drive() -> None:
        app = KarnApp(tmp_path / "n")
        async with app.run_test(size=(50, 60)) as pilot:
            await pilot.pause()
            lines = _shown(app, "#header")
            assert len(lines) == 3 and all(len(line) <= 48 for line in lines)
            assert lines[1].startswith("commit 0123456 · esper train") and lines[1].endswith("…")
            assert lines[2].startswith("RSS 303 MiB · CPU 6.0 s · device cpu") and lines[2].endswith("…")

    asyncio.run(drive())


def test_the_provenance_line_marks_a_dirty_checkout_no_checkout_and_the_cuda_peak() -> None:
    started = {"device": "cuda:0", "provenance": to_wire(PROVENANCE)}
    started["provenance"] |= {"git_dirty": True, "command_line": ["/venv/bin/esper", "train", "ppo"]}
    system = {"rss_mb": 1024.4, "cpu_seconds": 3.25, "cuda_peak_mb": 512.6}
    commit, machine = provenance_text(started, system).split("\n")
    assert commit == "commit 0123456 (dirty) · esper train ppo"
    assert machine.startswith("RSS 1024 MiB · CPU 3.2 s · CUDA peak 513 MiB · device cuda:0 · esper 0.1.0")
    started["provenance"] |= {"git_commit": None, "git_dirty": None}
    assert provenance_text(started, None).split("\n")[0] == "no git checkout · esper train ppo"
    assert provenance_text(started, None).split("\n")[1].startswith("no epoch yet · device cuda:0")
    assert provenance_text(None, None) == "no TRAINING_STARTED yet"


def test_an_empty_run_directory_waits_for_events(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "events.jsonl").write_text("")

    async def drive() -> None:
        app = KarnApp(tmp_path / "w")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert "waiting for TRAINING_STARTED" in _text(app, "#header")
            assert "no epochs yet" in _text(app, "#lanes")

    asyncio.run(drive())
