"""One morphogenetic training run, stepped one host epoch at a time.

`step(action)`: apply the action (one that leyline's structural rule set refuses is an invalid action, one that a
seed gate refuses on a measurement is a gate refusal; both are reported with a reason, never raised), train one
epoch (host optimizer plus one optimizer per seed), run the fused validation (each blending/holding seed's
counterfactual contribution), record it into the seeds, let the governor check the loss (and roll back if it
must), tick every slot, and return the training signals and the seed reports Tamiyo sees next."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.sgd import sgd as sgd_update

from esper.kasmina import (
    LOCAL,
    MEASURED_CHECKS,
    MorphogeneticModel,
    QualityGates,
    TrainingForward,
    ValidationResult,
    can_stack,
    cohort_forward,
    cohort_validation,
    compile_model,
    cross_entropy,
    evaluate,
    fossils,
    grown_from,
    save_grown_model,
)
from esper.kasmina import data_parallel as kasmina_data_parallel
from esper.kasmina.contracts import GrownModelRecord
from esper.leyline import (
    ALPHA_CURVE_SHAPES,
    ALPHA_SPEED_STEPS,
    ALPHA_TARGET_VALUES,
    FAILURE_STAGES,
    LIVE_STAGES,
    STYLE_BLEND,
    TEMPO_EPOCHS,
    TOPOLOGY_BLUEPRINTS,
    BlueprintAction,
    EnvEmitter,
    EpisodeOutcome,
    EpochCompletedPayload,
    FactoredAction,
    GateResult,
    GovernorRollbackPayload,
    LifecycleOp,
    PruneInitiator,
    RewardComponents,
    SeedStage,
    SeedStateReport,
    Severity,
    Topology,
    TrainingMetrics,
    TrainingSignals,
    refusal,
    slot_config,
)
from esper.leyline import slot_ids as slot_ids_of
from esper.tolaria.data import TensorData
from esper.tolaria.governor import Governor
from esper.tolaria.system import read_system_metrics
from esper.tolaria.tasks import TaskSpec

OP = LifecycleOp
HISTORY = 5
PLATEAU_DELTA = 0.5  # accuracy points: smaller epoch-on-epoch gains count toward a plateau
STABLE_RELATIVE_GAIN = 0.05  # host stabilised once 3 epochs improved the best val loss by less than 5 %
STABLE_EPOCHS = 3
SNAPSHOT_EVERY = 5
GRADIENT_STRIDE = 4  # gradient statistics every 4th batch (and the first)


@dataclass(frozen=True, slots=True)
class ActionResult:
    success: bool
    reason: str | None  # why it failed; None on success
    gate_refused: bool = False  # structurally valid, refused by a seed gate on a measurement


@dataclass(frozen=True, slots=True)
class StepResult:
    signals: TrainingSignals
    reports: tuple[SeedStateReport, ...]
    action: ActionResult
    validation: ValidationResult
    rolled_back: bool


class Environment:
    def __init__(
        self,
        task: TaskSpec,
        data: TensorData,
        slot_ids: tuple[str, ...],
        emitter: EnvEmitter,
        seed: int,
        device: torch.device,
        gates: QualityGates | None = None,
        embargo_epochs: int = 5,
        data_parallel: bool = False,
        max_seeds: int | None = None,
        compile_backend: str | None = None,
    ) -> None:
        """`data_parallel`: this process is one rank of a torch.distributed group that trains this same environment
        (launched by torchrun). Each rank trains on its shard of every batch through DistributedDataParallel, and
        every action, gate verdict, internal-level change and governor verdict is decided on rank 0 and broadcast,
        so all ranks hold the same topology and weights (the DDP symmetry invariant). `compile_backend`: run the
        host's ops and head and every seed through torch.compile with this backend (esper.kasmina.compiled; None:
        eager); a compiled environment trains alone, not stacked with others."""
        self.task = task
        self.data = data.to(device)
        # The slot head's index i is slot_ids[i]: it must be the host's action order, which the masks and the
        # observation (built from the same SlotConfig) use too.
        in_order = slot_ids_of(slot_config(task.build_host().injection_specs(), slot_ids))
        if tuple(slot_ids) != in_order:
            raise ValueError(f"slot_ids {list(slot_ids)} are not in the host's action order: {list(in_order)}")
        self.slot_ids = slot_ids
        self.emitter = emitter
        self.seed = seed
        self.device = device
        self.gates = gates if gates is not None else QualityGates()
        self.limits = self.gates.limits(max_seeds)  # the structural rule set's limits, as the masks apply them
        self.embargo_epochs = embargo_epochs
        self.compile_backend = compile_backend
        self.symmetry = kasmina_data_parallel() if data_parallel else LOCAL
        self.world_size = dist.get_world_size() if data_parallel else 1
        self.rank = dist.get_rank() if data_parallel else 0
        self._ddp: DistributedDataParallel | None = None
        self._ddp_params: tuple[int, ...] = ()
        self.episode = -1
        self._handlers: Mapping[LifecycleOp, Callable[[FactoredAction], ActionResult]] = MappingProxyType(
            {
                OP.WAIT: lambda a: ActionResult(True, None),
                OP.GERMINATE: self._germinate,
                OP.SET_ALPHA_TARGET: self._set_alpha_target,
                OP.PRUNE: self._prune,
                OP.FOSSILIZE: self._fossilize,
                OP.ADVANCE: self._advance,
                OP.GROW_INTERNAL: self._internal,
                OP.SHRINK_INTERNAL: self._internal,
            }
        )

    @property
    def handlers(self) -> Mapping[LifecycleOp, Callable[[FactoredAction], ActionResult]]:
        return self._handlers

    # ------------------------------------------------------------------ episode
    def reset(self, episode: int) -> tuple[TrainingSignals, tuple[SeedStateReport, ...]]:
        """A fresh host (seeded by run seed and episode) with empty slots."""
        self.episode = episode
        self.emitter.start_episode(episode)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed * 100_003 + episode)
        # The environment's own torch random stream (host and seed initialisation, dropout): an environment gives the
        # same run whatever else shares the process, alone or in a cohort (`step_together`).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + episode)
            host = self.task.build_host()
            self._rng_state = torch.get_rng_state()
        self.model = MorphogeneticModel(
            host,
            self.slot_ids,
            self.emitter,
            gates=self.gates,
            embargo_epochs=self.embargo_epochs,
            symmetry=self.symmetry,
            seed_width=self.task.config.seed_width,
        ).to(self.device)
        self._ddp, self._ddp_params = None, ()
        self._compile_new_modules()
        self.host_params = self.model.host_param_count()
        self.governor = Governor(self.task.config.baseline_loss)
        self._new_host_optimizer()
        self.seed_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._seed_param_ids: dict[str, tuple[int, ...]] = {}
        self._seed_counter = 0
        self._order = torch.randperm(len(self.data.train_x), generator=self.generator)
        self._cursor = 0
        self.epoch = 0
        self.global_step = 0
        self.counters = {"internal_level_changes": 0, "invalid_actions": 0, "gate_refusals": 0, "governor_rollbacks": 0}
        self._seen: dict[str, set[str]] = {"germinated": set(), "fossilized": set(), "pruned": set()}
        self.model.eval()
        first = self._validate()
        self.governor.snapshot(self.model, 0)
        self._losses = [first.loss]
        self._accuracies = [first.accuracy]
        self._plateau = 0
        self._stabilized = False
        self._last_op, self._last_success = OP.WAIT, True
        self._train_loss, self._train_accuracy = first.loss, first.accuracy
        return self._signals(first), self.model.reports()

    def _compile_new_modules(self) -> None:
        """Under `compile_backend`, compile what is not compiled yet (the host at reset, a seed once germinated)."""
        if self.compile_backend is not None:
            compile_model(self.model, self.compile_backend)

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        # foreach: one multi-tensor update instead of a Python loop over tensors (torch picks it only on CUDA).
        lr = self.task.config.learning_rate
        if self.task.config.topology is Topology.CNN:
            return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4, foreach=True)
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01, foreach=True)

    def _new_host_optimizer(self) -> None:
        self.host_optimizer = self._optimizer(self.model.host_parameters())

    def _sync_seed_optimizers(self) -> None:
        """One optimizer per seed; rebuilt when a seed's parameter set changes (a gate added), dropped with it."""
        for slot in self.model.iter_slots():
            params = self.model.seed_parameters(slot.slot_id)
            ids = tuple(id(p) for p in params)
            if not params:
                self.seed_optimizers.pop(slot.slot_id, None)
                self._seed_param_ids.pop(slot.slot_id, None)
            elif slot.slot_id not in self._seed_param_ids or self._seed_param_ids[slot.slot_id] != ids:
                self.seed_optimizers[slot.slot_id] = self._optimizer(params)
                self._seed_param_ids[slot.slot_id] = ids

    # ------------------------------------------------------------------ actions
    def apply(self, action: FactoredAction) -> ActionResult:
        reason = self.refusal(action)
        result = ActionResult(False, reason) if reason is not None else self._handlers[action.op](action)
        if not result.success:
            self.counters["gate_refusals" if result.gate_refused else "invalid_actions"] += 1
        self._last_op, self._last_success = action.op, result.success
        return result

    def refusal(self, action: FactoredAction) -> str | None:
        """Why the action is structurally impossible here (the masks' rule set), or None."""
        if action.op is OP.WAIT:
            return None
        if not 0 <= action.slot < len(self.slot_ids):
            return f"slot index {action.slot} is outside 0..{len(self.slot_ids) - 1}"
        topology = self.task.config.topology
        if action.op is OP.GERMINATE and (
            action.blueprint not in TOPOLOGY_BLUEPRINTS[topology] or action.blueprint is BlueprintAction.NOOP
        ):
            return f"blueprint {action.blueprint.name.lower()} cannot be germinated on {topology.value}"
        reports = self.model.reports()
        by_slot = {r.slot_id: r for r in reports}
        slot_id = self._slot_id(action)
        return refusal(action.op, by_slot[slot_id] if slot_id in by_slot else None, reports, self.limits)

    def _slot_id(self, action: FactoredAction) -> str:
        return self.slot_ids[action.slot]

    def _germinate(self, action: FactoredAction) -> ActionResult:
        self._seed_counter += 1
        seed_id = f"env{self.emitter.env_id}-ep{self.episode}-seed{self._seed_counter}"
        slot = self.model.slot(self._slot_id(action))
        slot.germinate(
            action.blueprint,
            seed_id,
            action.style,
            TEMPO_EPOCHS[action.tempo],
            ALPHA_TARGET_VALUES[action.alpha_target],
            self.host_params,
        )
        return ActionResult(True, None)

    def _set_alpha_target(self, action: FactoredAction) -> ActionResult:
        curve, steepness = ALPHA_CURVE_SHAPES[action.alpha_curve]
        _, algorithm = STYLE_BLEND[action.style]
        self.model.slot(self._slot_id(action)).set_alpha_target(
            ALPHA_TARGET_VALUES[action.alpha_target], ALPHA_SPEED_STEPS[action.alpha_speed], curve, steepness, algorithm
        )
        return ActionResult(True, None)

    def _prune(self, action: FactoredAction) -> ActionResult:
        curve, steepness = ALPHA_CURVE_SHAPES[action.alpha_curve]
        slot = self.model.slot(self._slot_id(action))
        slot.prune(ALPHA_SPEED_STEPS[action.alpha_speed], curve, steepness, PruneInitiator.POLICY, "policy")
        return ActionResult(True, None)

    def _fossilize(self, action: FactoredAction) -> ActionResult:
        result = self.model.slot(self._slot_id(action)).fossilize()
        if not result.passed:
            return _gate_refusal(result)
        self.governor.snapshot(self.model, self.epoch)  # a fossil is part of the host: keep it on rollback
        return ActionResult(True, None)

    def _advance(self, action: FactoredAction) -> ActionResult:
        result = self.model.slot(self._slot_id(action)).advance()
        return ActionResult(True, None) if result.passed else _gate_refusal(result)

    def _internal(self, action: FactoredAction) -> ActionResult:
        changed = self.model.slot(self._slot_id(action)).change_internal_level(action.op)
        assert changed, "the rule set refuses an internal op at its bound"
        self.counters["internal_level_changes"] += 1
        return ActionResult(True, None)

    # ------------------------------------------------------------------ the epoch
    def step(self, action: FactoredAction) -> StepResult:
        """One epoch of this environment alone (`step_together` steps several at once)."""
        (result,) = step_together([self], [action])
        return result

    @contextmanager
    def own_random_stream(self) -> Iterator[None]:
        """Run the block on this environment's torch random stream, leaving the process's as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            yield
            self._rng_state = torch.get_rng_state()

    def _begin_epoch(self, action: FactoredAction) -> ActionResult:
        """The epoch up to training: the action (decided on rank 0), the seed optimizers it calls for."""
        self.epoch += 1
        self.emitter.set_epoch(self.epoch)
        with self.own_random_stream():
            result = self.apply(self.symmetry.decide(action))
        self._compile_new_modules()
        self._tally()
        self._sync_seed_optimizers()
        self.model.train()
        self._batch_losses: list[float] = []
        self._train_correct, self._train_samples = 0.0, 0
        return result

    def _finish_epoch(self, result: ActionResult, seconds: float, validation: ValidationResult | None) -> StepResult:
        """The epoch after training: validation (unless `step_together` validated this model with others), the
        governor, the slots' tick, EPOCH_COMPLETED. `seconds`: this environment's share of the epoch's wall time so
        far."""
        started = time.perf_counter()
        if validation is None:
            validation = self._validate()
        self.model.record_validation(validation)
        verdict = self.symmetry.decide(self.governor.check(validation.loss))
        rolled_back = verdict is not None
        if verdict is not None:
            pruned = [s.slot_id for s in self.model.iter_slots() if s.stage in LIVE_STAGES]
            for slot_id in pruned:
                self.model.slot(slot_id).prune(
                    initiator=PruneInitiator.GOVERNOR, reason=f"governor: {verdict.reason.value}"
                )
            self.governor.restore(self.model)
            self._new_host_optimizer()
            self.seed_optimizers.clear()
            self._seed_param_ids.clear()
            self.counters["governor_rollbacks"] += 1
            self.emitter.emit(
                GovernorRollbackPayload(
                    reason=verdict.reason,
                    loss=verdict.loss,
                    threshold=verdict.threshold,
                    restored_epoch=self.governor.snapshot_epoch,
                    pruned_slots=tuple(pruned),
                ),
                severity=Severity.CRITICAL,
            )
            validation = self._validate()
        elif self.epoch % SNAPSHOT_EVERY == 0:
            self.governor.snapshot(self.model, self.epoch)
        self._tally()
        self.model.step_epoch()
        self._tally()
        self._update_history(validation)
        self.emitter.emit(
            EpochCompletedPayload(
                train_loss=self._train_loss if math.isfinite(self._train_loss) else None,
                train_accuracy=self._train_accuracy,
                val_loss=validation.loss,
                val_accuracy=validation.accuracy,
                host_params=self.host_params,
                seed_params=self.model.seed_param_count(),
                live_seeds=self.model.count(*LIVE_STAGES),
                fossilized_seeds=self.model.count(SeedStage.FOSSILIZED),
                epoch_seconds=seconds + time.perf_counter() - started,
                governor_rollback=rolled_back,
                seeds=self.model.epoch_records(),
                system=read_system_metrics(self.device),
            )
        )
        return StepResult(self._signals(validation), self.model.reports(), result, validation, rolled_back)

    def _validate(self) -> ValidationResult:
        """The model on the validation set, each contribution on the task's counterfactual subset."""
        data = self.data
        return self.model.fused_validation(
            data.val_x, data.val_y, counterfactual_samples=self.task.counterfactual_samples
        )

    def _tally(self) -> None:
        """Count seeds by id as they pass through germination, fossilization and pruning."""
        for slot in self.model.iter_slots():
            if slot.state is None:
                continue
            seed_id = slot.state.seed_id
            self._seen["germinated"].add(seed_id)
            if slot.stage is SeedStage.FOSSILIZED:
                self._seen["fossilized"].add(seed_id)
            elif slot.stage in FAILURE_STAGES:
                self._seen["pruned"].add(seed_id)

    def tally(self) -> dict[str, int]:
        """Seeds germinated, fossilized and pruned this episode, plus the action and governor counters."""
        return {**{name: len(ids) for name, ids in self._seen.items()}, **self.counters}

    def outcome(self, reward_components: RewardComponents | None) -> EpisodeOutcome:
        """The episode so far as an EpisodeOutcome (reward fields null for policies without a reward)."""
        tally, added = self.tally(), self.model.seed_param_count()
        return EpisodeOutcome(
            final_accuracy=self._accuracies[-1],
            best_accuracy=max(self._accuracies),
            episode_length=self.epoch,
            episode_reward=None if reward_components is None else reward_components.total,
            reward_components=reward_components,
            host_params=self.host_params,
            added_params=added,
            param_ratio=added / self.host_params,
            germinated=tally["germinated"],
            fossilized=tally["fossilized"],
            pruned=tally["pruned"],
            internal_level_changes=tally["internal_level_changes"],
            invalid_actions=tally["invalid_actions"],
            gate_refusals=tally["gate_refusals"],
            governor_rollbacks=tally["governor_rollbacks"],
        )

    def save_grown_model(self, directory: Path) -> GrownModelRecord:
        """The host and its fossils now (the end of an episode) into `directory` (kasmina.grown), measured on the
        validation set as the grown model itself: live seeds are left out, so this can differ from the episode's
        last validation when a seed was still blending."""
        fossilized, live = fossils(self.model)
        config = self.task.config
        record = GrownModelRecord(
            task=self.task.name,
            topology=config.topology,
            cnn_host=config.cnn_host,
            transformer_host=config.transformer_host,
            slot_ids=self.model.slot_order,
            seed_width=config.seed_width,
            seeds=fossilized,
            live_seeds_left_out=live,
            run_id=self.emitter.run_id,
            env_id=self.emitter.env_id,
            episode=self.episode,
            epoch=self.epoch,
            val_loss=0.0,
            val_accuracy=0.0,
        )
        # the record's measurements are filled in once the grown model built from it has been measured
        grown = grown_from(self.model, record).to(self.device)
        loss, accuracy = evaluate(grown, self.data.val_x, self.data.val_y)
        grown.record = record = dataclasses.replace(record, val_loss=loss, val_accuracy=accuracy)
        save_grown_model(grown, directory)
        return record

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.task.config.batch_size
        if self._cursor + size > len(self._order):
            self._order = torch.randperm(len(self.data.train_x), generator=self.generator)
            self._cursor = 0
        index = self._order[self._cursor : self._cursor + size].to(self.device)
        self._cursor += size
        return self.data.train_x[index], self.data.train_y[index]

    def _trainer(self) -> nn.Module:
        """The module a training step calls: the model itself, or (data-parallel) its DistributedDataParallel
        wrapper, rebuilt whenever the set of trainable parameters changes (a seed germinated, pruned or frozen, a
        ladder level grown or shrunk). Parameters a stage leaves out of the forward are found by DDP's
        unused-parameter detection; buffers (batch-norm statistics) are synchronised from rank 0 at every forward
        and after every epoch."""
        if self.world_size == 1:
            return self.model
        trainable = tuple(id(p) for p in self.model.parameters() if p.requires_grad)
        if self._ddp is None or trainable != self._ddp_params:
            self._ddp = DistributedDataParallel(self.model, find_unused_parameters=True, forward_sync_buffers=True)
            self._ddp_params = trainable
        return self._ddp

    def _shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a batch every rank drew identically (same generator): rows rank, rank + W, ..."""
        if self.world_size == 1:
            return x, y
        return x[self.rank :: self.world_size], y[self.rank :: self.world_size]

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank: ranks must leave the batch loop together (DDP collectives)."""
        finite = bool(torch.isfinite(loss))
        if self.world_size == 1:
            return finite
        flag = torch.tensor([0.0 if finite else 1.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() == 0.0

    def _forward(self, x: torch.Tensor) -> TrainingForward:
        """This environment's training forward alone (through DistributedDataParallel when data-parallel)."""
        out = self._trainer()(x, incubate=True)
        assert isinstance(out, TrainingForward)
        return out

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.host_optimizer, *self.seed_optimizers.values()]

    def _after_backward(self, out: TrainingForward, loss: torch.Tensor, y: torch.Tensor, batch: int) -> None:
        """A training batch's gradients are in (its optimizer steps not yet taken): seed gradient statistics and the
        epoch's figures."""
        if batch % GRADIENT_STRIDE == 0:
            self.model.record_gradients()
        self.global_step += 1
        self._batch_losses.append(float(loss.detach()))
        self._train_correct += float((out.logits.argmax(-1) == y).float().sum())
        self._train_samples += y.numel()

    def _close_training(self) -> None:
        """The epoch's training figures (over every rank's shard when data-parallel)."""
        loss_sum, batches = sum(self._batch_losses), len(self._batch_losses)
        correct, seen = self._train_correct, self._train_samples
        if self.world_size > 1:
            # Batch-norm statistics moved with each rank's shard: adopt rank 0's so validation (and the next epoch)
            # sees one model everywhere.
            with torch.no_grad():
                for buffer in self.model.buffers():
                    dist.broadcast(buffer, src=0)
            # Every rank reports the whole batch's figures, not its shard's.
            totals = torch.tensor([loss_sum, float(batches), correct, float(seen)], dtype=torch.float64)
            dist.all_reduce(totals)
            loss_sum, batches, correct, seen = totals[0].item(), int(totals[1]), totals[2].item(), int(totals[3])
        self._train_loss = loss_sum / batches
        self._train_accuracy = 100.0 * correct / max(seen, 1)

    # ------------------------------------------------------------------ signals
    def _update_history(self, validation: ValidationResult) -> None:
        previous_loss, previous_accuracy = self._losses[-1], self._accuracies[-1]
        self._losses.append(validation.loss)
        self._accuracies.append(validation.accuracy)
        gain = validation.accuracy - max(self._accuracies[:-1])
        self._plateau = self._plateau + 1 if gain < PLATEAU_DELTA else 0
        if len(self._losses) > STABLE_EPOCHS + 1:
            best_before = min(self._losses[:-STABLE_EPOCHS])
            recent_best = min(self._losses[-STABLE_EPOCHS:])
            gain = (best_before - recent_best) / max(abs(best_before), 1e-8)
            self._stabilized = self._stabilized or gain < STABLE_RELATIVE_GAIN
        self._accuracy_delta = validation.accuracy - previous_accuracy
        self._loss_delta = validation.loss - previous_loss

    def _signals(self, validation: ValidationResult) -> TrainingSignals:
        loss_delta = self._loss_delta if self.epoch > 0 else 0.0
        accuracy_delta = self._accuracy_delta if self.epoch > 0 else 0.0
        metrics = TrainingMetrics(
            epoch=self.epoch,
            global_step=self.global_step,
            train_loss=self._train_loss if math.isfinite(self._train_loss) else validation.loss,
            val_loss=validation.loss,
            loss_delta=loss_delta,
            train_accuracy=self._train_accuracy,
            val_accuracy=validation.accuracy,
            accuracy_delta=accuracy_delta,
            plateau_epochs=self._plateau,
            host_stabilized=self._stabilized,
            best_val_accuracy=max(self._accuracies),
            best_val_loss=min(self._losses),
        )
        return TrainingSignals(
            metrics=metrics,
            loss_history=tuple(self._losses[-HISTORY:]),
            accuracy_history=tuple(self._accuracies[-HISTORY:]),
            max_epochs=self.task.config.episode_length,
            last_action_op=self._last_op,
            last_action_success=self._last_success,
        )


def step_together(envs: Sequence[Environment], actions: Sequence[FactoredAction]) -> list[StepResult]:
    """One epoch in each environment: each applies its action, the training epochs run together, then each validates,
    lets its governor check and ticks its slots. Hosts of one CNN architecture train as one stacked computation
    (esper.kasmina.cohort), others in turn; each environment's results are those it gets when stepped alone (to
    float rounding where stacked: tests/test_cohort.py states the tolerance)."""
    started = time.perf_counter()
    results = [env._begin_epoch(action) for env, action in zip(envs, actions, strict=True)]
    alone = [env.world_size > 1 or env.compile_backend is not None for env in envs]
    together = not any(alone) and can_stack([env.model for env in envs])
    if together:  # stacked CNN hosts: their training draws no random numbers
        _train_epochs(list(envs))
    else:
        for env in envs:
            with env.own_random_stream():  # dropout
                _train_epochs([env])
    for env in envs:
        env._close_training()
        env.model.eval()
    validations = _validate_together(envs) if together else {}
    share = (time.perf_counter() - started) / len(envs)
    return [
        env._finish_epoch(result, share, validations[i] if i in validations else None)
        for i, (env, result) in enumerate(zip(envs, results, strict=True))
    ]


def _validate_together(envs: Sequence[Environment]) -> dict[int, ValidationResult]:
    """One stacked validation (kasmina.cohort_validation) for the environments, by index, that have no seed whose
    counterfactual is measured and share one validation set; the others validate alone."""
    plain = [
        i
        for i, env in enumerate(envs)
        if env.data.val_x is envs[0].data.val_x
        and env.data.val_y is envs[0].data.val_y
        and not any(slot.counterfactual_eligible() for slot in env.model.iter_slots())
    ]
    if len(plain) < 2:
        return {}
    data = envs[0].data
    results = cohort_validation([envs[i].model for i in plain], data.val_x, data.val_y)
    return dict(zip(plain, results, strict=True))


def _train_epochs(envs: list[Environment]) -> None:
    """One training epoch in every environment, batch by batch, with one backward pass per batch. An environment
    whose loss stops being finite leaves the epoch at that batch without a step, as it would alone (the governor
    sees it at validation)."""
    active = envs
    for batch in range(envs[0].task.config.batches_per_epoch):
        drawn = [env._shard(*env._next_batch()) for env in active]
        if len(active) == 1:
            outs = [active[0]._forward(drawn[0][0])]
        else:
            outs = cohort_forward([env.model for env in active], [x for x, _ in drawn])
        stepping = []
        for env, out, (_, y) in zip(active, outs, drawn, strict=True):
            # Incubating seeds learn from their own path's loss; no term of it reaches the host (kasmina.model).
            loss, total = out.losses(cross_entropy, y)
            if env._all_finite(total):
                stepping.append((env, out, loss, total, y))
            else:
                env._batch_losses.append(float("nan"))
        if not stepping:
            return
        for env, *_ in stepping:
            for optimizer in env._optimizers():
                optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(torch.stack([total for _, _, _, total, _ in stepping]).sum())
        for env, out, loss, _, y in stepping:
            env._after_backward(out, loss, y, batch)
        step_optimizers([optimizer for env, *_ in stepping for optimizer in env._optimizers()])
        active = [env for env, *_ in stepping]


SgdKey = tuple[float, float, float, float, bool, bool]  # lr, momentum, dampening, weight decay, nesterov, maximize


def step_optimizers(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """Step every optimizer. SGD parameter groups that share their hyperparameters take one foreach update together
    (exactly what each one's step() computes, in one multi-tensor call instead of one call per optimizer: a host and
    its seeds, or every environment of a batch); any other optimizer steps by itself."""
    together: dict[SgdKey, list[tuple[torch.optim.Optimizer, torch.Tensor]]] = {}
    for optimizer in optimizers:
        if not isinstance(optimizer, torch.optim.SGD):
            optimizer.step()
            continue
        for group in optimizer.param_groups:
            key: SgdKey = (
                float(group["lr"]),
                float(group["momentum"]),
                float(group["dampening"]),
                float(group["weight_decay"]),
                bool(group["nesterov"]),
                bool(group["maximize"]),
            )
            together.setdefault(key, []).extend((optimizer, p) for p in group["params"] if p.grad is not None)
    for (lr, momentum, dampening, weight_decay, nesterov, maximize), members in together.items():
        params = [p for _, p in members]
        grads = [p.grad for p in params if p.grad is not None]
        states = [optimizer.state[p] for optimizer, p in members]
        buffers = [state["momentum_buffer"] if "momentum_buffer" in state else None for state in states]
        with torch.no_grad():  # fills in the momentum buffers a first step creates
            sgd_update(
                params,
                grads,
                buffers,
                foreach=True,
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
            )
        if momentum != 0:
            for state, buffer in zip(states, buffers, strict=True):
                state["momentum_buffer"] = buffer


def _gate_refusal(result: GateResult) -> ActionResult:
    """A seed gate's refusal of a structurally valid action. Only measured checks may refuse it: a structural check
    failing here means the rule set and the gates disagree, which is a bug, not a policy's mistake."""
    structural = sorted(set(result.checks_failed) - MEASURED_CHECKS)
    if structural:
        raise RuntimeError(f"gate {result.gate.name} failed structural checks {structural} the masks' rules allowed")
    return ActionResult(False, f"gate {result.gate.name}: {result.message}", gate_refused=True)
