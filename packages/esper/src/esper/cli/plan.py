"""A run's configuration: the RunConfig contract (config.json) built from the flags or read back from a run
directory, and resolved into the objects a run uses (RunPlan). Every check on a flag or a config field is here and
raises UsageError naming the flag, or the file and the field."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from esper.cli.common import UsageError, read_json_file
from esper.cli.provenance import provenance
from esper.kasmina import QualityGates
from esper.kasmina.compiled import DEFAULT_BACKEND as COMPILE_BACKEND
from esper.leyline import (
    BlueprintAction,
    ParallelMode,
    PolicyKind,
    SlotConfig,
    Topology,
    TrainingStartedPayload,
    WireError,
    blueprint_from_id,
    blueprints_for,
    dumps,
    from_wire,
    loads,
    slot_config,
    slot_ids,
)
from esper.simic import PpoConfig, PpoRun, RewardConfig, RunConfig, check_reward_config
from esper.tamiyo import HeuristicConfig, LstmPolicyConfig, MaskConfig
from esper.tolaria import TaskSpec, get_task

CONFIG_FILE = "config.json"
MODELS_DIR = "models"  # RUN_DIR/models/<episode-env>/: the grown models of a --save-model run
DEFAULT_ROUNDS = 10
PPO_SECTIONS: dict[str, type] = {"ppo": PpoConfig, "reward": RewardConfig, "policy": LstmPolicyConfig}


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A RunConfig resolved into the objects a run uses."""

    config: RunConfig
    task: TaskSpec
    blueprints: tuple[BlueprintAction, ...]
    device: torch.device
    run_dir: Path
    slot_config: SlotConfig  # the enabled slots in action order, with their surfaces

    @property
    def slots(self) -> tuple[str, ...]:
        return slot_ids(self.slot_config)

    @property
    def compile_backend(self) -> str | None:
        """The torch.compile backend of the run's environments (None: eager)."""
        return COMPILE_BACKEND if self.config.compile else None

    @property
    def models_dir(self) -> Path | None:
        """Where each episode's grown model is saved (None: the run saves none)."""
        return self.run_dir / MODELS_DIR if self.config.save_model else None

    @property
    def epochs(self) -> int:
        return self.config.episode_length

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def data_dir(self) -> Path | None:
        return None if self.config.data_dir is None else Path(self.config.data_dir)

    @property
    def masks(self) -> MaskConfig:
        """The run's masks: its slots and blueprints, and the structural limits of the default seed gates (which
        every environment of the run uses) with the run's seed cap."""
        limits = QualityGates().limits(self.config.max_seeds)
        return MaskConfig(self.slots, self.task.config.topology, self.blueprints, limits)

    @property
    def ppo(self) -> PpoRun:
        if self.config.ppo is None:
            raise ValueError(f"run {self.config.run_id} is a {self.config.policy.value} run, not a PPO run")
        return self.config.ppo


def parse_device(text: str) -> torch.device:
    """--device: cpu, cuda[:index] where torch sees a CUDA device, mps where torch reports Apple's GPU available."""
    try:
        device = torch.device(text)
    except RuntimeError as exc:  # torch's parse error for a malformed device string; a usage error (exit 2)
        raise UsageError(f"--device: {exc}; use cpu, cuda[:index] or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device: CUDA is not available on this machine (torch sees no CUDA device); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device: {text} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device: mps is not available (torch reports no Apple GPU here); use cpu")
    elif device.type != "cpu":
        raise UsageError(f"--device: {device.type} is not supported; use cpu, cuda[:index] or mps")
    return device


def default_run_dir(task: str, policy: PolicyKind, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{policy.value}-s{seed}-{stamp}"


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be >= 1, got {value}")


def _task(name: str) -> TaskSpec:
    try:
        return get_task(name)
    except ValueError as exc:  # unknown task name, with the list of tasks
        raise UsageError(f"--task: {exc}") from exc


def _with_seed_width(task: TaskSpec, width: int | None) -> TaskSpec:
    """The task with --seed-width in its config (which the run records and runs with)."""
    if width is None:
        return task
    _positive("--seed-width", width)
    if task.config.topology is not Topology.CNN:
        raise UsageError(f"--seed-width: sizes CNN conv seeds; task {task.name} is a {task.config.topology.value} task")
    return dataclasses.replace(task, config=dataclasses.replace(task.config, seed_width=width))


def _slots(task: TaskSpec, requested: list[str] | None) -> tuple[str, ...]:
    """The enabled slot ids in action order (the host's injection order, whatever order they were given in)."""
    try:
        return slot_ids(slot_config(task.build_host().injection_specs(), requested or task.config.default_slots))
    except ValueError as exc:  # SlotIdError names the bad or unknown id and the host's slots
        raise UsageError(f"--slots: {exc} (task {task.name})") from exc


def _blueprints(task: TaskSpec, requested: list[str] | None) -> tuple[BlueprintAction, ...]:
    allowed = blueprints_for(task.config.topology)
    if not requested:
        return allowed
    try:
        blueprints = tuple(blueprint_from_id(b) for b in requested)
    except ValueError as exc:  # unknown blueprint id, with the allowed list
        raise UsageError(f"--blueprints: {exc}") from exc
    wrong = [b.name.lower() for b in blueprints if b not in allowed]
    if wrong:
        raise UsageError(
            f"--blueprints: {wrong} do not apply to {task.name} ({task.config.topology.value}); "
            f"allowed: {' '.join(b.name.lower() for b in allowed)}"
        )
    return blueprints


def ppo_sections(raw: object, source: str) -> dict[str, Any]:
    """The "ppo", "reward" and "policy" sections of a --config-json document, each through its contract."""
    if not isinstance(raw, dict):
        raise UsageError(f"{source} must hold a JSON object")
    unknown = sorted(set(raw) - set(PPO_SECTIONS))
    if unknown:
        raise UsageError(f"{source}: unknown section(s) {unknown}; allowed: {sorted(PPO_SECTIONS)}")
    try:
        return {name: from_wire(cls, raw[name] if name in raw else {}) for name, cls in PPO_SECTIONS.items()}
    except WireError as exc:  # a config section breaks its contract: name the field
        raise UsageError(f"{source}: {exc}") from exc


def plan_from_flags(
    args: argparse.Namespace, policy: PolicyKind, parallel: tuple[ParallelMode, int] = (ParallelMode.NONE, 1)
) -> RunPlan:
    """The run the flags describe, its RunConfig built and resolved (every flag checked; nothing written)."""
    task = _with_seed_width(_task(args.task), args.seed_width)
    _positive("--max-seeds", args.max_seeds)
    slots, blueprints = _slots(task, args.slots), _blueprints(task, args.blueprints)
    device = parse_device(args.device)
    if task.needs_data_dir and (args.data_dir is None or not args.data_dir.is_dir()):
        raise UsageError(f"--data-dir: task {task.name} needs an existing data directory, got {args.data_dir}")
    run_dir = args.run_dir if args.run_dir is not None else default_run_dir(task.name, policy, args.seed)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"--run-dir: {run_dir} exists and is not empty")
    length = args.epochs if policy is not PolicyKind.PPO else args.episode_length
    _positive("--epochs" if policy is not PolicyKind.PPO else "--episode-length", length)
    sections: dict[str, Any] = {"reward": RewardConfig()}
    ppo = None
    if policy is PolicyKind.PPO:
        raw = read_json_file("--config-json", args.config_json) if args.config_json is not None else {}
        sections = ppo_sections(raw, f"--config-json {args.config_json}")
        ppo = _ppo_run(args, sections, parallel)
    else:
        _positive("--episodes", args.episodes)
    config = RunConfig(
        run_id=run_dir.name,
        policy=policy,
        task=task.config,
        slots=slots,
        blueprints=tuple(b.name.lower() for b in blueprints),
        episodes=None if policy is PolicyKind.PPO else args.episodes,
        episode_length=length or task.config.episode_length,
        max_seeds=args.max_seeds,
        seed=args.seed,
        device=str(device),
        data_dir=None if args.data_dir is None else str(args.data_dir),
        reward=check_config_reward(sections["reward"]),
        heuristic=HeuristicConfig() if policy is PolicyKind.HEURISTIC else None,
        ppo=ppo,
        evaluates=None,
        compile=args.compile,
        save_model=args.save_model,
    )
    return resolve(config, run_dir)


def _ppo_run(args: argparse.Namespace, sections: dict[str, Any], parallel: tuple[ParallelMode, int]) -> PpoRun:
    rounds = args.rounds if args.rounds is not None else DEFAULT_ROUNDS
    for name, value in (("--rounds", rounds), ("--envs", args.envs), ("--checkpoint-every", args.checkpoint_every)):
        _positive(name, value)
    mode, world_size = parallel
    return PpoRun(
        rounds=rounds,
        envs=args.envs,
        checkpoint_every=args.checkpoint_every,
        distributed=mode,
        world_size=world_size,
        ppo=sections["ppo"],
        policy=sections["policy"],
    )


def check_config_reward(reward: RewardConfig) -> RewardConfig:
    try:
        return check_reward_config(reward)
    except ValueError as exc:  # an intervention cost table that misses or invents ops
        raise UsageError(str(exc)) from exc


def resolve(config: RunConfig, run_dir: Path, source: str | None = None) -> RunPlan:
    """The objects a RunConfig names. `source` (a config file) prefixes errors, which then name its fields."""
    try:
        # The task as recorded (a flag such as --seed-width may have changed its config), with the registry's data.
        task = dataclasses.replace(get_task(config.task.name), config=config.task)
        blueprints = tuple(blueprint_from_id(b) for b in config.blueprints)
        slots = slot_config(task.build_host().injection_specs(), config.slots)
    except ValueError as exc:  # a config file naming an unknown task, blueprint or slot
        raise UsageError(f"{source}: {exc}" if source else str(exc)) from exc
    if slot_ids(slots) != tuple(config.slots):
        order = " ".join(slot_ids(slots))
        raise UsageError(f"{source}: slots: {' '.join(config.slots)} are not in action order (the host's): {order}")
    if config.policy is PolicyKind.PPO and config.ppo is None:
        raise UsageError(f"{source}: ppo: a ppo run needs its ppo section")
    if config.evaluates is not None and config.policy is not PolicyKind.PPO:
        raise UsageError(f"{source}: evaluates: only a trained ppo policy is evaluated, not {config.policy.value}")
    if (config.policy is not PolicyKind.PPO or config.evaluates is not None) and config.episodes is None:
        raise UsageError(f"{source}: episodes: a {config.policy.value} run needs its episode count")
    return RunPlan(config, task, blueprints, parse_device(config.device), run_dir, slots)


def read_config(run_dir: Path) -> RunConfig:
    """config.json of a run directory, through the RunConfig contract."""
    path = run_dir / CONFIG_FILE
    read_json_file("--resume", path)  # a missing or malformed file: named with line and column
    try:
        return loads(RunConfig, path.read_text(encoding="utf-8"))
    except WireError as exc:  # a field that breaks the contract: named with the file
        raise UsageError(f"--resume: {path}: {exc}") from exc


def write_config(plan: RunPlan) -> None:
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    temporary = plan.run_dir / (CONFIG_FILE + ".tmp")
    temporary.write_text(dumps(plan.config) + "\n", encoding="utf-8")
    temporary.replace(plan.run_dir / CONFIG_FILE)


def with_rounds(plan: RunPlan, rounds: int) -> RunPlan:
    """The same PPO run asked to go on to `rounds` rounds (resume with --rounds)."""
    _positive("--rounds", rounds)
    config = dataclasses.replace(plan.config, ppo=dataclasses.replace(plan.ppo, rounds=rounds))
    return dataclasses.replace(plan, config=config)


def training_started(plan: RunPlan, n_envs: int) -> TrainingStartedPayload:
    """The TRAINING_STARTED payload every run emits."""
    ppo = plan.config.ppo
    return TrainingStartedPayload(
        task=plan.task.name,
        policy=plan.config.policy,
        topology=plan.task.config.topology,
        slot_config=plan.slot_config,
        blueprints=tuple(plan.config.blueprints),
        n_envs=n_envs,
        episode_length=plan.epochs,
        max_seeds=plan.config.max_seeds,
        seed=plan.seed,
        device=plan.config.device,
        host_params=sum(p.numel() for p in plan.task.build_host().parameters()),
        world_size=1 if ppo is None else ppo.world_size,
        parallel_mode=ParallelMode.NONE if ppo is None else ppo.distributed,
        provenance=provenance(),
    )
