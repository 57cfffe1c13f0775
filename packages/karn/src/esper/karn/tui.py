"""`esper karn tui RUN`: a Textual view of a running or finished run, polling its events.jsonl twice a second.

Panels: run header (and two more lines: where the run came from, TRAINING_STARTED's provenance, and what the
process used at its latest epoch), environment table, action distribution, per-slot seed swimlanes (slot and its
surface, blueprint, internal level and, for a channel ladder, its channels per group (`L2/4 x2ch`), the seed's latest
|delta| / |x|, stage per epoch of the current episode), reward components, PPO health, event log.
Below 100 columns the panels stack vertically. Keys: q quit, p pause/resume polling, e next environment in the
swimlanes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import DataTable, Footer, RichLog, Static

from esper.karn.live import REWARD_PARTS, LiveRun

POLL_SECONDS: Final = 0.5
DELTA_RATIO: Final = "|δ|/|x|"  # a seed's output relative to the host features reaching it (SeedEpoch.delta_ratio)
NARROW_BELOW: Final = 100
SEED_WIDTH: Final = 25  # the lane's seed column: blueprint, level and group size (`channel_ladder L2/4 x2ch`)
STAGE_GLYPHS: Final[dict[str, tuple[str, str]]] = {
    "UNKNOWN": ("?", "grey50"),
    "DORMANT": ("·", "grey42"),
    "GERMINATED": ("g", "green"),
    "TRAINING": ("T", "cyan"),
    "BLENDING": ("B", "blue"),
    "HOLDING": ("H", "magenta"),
    "FOSSILIZED": ("F", "yellow"),
    "PRUNED": ("x", "red"),
    "EMBARGOED": ("e", "red"),
    "RESETTING": ("r", "grey50"),
}


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def provenance_text(started: dict[str, Any] | None, system: dict[str, Any] | None) -> str:
    """The header's second and third lines: `commit 0123456 (dirty) · esper train ...`, then `RSS 827 MiB · CPU
    11.5 s · device cpu · esper 0.1.0 · torch 2.9.1 · Python 3.11.7 · host (platform)`: each line's least needed
    part last, where a narrow terminal cuts it."""
    if started is None:
        return "no TRAINING_STARTED yet"
    p = started["provenance"]
    commit = "no git checkout" if p["git_commit"] is None else f"commit {p['git_commit'][:7]}"
    if p["git_dirty"]:
        commit += " (dirty)"
    program, *args = p["command_line"]
    command = " ".join([Path(program).name, *args])  # the program by name, not the virtual environment's path to it
    machine = [
        system_text(system),
        f"device {started['device']}",
        f"esper {p['esper_version']}",
        f"torch {p['torch_version']}",
        f"Python {p['python_version']}",
        f"{p['host_name']} ({p['platform']})",
    ]
    return f"{commit} · {command}\n" + " · ".join(machine)


def system_text(system: dict[str, Any] | None) -> str:
    """The latest epoch's process reading: `RSS 827 MiB · CPU 11.5 s` (and `· CUDA peak 512 MiB` on CUDA)."""
    if system is None:
        return "no epoch yet"
    text = f"RSS {system['rss_mb']:.0f} MiB · CPU {system['cpu_seconds']:.1f} s"
    if system["cuda_peak_mb"] is not None:
        text += f" · CUDA peak {system['cuda_peak_mb']:.0f} MiB"
    return text


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def lanes_text(snapshot: dict[str, Any], env_index: int, width: int) -> Text:
    envs = snapshot["envs"]
    text = Text()
    if not envs:
        return Text("no epochs yet", style="dim")
    env = envs[env_index % len(envs)]
    text.append(f"env {env['env']} · episode {env['episode']} · epoch {env['epoch']}\n", style="bold")
    ids = max((len(slot) for slot in env["slots"]), default=4)
    text.append(
        f"{'slot':<{ids + 1}}{'surface':<10}{'blueprint level':<{SEED_WIDTH}}{DELTA_RATIO:>9} stage per epoch, now\n",
        style="dim",
    )
    room = max(8, width - 32 - SEED_WIDTH - ids)
    for slot, lane in env["slots"].items():
        text.append(lane_label(slot, lane, ids))
        for stage in lane["stages"][-room:]:
            glyph, style = STAGE_GLYPHS[stage]
            text.append(glyph, style=style)
        text.append(f" {lane['stage']}\n", style="dim")
    text.append("· dormant g germinated T training B blending H holding F fossilized x pruned", style="dim")
    return text


def lane_label(slot: str, lane: dict[str, Any], ids: int) -> str:
    """A lane's label: `r0c3 post_attn conv_ladder L2/4    0.120 ` (slot ids padded to `ids` characters); a channel
    ladder's also names its channels per group: `r0c1 pre_pool  channel_ladder L2/4 x2ch   0.120 `."""
    level = "" if lane["level"] is None else f" L{lane['level']}/{lane['max_level']}"
    groups = f" x{lane['group_size']}ch" if lane["group_size"] > 0 else ""
    surface = lane["surface"] or "-"
    seed = f"{lane['blueprint'] or '-'}{level}{groups}"
    return f"{slot:<{ids}} {surface:<9} {seed:<{SEED_WIDTH}}{_num(lane['delta_ratio']):>9} "


def actions_text(snapshot: dict[str, Any]) -> Text:
    ops: dict[str, int] = snapshot["ops"]
    total = sum(ops.values())
    text = Text("actions", style="bold")
    text.append(
        f"  {total} decisions, {snapshot['invalid_actions']} invalid, {snapshot['gate_refusals']} refused by gates\n"
    )
    for op, count in ops.items():
        text.append(f"{op:<16} {bar(count / total, 14)} {count:>5} {count / total:6.1%}\n")
    return text


def rewards_text(snapshot: dict[str, Any]) -> Text:
    text = Text("reward components (mean per step)\n", style="bold")
    means = snapshot["reward_means"]
    if not snapshot["episodes"] or all(v == 0 for v in means.values()):
        text.append("no rewards (this policy is not trained by reward)\n", style="dim")
    for part in REWARD_PARTS:
        value = means[part]
        text.append(f"{part:<18} {value:+.4f}\n", style="green" if value > 0 else "red" if value < 0 else "dim")
    return text


def ppo_text(snapshot: dict[str, Any]) -> Text:
    text = Text("PPO health\n", style="bold")
    updates = snapshot["ppo"]
    if not updates:
        return text.append("no PPO updates", style="dim")
    last = updates[-1]
    text.append(f"update {last['round']} of {len(updates)}\n")
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance"):
        text.append(f"{key:<19} {last[key]:+.4f}\n")
    op_entropy = last["head_entropies"]["op"]
    text.append(f"op-head entropy     {op_entropy:.3f}", style="red" if op_entropy < 0.08 else "green")
    return text


class KarnApp(App[None]):
    TITLE = "Esper · Karn"
    CSS = """
    Screen { layout: vertical; overflow-y: auto; }
    #header { dock: top; height: 3; background: $primary; color: $text; padding: 0 1; text-wrap: nowrap;
              text-overflow: ellipsis; }
    .row { height: auto; }
    #envs { width: 2fr; height: auto; max-height: 12; }
    #actions { width: 1fr; height: auto; padding: 0 1; }
    #lanes { width: 2fr; height: auto; padding: 0 1; border: round $secondary; }
    #side { width: 1fr; height: auto; }
    #rewards, #ppo { height: auto; padding: 0 1; }
    #log { height: 1fr; min-height: 8; border: round $secondary; }
    .narrow .row { layout: vertical; }
    .narrow #envs, .narrow #actions, .narrow #lanes, .narrow #side { width: 100%; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("p", "toggle_pause", "pause"),
        Binding("e", "next_env", "next env"),
    ]

    def __init__(self, run_dir: Path, *, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.live = LiveRun(run_dir)
        self.poll_seconds = poll_seconds
        self.paused = False
        self.env_index = 0
        self._logged = 0

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(classes="row"):
            yield DataTable(id="envs", zebra_stripes=True)
            yield Static(id="actions")
        with Horizontal(classes="row"):
            yield Static(id="lanes")
            with Vertical(id="side"):
                yield Static(id="rewards")
                yield Static(id="ppo")
        yield RichLog(id="log", max_lines=2000, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#envs", DataTable)
        table.add_columns("env", "ep", "epoch", "val acc", "loss", "seeds", "+params", "last action", "reward")
        self.poll()
        self.set_interval(self.poll_seconds, self.poll)

    def on_resize(self, event: Resize) -> None:
        self.screen.set_class(event.size.width < NARROW_BELOW, "narrow")

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.poll(force=True)

    def action_next_env(self) -> None:
        self.env_index += 1
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        if self.paused and not force:
            return
        arrived = 0 if self.paused else self.live.refresh()
        if not arrived and not force and self._logged:
            return
        self.render_snapshot(self.live.snapshot(log_after=self._logged))

    def render_snapshot(self, snap: dict[str, Any]) -> None:
        started = snap["started"]
        what = "waiting for TRAINING_STARTED" if started is None else f"{started['task']} / {started['policy']}"
        if started is not None and started["world_size"] > 1:
            what += f" · {started['world_size']} ranks ({started['parallel_mode']})"
        state = "PAUSED" if self.paused else snap["status"]
        episodes = len(snap["episodes"])
        header = Text()
        header.append(
            f"{snap['run_id']} · {what} · {state} · {snap['events']} events · {episodes} episode(s) done · "
            f"{snap['governor_rollbacks']} rollback(s)\n"
        )
        header.append(provenance_text(started, snap["system"]), style="dim")
        self.query_one("#header", Static).update(header)
        table = self.query_one("#envs", DataTable)
        table.clear()
        for env in snap["envs"]:
            table.add_row(
                env["env"],
                env["episode"],
                env["epoch"],
                _num(env["val_accuracy"], ".1f"),
                _num(env["train_loss"]),
                env["live_seeds"],
                env["seed_params"],
                env["last_action"],
                _num(env["last_reward"], "+.3f"),
            )
        self.query_one("#actions", Static).update(actions_text(snap))
        lanes = self.query_one("#lanes", Static)
        lanes.update(lanes_text(snap, self.env_index, lanes.size.width or 80))
        self.query_one("#rewards", Static).update(rewards_text(snap))
        self.query_one("#ppo", Static).update(ppo_text(snap))
        log = self.query_one("#log", RichLog)
        for entry in snap["log"]:
            line = Text(f"{entry['seq']:>6} ", style="dim")
            line.append(f"{entry['where']:<16} ", style="cyan")
            style = "bold red" if entry["severity"] in ("error", "critical") else ""
            line.append(entry["text"], style=style)
            log.write(line)
            self._logged = entry["seq"]
