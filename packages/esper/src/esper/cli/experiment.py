"""`esper experiment list` and `esper experiment run PACK [--scale quick|cpu|full] [--out DIR]`: run an experiment
pack (data: an ExperimentPack contract shipped in esper/karn/packs/) arm by arm and seed by seed, judge each gate
pair with the Phase 0 gates (the code behind `esper gates`), and write the comparison report.

A heuristic or random arm runs once per seed. A PPO arm trains one policy (OUT/<arm>-train/, on the scale's
ppo_train_seed environments) and then evaluates it deterministically on every seed of the scale, exactly as
`esper evaluate` does: every arm is judged on the same seeds, none of which trained a policy.

Output: OUT/<arm>-s<seed>/ (ordinary run directories, each with its own host-only baseline), OUT/<arm>-train/,
OUT/comparison.html, OUT/results.json, OUT/verdict.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, UsageError
from esper.cli.evaluate import evaluation_config
from esper.cli.plan import RunPlan, resolve
from esper.cli.ppo import CHECKPOINT, PpoStart, run_ppo
from esper.cli.progress import Progress, progress_for
from esper.cli.train import run_policy
from esper.karn import RunStore, evaluate
from esper.karn.comparison import (
    ArmMetrics,
    arm_metrics,
    build_comparison,
    comparisons,
    differences,
    overall_verdict,
)
from esper.karn.contracts import ExperimentArm, ExperimentPack, ExperimentScale
from esper.karn.gates import GateReport
from esper.karn.packs import SCALES, PackError, check_pack, load_packs, scale
from esper.leyline import ParallelMode, PolicyKind, SlotIdError, WireError, loads, slot_config, slot_ids
from esper.simic import PpoConfig, PpoRun, RewardConfig, RunConfig
from esper.tamiyo import HeuristicConfig, LstmPolicyConfig
from esper.tolaria import TaskSpec, get_task


def cmd_list(args: argparse.Namespace) -> int:
    for pack in load_packs().values():
        print(f"{pack.name}: {pack.description}")
        print(f"  task {pack.task}; gate pairs: " + ", ".join(f"{g.treatment} vs {g.control}" for g in pack.gate_pairs))
        for arm in pack.arms:
            where = "" if arm.task is None else f" task {arm.task};"
            where += "" if arm.slots is None else f" slots {' '.join(arm.slots)};"
            print(f"  arm {arm.name:<14} {arm.policy.value:<9}{where} {' '.join(arm.blueprints)}")
        for name in SCALES:
            s = scale(pack, name)
            print(
                f"  {name:<5} seeds {list(s.seeds)}, {s.episodes} episode(s) x {s.epochs} epochs, PPO "
                f"{s.ppo_rounds} rounds x {s.ppo_envs} envs (trained on seed {s.ppo_train_seed}); arms "
                f"{' '.join(s.arms)}"
            )
    return 0


def arm_slots(pack: ExperimentPack, arm: ExperimentArm, task: TaskSpec) -> tuple[str, ...]:
    """The arm's slots (the task's default ones when it names none) in the host's action order."""
    wanted = task.config.default_slots if arm.slots is None else arm.slots
    try:
        return slot_ids(slot_config(task.build_host().injection_specs(), wanted))
    except SlotIdError as exc:  # a pack naming a slot its task's host lacks: misuse, named with pack and arm
        raise UsageError(f"pack {pack.name}, arm {arm.name}: slots: {exc}") from exc


def arm_plan(pack: ExperimentPack, size: ExperimentScale, arm: ExperimentArm, seed: int, run_dir: Path) -> RunPlan:
    """The RunConfig of one arm on one seed (its task, the pack's unless it names one, and its slots, the task's
    default ones unless it names some), resolved; for a PPO arm, its training run."""
    task = get_task(pack.task if arm.task is None else arm.task)
    policy = arm.policy
    ppo = None
    if policy is PolicyKind.PPO:
        ppo = PpoRun(
            rounds=size.ppo_rounds,
            envs=size.ppo_envs,
            checkpoint_every=1,
            distributed=ParallelMode.NONE,
            world_size=1,
            ppo=PpoConfig(),
            policy=LstmPolicyConfig(),
        )
    config = RunConfig(
        run_id=run_dir.name,
        policy=policy,
        task=task.config,
        slots=arm_slots(pack, arm, task),
        blueprints=tuple(arm.blueprints),
        episodes=None if policy is PolicyKind.PPO else size.episodes,
        episode_length=size.epochs,
        max_seeds=None,
        seed=seed,
        device="cpu",
        data_dir=None,
        reward=RewardConfig(),
        heuristic=HeuristicConfig() if policy is PolicyKind.HEURISTIC else None,
        ppo=ppo,
        evaluates=None,
        compile=False,
        save_model=False,
    )
    return resolve(config, run_dir, f"pack {pack.name}, arm {arm.name}")


def run_arm(plan: RunPlan, progress: Progress) -> bool:
    """One run of an arm (a seed, or a PPO arm's training), written as an ordinary run; False when a stop request
    ended it early."""
    if plan.config.policy is PolicyKind.PPO and plan.config.evaluates is None:
        result = run_ppo(PpoStart(plan, plan.task.load(None), resume=False, group=None), progress)
    else:
        result = run_policy(plan, progress)
    return not isinstance(result, Interrupted)


def evaluation_plan(training: RunPlan, size: ExperimentScale, seed: int, run_dir: Path) -> RunPlan:
    """A PPO arm's evaluation on one seed: its trained policy, deterministically, as `esper evaluate` runs it."""
    checkpoint = training.run_dir / CHECKPOINT
    config = evaluation_config(training.config, checkpoint, seed, run_dir.name, size.episodes, size.epochs)
    return resolve(config, run_dir)


def find_pack(name: str) -> ExperimentPack:
    """A shipped pack by name, or a pack file of one's own (PATH.json, validated against the contract)."""
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"PACK: {path} is not a file")
        try:
            return check_pack(loads(ExperimentPack, path.read_text(encoding="utf-8")))
        except (WireError, PackError) as exc:  # a broken pack file is misuse: name the field, exit 2
            raise UsageError(f"PACK {path}: {exc}") from exc
    packs = load_packs()
    if name not in packs:
        raise UsageError(f"PACK: no pack {name!r}; packs: {', '.join(packs)} (or give a pack file, PATH.json)")
    return packs[name]


@dataclass(frozen=True, slots=True)
class PackRuns:
    """Every run of a pack at one scale, resolved before anything runs."""

    size: ExperimentScale
    out: Path
    plans: dict[tuple[str, int], RunPlan]  # heuristic and random arms, per (arm, seed)
    trainings: dict[str, RunPlan]  # each PPO arm's training run; its evaluations are planned after it trained

    @property
    def total(self) -> int:
        return len(self.size.arms) * len(self.size.seeds) + len(self.trainings)


def plan_pack(pack: ExperimentPack, size: ExperimentScale, out: Path) -> PackRuns:
    arms = {a.name: a for a in pack.arms}
    ppo_arms = [name for name in size.arms if arms[name].policy is PolicyKind.PPO]
    trainings = {
        name: arm_plan(pack, size, arms[name], size.ppo_train_seed, out / f"{name}-train") for name in ppo_arms
    }
    plans = {
        (name, seed): arm_plan(pack, size, arms[name], seed, out / f"{name}-s{seed}")
        for seed in size.seeds
        for name in size.arms
        if name not in trainings
    }
    return PackRuns(size, out, plans, trainings)


def run_pack(runs: PackRuns, progress: Progress) -> dict[tuple[str, int], Path] | None:
    """Every run of the pack (PPO arms: training, then one evaluation per seed); None when a stop request ended it."""
    run_dirs: dict[tuple[str, int], Path] = {}
    done = 0
    bar = progress.bar("runs", runs.total)  # each run's own bars open inside it

    def run(plan: RunPlan, what: str) -> bool:
        nonlocal done
        done += 1
        bar.update(
            done - 1, f"{what} (run {done}/{runs.total})", line=f"[{done}/{runs.total}] {what} -> {plan.run_dir}"
        )
        if run_arm(plan, progress):
            return True
        bar.close()
        print(
            f"esper experiment: {STOP.describe()} during {what}; {done - 1} of {runs.total} runs finished in "
            f"{runs.out}; no comparison was written",
            file=sys.stderr,
        )
        return False

    for (name, seed), plan in runs.plans.items():
        if not run(plan, f"{name} seed {seed}"):
            return None
        run_dirs[(name, seed)] = plan.run_dir
    for name, training in runs.trainings.items():
        if not run(training, f"{name} training (seed {runs.size.ppo_train_seed})"):
            return None
        for seed in runs.size.seeds:
            plan = evaluation_plan(training, runs.size, seed, runs.out / f"{name}-s{seed}")
            if not run(plan, f"{name} evaluation, seed {seed}"):
                return None
            run_dirs[(name, seed)] = plan.run_dir
    bar.close()
    return run_dirs


def cmd_run(args: argparse.Namespace) -> int:
    pack = find_pack(args.pack)
    scale_name = "quick" if args.quick else args.scale
    size = scale(pack, scale_name)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out if args.out is not None else Path("runs") / "experiments" / f"{pack.name}-{scale_name}-{stamp}"
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out: {out} exists and is not empty")
    runs = plan_pack(pack, size, out)  # every arm checked (blueprints, policy) before anything runs
    out.mkdir(parents=True, exist_ok=True)
    with STOP.armed(), progress_for(sys.stderr) as progress:
        run_dirs = run_pack(runs, progress)
    if run_dirs is None:
        return EXIT_INTERRUPTED
    stores = {key: RunStore(path) for key, path in run_dirs.items()}
    host_only = {seed: stores[(name, seed)].baseline_accuracy for (name, seed) in run_dirs}
    metrics: list[ArmMetrics] = [arm_metrics(name, seed, store) for (name, seed), store in stores.items()]
    reports: list[tuple[str, int, GateReport]] = []
    for pair in pack.gate_pairs:
        if pair.treatment not in size.arms or pair.control not in size.arms:
            continue
        # A PPO arm's entropy gate reads its training run (its evaluations make no PPO update).
        training = RunStore(runs.trainings[pair.treatment].run_dir) if pair.treatment in runs.trainings else None
        for seed in size.seeds:
            report = evaluate(stores[(pair.treatment, seed)], stores[(pair.control, seed)], training=training)
            reports.append((f"{pair.treatment} vs {pair.control}", seed, report))
    (out / "comparison.html").write_text(build_comparison(pack, scale_name, metrics, reports, run_dirs))
    verdict = overall_verdict(reports)
    results = {
        "pack": pack.name,
        "scale": scale_name,
        "verdict": verdict,
        "host_only_accuracy": {str(k): v for k, v in host_only.items()},
        "arms": [dataclasses.asdict(m) for m in metrics],
        "differences": differences(metrics, comparisons(pack, size.arms)),
        "gates": [
            {
                "pair": pair,
                "seed": seed,
                "passed": report.passed,
                "results": [
                    {"gate": r.gate, "verdict": r.verdict.value, "measured": r.measured, "note": r.note}
                    for r in report.results
                ],
            }
            for pair, seed, report in reports
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "verdict.txt").write_text(verdict + "\n")
    print(f"experiment {pack.name} ({scale_name}): {verdict}")
    print(f"  report: {out / 'comparison.html'}; results: {out / 'results.json'}")
    return 0 if all(report.passed for _, _, report in reports) and reports else 1
