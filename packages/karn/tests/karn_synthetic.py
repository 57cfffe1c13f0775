"""Scripted event logs for Karn tests: real TelemetryHub + JsonlSink writing real payloads, driven by a list of
decisions, so each gate and view can be exercised with known numbers.

Every EPOCH_COMPLETED carries the seeds in its environment's slots (SeedEpoch), in slot order: live seeds as
GERMINATED (alpha 0), fossilized ones as FOSSILIZED (alpha 1, counterfactual 0.4) and pruned ones as PRUNED (alpha 0,
delta ratio null) until their slot germinates again or the episode ends. A seed's delta ratio at the k-th epoch it
is reported in is `delta_ratio(n, k)` (n: its number, as in its id `env{e}-seed{n}`): 0.11, 0.12, ... for seed 1,
0.21, ... for seed 2.

A heuristic-style run (`heuristic_run`) writes, after each episode's own events, its host-only baseline as
`esper train heuristic` does: HOST_BASELINE_EPOCH under env 0, that episode and epochs 1..N, with the known metrics
of `baseline_metrics(episode, epoch)` (val accuracy 40 + 10 * episode + epoch).

Runs default to a CNN on digits with three block-end slots (CNN_SLOTS); `SyntheticRun(..., slots=LATTICE,
topology=Topology.TRANSFORMER)` is a transformer with a sublayer lattice (LATTICE: POST_ATTN and POST_MLP of two
layers, in action order r0c0 r1c0 r0c1 r1c1), and `lattice_run` a scripted one with hand-counted surface usage.
POOL_SLOTS is a CNN's pre/post-pool lattice (Phase 2: PRE_POOL r0c*, POST_POOL r1c*, in forward order).

Every seed payload carries the group size: a `channel_ladder` seed has CHANNEL_GROUP_SIZE channels per group (in
SEED_GERMINATED's internal_group_size and each SEED_INTERNAL_LEVEL_CHANGED's group_size), every other seed 0.
Ladders germinate at level 1 of 4."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from esper.karn import JsonlSink, RunSummary
from esper.leyline import (
    BLUEPRINT_INTERNAL_KIND,
    ActionHead,
    ActionTakenPayload,
    BlueprintAction,
    CheckpointLoadedPayload,
    CheckpointSavedPayload,
    CounterfactualDeltaPayload,
    EnvEmitter,
    EpisodeOutcome,
    EpisodeOutcomePayload,
    EpochCompletedPayload,
    GateLevel,
    GateResult,
    GerminationStyle,
    GovernorReason,
    GovernorRollbackPayload,
    HostBaselineEpochPayload,
    InjectionSpec,
    InternalOpMetricsPayload,
    LifecycleOp,
    ParallelMode,
    PolicyKind,
    PpoUpdateCompletedPayload,
    Provenance,
    PruneInitiator,
    RewardComponents,
    RewardComputedPayload,
    SeedEpoch,
    SeedFossilizedPayload,
    SeedGateEvaluatedPayload,
    SeedGerminatedPayload,
    SeedInternalKind,
    SeedInternalLevelChangedPayload,
    SeedPrunedPayload,
    SeedStage,
    SeedStageChangedPayload,
    SlotConfig,
    SurfaceType,
    SystemMetrics,
    TelemetryHub,
    Topology,
    TrainingCompletedPayload,
    TrainingStartedPayload,
    canonical_action,
    dumps,
    slot_config,
    slot_ids,
)

OP = LifecycleOp
CNN_SLOTS = slot_config(
    [
        InjectionSpec(slot_id=f"r0c{i}", channels=4 << i, surface=SurfaceType.BLOCK_END, order=i, position=(i + 1) / 3)
        for i in range(3)
    ],
    ("r0c0", "r0c1", "r0c2"),
)
SLOTS = slot_ids(CNN_SLOTS)
CHANNEL_GROUP_SIZE = 2  # channels per group of every channel_ladder seed


# A CNN's pre/post-pool lattice of three blocks (Phase 2): r0c{b} PRE_POOL (before block b's pool, full resolution),
# r1c{b} POST_POOL (after it; the last block has no pool). Forward order: r0c0 r1c0 r0c1 r1c1 r0c2.
def _pool_point(block: int, rank: int) -> InjectionSpec:
    order = block * 2 + rank
    surface = (SurfaceType.PRE_POOL, SurfaceType.POST_POOL)[rank]
    return InjectionSpec(
        slot_id=f"r{rank}c{block}", channels=4 << block, surface=surface, order=order, position=order / 4
    )


POOL_SLOTS = slot_config(
    [_pool_point(block, rank) for block in range(3) for rank in range(2) if (block, rank) != (2, 1)],
    ("r0c0", "r1c0", "r0c1", "r1c1", "r0c2"),
)


# The transformer sublayer lattice of two layers: r{rank}c{layer}, rank 0 POST_ATTN, rank 1 POST_MLP; action order
# is the forward order (layer * 2 + rank), not the ids' row-major order.
def _sublayer(layer: int, rank: int) -> InjectionSpec:
    order = layer * 2 + rank
    surface = (SurfaceType.POST_ATTN, SurfaceType.POST_MLP)[rank]
    return InjectionSpec(
        slot_id=f"r{rank}c{layer}", channels=32, surface=surface, order=order, position=(order + 1) / 4
    )


LATTICE = slot_config(
    [_sublayer(layer, rank) for layer in range(2) for rank in range(2)], ("r0c0", "r0c1", "r1c0", "r1c1")
)
BLUEPRINTS = {
    Topology.CNN: ("conv_ladder", "conv_heavy", "conv_light"),
    Topology.TRANSFORMER: ("lora", "lora_large", "lora_ladder"),
}
TASKS = {Topology.CNN: "digits", Topology.TRANSFORMER: "charlm_layerwise"}
TOPOLOGY_SLOTS = {Topology.CNN: CNN_SLOTS, Topology.TRANSFORMER: LATTICE}
LADDERS = {Topology.CNN: "conv_ladder", Topology.TRANSFORMER: "lora_ladder"}
HOST_PARAMS = 1702
FOSSILIZED_CONTRIBUTION = 0.4
PROVENANCE = Provenance(
    git_commit="0123456789abcdef0123456789abcdef01234567",
    git_dirty=False,
    command_line=("esper", "train", "heuristic", "--task", "digits"),
    esper_version="0.1.0",
    torch_version="2.9.1",
    python_version="3.11.7",
    host_name="synthetic-host",
    platform="Linux-synthetic",
)


def delta_ratio(number: int, reported: int) -> float:
    """|delta| / |x| of seed `number` at the `reported`-th epoch it is in (from 1)."""
    return round(0.1 * number + 0.01 * reported, 6)


def baseline_metrics(episode: int, epoch: int) -> HostBaselineEpochPayload:
    """The host-only baseline's epoch `epoch` of episode `episode`: val accuracy 40 + 10 * episode + epoch (train
    accuracy one point higher), losses 1.1 / epoch (train) and 1.3 / epoch (val)."""
    val_accuracy = 40.0 + 10.0 * episode + epoch
    return HostBaselineEpochPayload(
        train_loss=1.1 / epoch, train_accuracy=val_accuracy + 1.0, val_loss=1.3 / epoch, val_accuracy=val_accuracy
    )


@dataclass
class _Seed:
    seed_id: str
    number: int
    blueprint: BlueprintAction
    level: int
    params: int
    group_size: int  # channels per group of a channel ladder; 0 for every other seed
    stage: SeedStage = SeedStage.GERMINATED
    reported: int = 0  # epochs reported in so far

    def record(self, slot: str) -> SeedEpoch:
        """The seed at the end of an epoch (counted as reported)."""
        self.reported += 1
        pruned = self.stage is SeedStage.PRUNED
        return SeedEpoch(
            slot_id=slot,
            seed_id=self.seed_id,
            blueprint_id=self.blueprint.name.lower(),
            stage=self.stage,
            alpha=1.0 if self.stage is SeedStage.FOSSILIZED else 0.0,
            delta_ratio=None if pruned else delta_ratio(self.number, self.reported),
            counterfactual_contribution=FOSSILIZED_CONTRIBUTION if self.stage is SeedStage.FOSSILIZED else None,
        )


@dataclass
class SyntheticRun:
    """One run directory. Decisions are applied in order; successful GERMINATE / GROW / SHRINK / PRUNE /
    FOSSILIZE emit the lifecycle events a real environment would."""

    run_dir: Path
    episode_length: int = 20
    n_envs: int = 1
    policy: PolicyKind = PolicyKind.PPO
    world_size: int = 1
    slots: SlotConfig = CNN_SLOTS
    topology: Topology = Topology.CNN
    hub: TelemetryHub = field(init=False)
    _seeds: dict[tuple[int, str], _Seed] = field(default_factory=dict, init=False)  # live, by (env, slot)
    _ended: dict[tuple[int, str], _Seed] = field(default_factory=dict, init=False)  # fossilized or pruned
    _counter: int = field(default=0, init=False)
    _accuracy: float = field(default=50.0, init=False)
    _emitters: dict[int, EnvEmitter] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.hub = TelemetryHub(self.run_dir.name, sinks=(JsonlSink(self.run_dir / "events.jsonl"),))
        self.hub.emit(
            TrainingStartedPayload(
                task=TASKS[self.topology],
                policy=self.policy,
                topology=self.topology,
                slot_config=self.slots,
                blueprints=BLUEPRINTS[self.topology],
                n_envs=self.n_envs,
                episode_length=self.episode_length,
                max_seeds=None,
                seed=0,
                device="cpu",
                host_params=HOST_PARAMS,
                world_size=self.world_size,
                parallel_mode=ParallelMode.NONE if self.world_size == 1 else ParallelMode.ENVS,
                provenance=PROVENANCE,
            )
        )

    @property
    def slot_ids(self) -> tuple[str, ...]:
        return slot_ids(self.slots)

    def surface(self, slot: str) -> SurfaceType:
        (spec,) = [spec for spec in self.slots.slots if spec.slot_id == slot]
        return spec.surface

    def _at(self, env: int, epoch: int) -> EnvEmitter:
        emitter = self._emitters[env]
        emitter.set_epoch(epoch)
        return emitter

    def start_episode(self, env: int, episode: int) -> None:
        self._emitters[env] = self.hub.emitter(env)
        self._emitters[env].start_episode(episode)
        self._seeds = {k: v for k, v in self._seeds.items() if k[0] != env}
        self._ended = {k: v for k, v in self._ended.items() if k[0] != env}

    def _in_slots(self, env: int) -> list[tuple[str, _Seed]]:
        """The seeds in the slots of `env` (live, fossilized or pruned), in slot order."""
        found = []
        for slot in self.slot_ids:
            if (env, slot) in self._seeds:
                found.append((slot, self._seeds[env, slot]))
            elif (env, slot) in self._ended:
                found.append((slot, self._ended[env, slot]))
        return found

    def epoch(self, env: int, epoch: int, accuracy: float | None = None) -> None:
        emitter = self._at(env, epoch)
        self._accuracy = accuracy if accuracy is not None else self._accuracy + 0.5
        live = [s for (e, _), s in self._seeds.items() if e == env]
        emitter.emit(
            EpochCompletedPayload(
                train_loss=1.0 / epoch,
                train_accuracy=self._accuracy,
                val_loss=1.2 / epoch,
                val_accuracy=self._accuracy,
                host_params=HOST_PARAMS,
                seed_params=sum(s.params for s in live),
                live_seeds=len(live),
                fossilized_seeds=0,
                epoch_seconds=0.01,
                governor_rollback=False,
                seeds=tuple(seed.record(slot) for slot, seed in self._in_slots(env)),
                system=SystemMetrics(rss_mb=300.0 + epoch, cpu_seconds=2.0 * epoch, cuda_peak_mb=None),
            )
        )

    def decide(
        self,
        env: int,
        epoch: int,
        op: LifecycleOp,
        slot: str = "r0c0",
        blueprint: str = "conv_ladder",
        *,
        success: bool = True,
        gate_refused: bool = False,
        reward: float | None = 0.1,
    ) -> None:
        """One decision at `epoch` (emits EPOCH_COMPLETED first, as the environment does); an unsuccessful one is
        invalid unless `gate_refused`."""
        self.epoch(env, epoch)
        emitter = self._emitters[env]
        bp = BlueprintAction[blueprint.upper()] if op is OP.GERMINATE else BlueprintAction.NOOP
        emitter.emit(
            ActionTakenPayload(
                policy=self.policy,
                action=canonical_action(op, self.slot_ids.index(slot), bp),
                success=success,
                rejection_reason=None if success else "gate G2: min_gradient_health" if gate_refused else "masked",
                gate_refused=gate_refused,
                valid_ops=(OP.WAIT, op),
                op_probabilities=None,
            ),
            slot_id=None if op is OP.WAIT else slot,
        )
        if reward is not None:
            emitter.emit(
                RewardComputedPayload(
                    op=op,
                    components=RewardComponents(
                        contribution=reward,
                        rent=0.0,
                        alpha_shock=0.0,
                        pbrs=0.0,
                        intervention_cost=0.0,
                        thrash_penalty=0.0,
                        terminal_bonus=0.0,
                        governor_penalty=0.0,
                        total=reward,
                    ),
                ),
                slot_id=slot,
            )
        if success:
            self._apply(emitter, env, op, slot, bp)

    def _apply(self, emitter: EnvEmitter, env: int, op: LifecycleOp, slot: str, bp: BlueprintAction) -> None:
        key = (env, slot)
        if op is OP.GERMINATE:
            self._counter += 1
            kind = BLUEPRINT_INTERNAL_KIND[bp]
            ladder = kind is not SeedInternalKind.NONE
            group_size = CHANNEL_GROUP_SIZE if kind is SeedInternalKind.CHANNEL_LADDER else 0
            seed = _Seed(f"env{env}-seed{self._counter}", self._counter, bp, 1 if ladder else 0, 100, group_size)
            self._seeds[key] = seed
            if key in self._ended:  # the slot resets for the new seed
                del self._ended[key]
            emitter.emit(
                SeedGerminatedPayload(
                    seed_id=seed.seed_id,
                    blueprint=bp,
                    blueprint_id=bp.name.lower(),
                    style=GerminationStyle.SIGMOID_ADD,
                    blend_tempo_epochs=5,
                    alpha_target=1.0,
                    params=seed.params,
                    internal_kind=kind,
                    internal_level=seed.level,
                    internal_max_level=4 if ladder else 1,
                    surface=self.surface(slot),
                    internal_group_size=seed.group_size,
                ),
                slot_id=slot,
            )
            emitter.emit(
                SeedStageChangedPayload(
                    seed_id=seed.seed_id,
                    blueprint_id=bp.name.lower(),
                    from_stage=SeedStage.DORMANT,
                    to_stage=SeedStage.GERMINATED,
                    epochs_in_previous_stage=0,
                    alpha=0.0,
                ),
                slot_id=slot,
            )
        elif op in (OP.GROW_INTERNAL, OP.SHRINK_INTERNAL):
            seed = self._seeds[key]
            new = seed.level + (1 if op is OP.GROW_INTERNAL else -1)
            emitter.emit(
                SeedInternalLevelChangedPayload(
                    seed_id=seed.seed_id,
                    blueprint_id=seed.blueprint.name.lower(),
                    internal_kind=BLUEPRINT_INTERNAL_KIND[seed.blueprint],
                    from_level=seed.level,
                    to_level=new,
                    max_level=4,
                    active_params=40 * new,
                    group_size=seed.group_size,
                ),
                slot_id=slot,
            )
            seed.level = new
            seed.params = 40 * new
        elif op is OP.PRUNE:
            seed = self._seeds.pop(key)
            seed.stage = SeedStage.PRUNED
            self._ended[key] = seed
            emitter.emit(
                SeedPrunedPayload(
                    seed_id=seed.seed_id,
                    blueprint_id=seed.blueprint.name.lower(),
                    initiator=PruneInitiator.POLICY,
                    reason="policy",
                    from_stage=SeedStage.TRAINING,
                    epochs_total=3,
                    params_removed=seed.params,
                    counterfactual_contribution=None,
                ),
                slot_id=slot,
            )
        elif op is OP.FOSSILIZE:
            seed = self._seeds.pop(key)
            seed.stage = SeedStage.FOSSILIZED
            self._ended[key] = seed
            emitter.emit(
                SeedFossilizedPayload(
                    seed_id=seed.seed_id,
                    blueprint_id=seed.blueprint.name.lower(),
                    params_added=seed.params,
                    epochs_total=6,
                    counterfactual_contribution=FOSSILIZED_CONTRIBUTION,
                    total_improvement=1.5,
                ),
                slot_id=slot,
            )

    def outcome(self, env: int, final_accuracy: float, added_params: int, *, rollbacks: int = 0) -> None:
        emitter = self._at(env, self.episode_length)
        for _ in range(rollbacks):
            emitter.emit(
                GovernorRollbackPayload(
                    reason=GovernorReason.DIVERGENCE, loss=9.0, threshold=3.0, restored_epoch=1, pruned_slots=()
                )
            )
        emitter.emit(
            EpisodeOutcomePayload(
                outcome=EpisodeOutcome(
                    final_accuracy=final_accuracy,
                    best_accuracy=final_accuracy,
                    episode_length=self.episode_length,
                    episode_reward=1.0,
                    reward_components=None,
                    host_params=HOST_PARAMS,
                    added_params=added_params,
                    param_ratio=added_params / HOST_PARAMS,
                    germinated=0,
                    fossilized=0,
                    pruned=0,
                    internal_level_changes=0,
                    invalid_actions=0,
                    gate_refusals=0,
                    governor_rollbacks=rollbacks,
                )
            )
        )

    def host_baseline(self, epochs: range | None = None) -> None:
        """Env 0's current episode's host-only baseline, written as `esper train heuristic` does after the episode's
        own events (an emitter of env 0 at that episode): HOST_BASELINE_EPOCH at each of `epochs` (default: the whole
        episode, 1..episode_length) with `baseline_metrics`."""
        episode = self._emitters[0].episode
        assert episode is not None, "host_baseline before start_episode(0, ...)"
        emitter = self.hub.emitter(0)
        emitter.start_episode(episode)
        for epoch in range(1, self.episode_length + 1) if epochs is None else epochs:
            emitter.set_epoch(epoch)
            emitter.emit(baseline_metrics(episode, epoch))

    def ppo_update(self, round_: int, op_entropy: float) -> None:
        entropies = {head: 0.9 for head in ActionHead}
        entropies[ActionHead.OP] = op_entropy
        self.hub.emit(
            PpoUpdateCompletedPayload(
                round=round_,
                policy_loss=0.1,
                value_loss=0.2,
                entropy=op_entropy,
                approx_kl=0.01,
                clip_fraction=0.1,
                explained_variance=0.5,
                grad_norm=1.0,
                learning_rate=3e-4,
                head_entropies=entropies,
                op_q_values={op.name: 0.1 for op in LifecycleOp},
                update_seconds=0.05,
            )
        )

    def extras(self, env: int) -> None:
        """The remaining event types, once each (gate evaluation, op metrics, counterfactual, checkpoints)."""
        emitter = self._at(env, 2)
        emitter.emit(
            SeedGateEvaluatedPayload(
                seed_id="env0-seed99",
                result=GateResult(
                    gate=GateLevel.G1,
                    target_stage=SeedStage.TRAINING,
                    passed=False,
                    checks_passed=(),
                    checks_failed=("too_early",),
                    message="too early",
                ),
            ),
            slot_id="r0c1",
        )
        emitter.emit(
            InternalOpMetricsPayload(
                window=50, op_count=4, internal_op_density=0.08, net_level_change=2, reversal_rate=0.33
            ),
            slot_id="r0c0",
        )
        emitter.emit(
            CounterfactualDeltaPayload(
                op=OP.GROW_INTERNAL,
                from_level=1,
                to_level=2,
                horizon_epochs=1,
                loss_before=1.0,
                loss_after=0.9,
                accuracy_before=60.0,
                accuracy_after=62.0,
                params_before=40,
                params_after=80,
                loss_delta=-0.1,
                accuracy_delta=2.0,
                baseline_accuracy_delta=0.5,
            ),
            slot_id="r0c0",
        )
        self.hub.emit(CheckpointSavedPayload(path=str(self.run_dir / "checkpoint.pt"), round=1))
        self.hub.emit(CheckpointLoadedPayload(path=str(self.run_dir / "checkpoint.pt"), round=1))

    def finish(self, *, baseline_accuracy: float | None = None, episodes: int = 1) -> None:
        self.hub.emit(TrainingCompletedPayload(episodes_completed=episodes, wall_seconds=1.0, interrupted=False))
        self.hub.close()
        summary = RunSummary(
            run_id=self.run_dir.name,
            task=TASKS[self.topology],
            policy=self.policy,
            episodes=episodes,
            final_accuracy=self._accuracy,
            baseline_accuracy=baseline_accuracy,
            germinated=0,
            fossilized=0,
            pruned=0,
            internal_level_changes=0,
            added_params=0,
            invalid_actions=0,
            gate_refusals=0,
            governor_rollbacks=0,
            seed=0,
            epochs_per_episode=self.episode_length,
        )
        (self.run_dir / "summary.json").write_text(dumps(summary) + "\n")


def scripted_run(
    run_dir: Path,
    ops: list[tuple[int, LifecycleOp] | tuple[int, LifecycleOp, str]],
    *,
    episode_length: int = 20,
    final_accuracy: float = 90.0,
    added_params: int = 1000,
    baseline_accuracy: float | None = 85.0,
    rollbacks: int = 0,
    op_entropies: tuple[float, ...] = (),
    invalid_epochs: tuple[int, ...] = (),
    topology: Topology = Topology.CNN,
) -> Path:
    """One env, one episode: `ops` are (epoch, op[, blueprint]) decisions on slot r0c0 (the topology's ladder unless
    a blueprint is given); every other epoch WAITs. Decisions at `invalid_epochs` are rejected. A CNN run has the
    block-end CNN_SLOTS, a transformer run the LATTICE."""
    run = SyntheticRun(run_dir, episode_length=episode_length, slots=TOPOLOGY_SLOTS[topology], topology=topology)
    run.start_episode(0, 0)
    by_epoch = {entry[0]: entry for entry in ops}
    for epoch in range(1, episode_length + 1):
        entry = by_epoch.get(epoch)
        if entry is None:
            run.decide(0, epoch, OP.WAIT)
            continue
        op = entry[1]
        blueprint = entry[2] if len(entry) == 3 else LADDERS[topology]
        run.decide(0, epoch, op, blueprint=blueprint, success=epoch not in invalid_epochs)
    run.outcome(0, final_accuracy, added_params, rollbacks=rollbacks)
    for round_, entropy in enumerate(op_entropies, start=1):
        run.ppo_update(round_, entropy)
    run.finish(baseline_accuracy=baseline_accuracy)
    return run_dir


def every_event_type_run(run_dir: Path) -> Path:
    """A short run that emits every TelemetryEventType at least once."""
    run = SyntheticRun(run_dir, episode_length=6)
    run.start_episode(0, 0)
    run.decide(0, 1, OP.GERMINATE, blueprint="conv_ladder")
    run.decide(0, 2, OP.GROW_INTERNAL)
    run.decide(0, 3, OP.SHRINK_INTERNAL)
    run.decide(0, 4, OP.FOSSILIZE)
    run.decide(0, 5, OP.GERMINATE, slot="r0c1", blueprint="conv_heavy")
    run.decide(0, 6, OP.PRUNE, slot="r0c1")
    run.extras(0)
    run.outcome(0, 91.0, 200, rollbacks=1)
    run.host_baseline()
    run.ppo_update(1, 0.7)
    run.finish(baseline_accuracy=90.0)
    return run_dir


HEURISTIC_EPISODE_LENGTH = 6
# The seed events of each heuristic_episode, as the accuracy charts mark them: (epoch, kind, slot).
HEURISTIC_SEED_MARKS = (
    (1, "germinate", "r0c0"),
    (2, "level", "r0c0"),
    (4, "fossilize", "r0c0"),
    (5, "germinate", "r0c1"),
    (6, "prune", "r0c1"),
)


def heuristic_episode(run: SyntheticRun, episode: int, final_accuracy: float) -> None:
    """One episode of env 0 (HEURISTIC_EPISODE_LENGTH epochs): a ladder germinated in r0c0 at epoch 1, grown at 2
    and fossilized at 4; conv_heavy germinated in r0c1 at 5 and pruned at 6 (HEURISTIC_SEED_MARKS); then its
    outcome. Its baseline is left to the caller (`run.host_baseline()`)."""
    run.start_episode(0, episode)
    run.decide(0, 1, OP.GERMINATE, blueprint="conv_ladder", reward=None)
    run.decide(0, 2, OP.GROW_INTERNAL, reward=None)
    run.decide(0, 3, OP.WAIT, reward=None)
    run.decide(0, 4, OP.FOSSILIZE, reward=None)
    run.decide(0, 5, OP.GERMINATE, slot="r0c1", blueprint="conv_heavy", reward=None)
    run.decide(0, 6, OP.PRUNE, slot="r0c1", reward=None)
    run.outcome(0, final_accuracy, 80)


def heuristic_start(run_dir: Path) -> SyntheticRun:
    return SyntheticRun(run_dir, episode_length=HEURISTIC_EPISODE_LENGTH, policy=PolicyKind.HEURISTIC)


def heuristic_run(run_dir: Path, *, episodes: int = 2) -> Path:
    """A finished heuristic run of `episodes` heuristic_episodes (final accuracy 60 + episode), each followed by its
    host-only baseline (`baseline_metrics`); summary.json's baseline is the last one's final accuracy."""
    run = heuristic_start(run_dir)
    for episode in range(episodes):
        heuristic_episode(run, episode, 60.0 + episode)
        run.host_baseline()
    run.finish(
        baseline_accuracy=baseline_metrics(episodes - 1, HEURISTIC_EPISODE_LENGTH).val_accuracy, episodes=episodes
    )
    return run_dir


def lattice_run(run_dir: Path) -> Path:
    """A transformer run on the LATTICE (r0c0, r0c1 POST_ATTN; r1c0, r1c1 POST_MLP), one env, one episode of 10:

    epoch 1 GERMINATE lora_ladder r0c0, 2 GROW_INTERNAL r0c0, 3 GERMINATE lora_large r1c0, 4 WAIT, 5 GROW_INTERNAL
    r0c0, 6 PRUNE r1c0, 7 FOSSILIZE r0c0 (contribution 0.4), 8 GERMINATE lora r0c1, 9 ADVANCE r1c1 (invalid),
    10 WAIT."""
    run = SyntheticRun(run_dir, episode_length=10, slots=LATTICE, topology=Topology.TRANSFORMER)
    run.start_episode(0, 0)
    run.decide(0, 1, OP.GERMINATE, slot="r0c0", blueprint="lora_ladder")
    run.decide(0, 2, OP.GROW_INTERNAL, slot="r0c0")
    run.decide(0, 3, OP.GERMINATE, slot="r1c0", blueprint="lora_large")
    run.decide(0, 4, OP.WAIT)
    run.decide(0, 5, OP.GROW_INTERNAL, slot="r0c0")
    run.decide(0, 6, OP.PRUNE, slot="r1c0")
    run.decide(0, 7, OP.FOSSILIZE, slot="r0c0")
    run.decide(0, 8, OP.GERMINATE, slot="r0c1", blueprint="lora")
    run.decide(0, 9, OP.ADVANCE, slot="r1c1", success=False)
    run.decide(0, 10, OP.WAIT)
    run.outcome(0, 90.0, 300)
    run.finish(baseline_accuracy=85.0)
    return run_dir


def channel_run(run_dir: Path, *, finish: bool = True) -> SyntheticRun:
    """A CNN run on POOL_SLOTS, one env, one episode of 6: epoch 1 GERMINATE channel_ladder r0c1 (pre-pool, level 1
    of 4, CHANNEL_GROUP_SIZE channels per group), 2 GROW_INTERNAL r0c1 (level 2), 3 GERMINATE conv_heavy r1c0
    (post-pool, no groups), 4 WAIT; then (`finish`) its outcome and the end of training."""
    run = SyntheticRun(run_dir, episode_length=6, slots=POOL_SLOTS)
    run.start_episode(0, 0)
    run.decide(0, 1, OP.GERMINATE, slot="r0c1", blueprint="channel_ladder")
    run.decide(0, 2, OP.GROW_INTERNAL, slot="r0c1")
    run.decide(0, 3, OP.GERMINATE, slot="r1c0", blueprint="conv_heavy")
    run.decide(0, 4, OP.WAIT)
    if finish:
        run.outcome(0, 90.0, 200)
        run.finish(baseline_accuracy=85.0)
    return run


# (seed id, slot, blueprint, top epoch or None, pruned epoch) of overshoot_run's seeds, all pruned; the overshoot
# prunes among them (pruned within OVERSHOOT_WINDOW = 5 epochs of first reaching level 4 of 4) are marked True.
OVERSHOOT_SEEDS = (
    ("env0-seed1", "r0c1", "channel_ladder", 4, 7, True),  # pruned 3 epochs after reaching the top
    ("env0-seed2", "r0c0", "conv_ladder", 9, 17, False),  # 8 epochs after
    ("env0-seed3", "r1c0", "conv_ladder", None, 12, False),  # never at the top (level 2 of 4)
    ("env0-seed4", "r0c2", "conv_ladder", 16, 21, True),  # exactly 5 epochs after: within the window
)


def overshoot_run(run_dir: Path) -> Path:
    """A CNN run on POOL_SLOTS, one env, one episode of 22 epochs, its four ladders all pruned (OVERSHOOT_SEEDS):

    e1 GERMINATE channel_ladder r0c1, e2-e4 GROW r0c1 (level 4 of 4 at e4), e5 GERMINATE conv_ladder r0c0, e6 GROW
    r0c0, e7 PRUNE r0c1 (3 epochs after its top: an overshoot prune), e8-e9 GROW r0c0 (top at e9), e10 GERMINATE
    conv_ladder r1c0, e11 GROW r1c0 (level 2), e12 PRUNE r1c0 (never at the top), e13 GERMINATE conv_ladder r0c2,
    e14-e16 GROW r0c2 (top at e16), e17 PRUNE r0c0 (8 epochs after its top: not one), e21 PRUNE r0c2 (5 after: one);
    every other epoch WAITs. Two overshoot prunes in one finished episode."""
    run = SyntheticRun(run_dir, episode_length=22, slots=POOL_SLOTS)
    run.start_episode(0, 0)
    script: dict[int, tuple[LifecycleOp, str, str]] = {  # epoch -> op, slot, blueprint (GERMINATE only)
        1: (OP.GERMINATE, "r0c1", "channel_ladder"),
        2: (OP.GROW_INTERNAL, "r0c1", ""),
        3: (OP.GROW_INTERNAL, "r0c1", ""),
        4: (OP.GROW_INTERNAL, "r0c1", ""),
        5: (OP.GERMINATE, "r0c0", "conv_ladder"),
        6: (OP.GROW_INTERNAL, "r0c0", ""),
        7: (OP.PRUNE, "r0c1", ""),
        8: (OP.GROW_INTERNAL, "r0c0", ""),
        9: (OP.GROW_INTERNAL, "r0c0", ""),
        10: (OP.GERMINATE, "r1c0", "conv_ladder"),
        11: (OP.GROW_INTERNAL, "r1c0", ""),
        12: (OP.PRUNE, "r1c0", ""),
        13: (OP.GERMINATE, "r0c2", "conv_ladder"),
        14: (OP.GROW_INTERNAL, "r0c2", ""),
        15: (OP.GROW_INTERNAL, "r0c2", ""),
        16: (OP.GROW_INTERNAL, "r0c2", ""),
        17: (OP.PRUNE, "r0c0", ""),
        21: (OP.PRUNE, "r0c2", ""),
    }
    for epoch in range(1, run.episode_length + 1):
        if epoch in script:
            op, slot, blueprint = script[epoch]
            run.decide(0, epoch, op, slot=slot, blueprint=blueprint)
        else:
            run.decide(0, epoch, OP.WAIT)
    run.outcome(0, 90.0, 100)
    run.finish(baseline_accuracy=85.0)
    return run_dir
