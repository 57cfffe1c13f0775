"""MorphogeneticModel: a host plus its seed slots, routed explicitly, with a fused counterfactual validation.

Incubation. A seed in TRAINING does not change the model's output. In a training forward (`incubate=True`) it learns
on a second path, the incubation path: from the first incubating slot on, the detached host features with every
incubating seed blended in at its target amplitude, run through the rest of the network with frozen parameters
(detached, batch-norm statistics untouched). The caller adds that path's loss to the host's: the seeds learn against
the loss they would cause once blended, which bounds their delta, while the host's gradients stay exactly those of
the host alone (no term of the incubation loss reaches a host parameter, or a blending seed's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch
from torch import nn

from esper.kasmina.ddp import LOCAL, RankSymmetry
from esper.kasmina.gates import QualityGates
from esper.kasmina.hosts import HostProtocol
from esper.kasmina.slot import DEFAULT_EMBARGO_EPOCHS, SeedSlot
from esper.leyline import SeedEpoch, SeedStage, SeedStateReport, validate_slot_ids

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, slots=True)
class ValidationResult:
    loss: float
    accuracy: float  # percent
    # slot id -> accuracy with the seed minus accuracy without it (points), on the counterfactual subset
    contributions: dict[str, float]


@dataclass(frozen=True, slots=True)
class TrainingForward:
    """A training forward: the model's logits and, while seeds incubate, the incubation path's logits (a dataclass
    so that DistributedDataParallel finds both tensors)."""

    logits: torch.Tensor
    incubation_logits: torch.Tensor | None

    def losses(self, loss_fn: LossFn, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the model's loss, the loss to backpropagate: the model's plus the incubation path's)."""
        loss = loss_fn(self.logits, targets)
        if self.incubation_logits is None:
            return loss, loss
        return loss, loss + loss_fn(self.incubation_logits, targets)


def call_frozen(module: nn.Module, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """`module(x)` with its parameters detached and its buffers copied: gradients reach `x` only, and running
    statistics (batch norm) stay as they were."""
    state = {name: p.detach() for name, p in module.named_parameters()}
    state |= {name: b.clone() for name, b in module.named_buffers()}
    out: torch.Tensor = torch.func.functional_call(module, state, (x,), kwargs)
    return out


def classification_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of correct argmax predictions (any leading shape: [B, C] or [B, T, V])."""
    return (logits.argmax(dim=-1) == targets).float().mean()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class MorphogeneticModel(nn.Module):
    def __init__(
        self,
        host: nn.Module,
        slot_ids: list[str] | tuple[str, ...],
        emitter: Any,
        gates: QualityGates | None = None,
        embargo_epochs: int = DEFAULT_EMBARGO_EPOCHS,
        symmetry: RankSymmetry = LOCAL,
        seed_width: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(host, HostProtocol):
            raise TypeError(f"{type(host).__name__} does not implement HostProtocol")
        requested = validate_slot_ids(slot_ids)
        specs = {spec.slot_id: spec for spec in host.injection_specs()}
        unknown = [s for s in requested if s not in specs]
        if unknown:
            raise ValueError(f"host has no slot(s) {unknown}; available: {', '.join(specs)}")
        self.host = host
        self._host: HostProtocol = host
        gates = gates if gates is not None else QualityGates()
        # Action order: by the host's injection order (the slot head's indices).
        self.slot_order: tuple[str, ...] = tuple(sorted(requested, key=lambda s: specs[s].order))
        # Execution order: the order the forward pass reaches them.
        self.execution: tuple[str, ...] = tuple(s for s in host.execution_order() if s in requested)
        self._positions = {s: host.position(s) for s in self.execution}
        # The host's structure never changes (a fossil is a seed): count its parameters once.
        self._host_params = sum(p.numel() for p in {id(p): p for p in host.parameters()}.values())
        self.slots = nn.ModuleDict(
            {
                s: SeedSlot(
                    s,
                    specs[s].channels,
                    host.topology,
                    gates,
                    emitter,
                    surface=specs[s].surface,
                    embargo_epochs=embargo_epochs,
                    symmetry=symmetry,
                    seed_width=seed_width,
                )
                for s in self.slot_order
            }
        )

    @property
    def topology(self) -> Any:
        return self._host.topology

    def slot(self, slot_id: str) -> SeedSlot:
        if slot_id not in self.slots:
            raise KeyError(f"no slot {slot_id!r}; slots: {', '.join(self.slot_order)}")
        slot = self.slots[slot_id]
        assert isinstance(slot, SeedSlot)
        return slot

    def iter_slots(self) -> Iterator[SeedSlot]:
        for slot_id in self.slot_order:
            yield self.slot(slot_id)

    # ------------------------------------------------------------------ forward
    @overload
    def forward(self, inputs: torch.Tensor, incubate: Literal[False] = False) -> torch.Tensor: ...

    @overload
    def forward(self, inputs: torch.Tensor, incubate: Literal[True]) -> TrainingForward: ...

    def forward(self, inputs: torch.Tensor, incubate: bool = False) -> torch.Tensor | TrainingForward:
        """The logits; with `incubate`, a TrainingForward that adds the incubation path (module docstring)."""
        host = self._host
        x, done = host.embed(inputs), 0
        path: torch.Tensor | None = None  # the incubation path, from the first incubating slot on
        for slot_id in self.execution:
            position = self._positions[slot_id]
            x = host.run_ops(x, done, position)
            if path is not None:
                path = self.run_frozen(path, done, position)
            x, path = self.through_slot(slot_id, x, path, incubate)
            done = position
        logits = host.readout(host.run_ops(x, done, host.num_ops))
        if not incubate:
            return logits
        return TrainingForward(logits, None if path is None else self.incubation_logits(path, done))

    def through_slot(
        self, slot_id: str, x: torch.Tensor, path: torch.Tensor | None, incubate: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stream `x` and the incubation path (None before the first incubating slot), both at the slot, through
        it."""
        slot = self.slot(slot_id)
        if slot.seed is None:  # dormant or between seeds: nothing happens here
            return x, path
        if incubate and slot.incubating():
            path = slot.incubate(x.detach() if path is None else path)
        elif path is not None and slot.seed is not None:  # a blending or fossilized seed, as it is
            path = call_frozen(slot, path, measure=False)
        return slot(x), path

    def incubation_logits(self, path: torch.Tensor, since: int) -> torch.Tensor:
        """The incubation path from op `since` (the last slot's position) to the logits, with frozen parameters."""
        return call_frozen(self._host.head, self.run_frozen(path, since, self._host.num_ops))

    def run_frozen(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Host ops [start, stop) with frozen parameters (`call_frozen`): the incubation path's way through."""
        ops = self._host.ops
        for index in range(start, stop):
            x = call_frozen(ops[index], x)
        return x

    @torch.no_grad()
    def fused_validation(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: LossFn = cross_entropy,
        accuracy_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = classification_accuracy,
        counterfactual_samples: int | None = None,
    ) -> ValidationResult:
        """Validate the model as it is and measure each blending or holding seed's contribution: the accuracy with the
        seed minus the accuracy with it switched off, on the first `counterfactual_samples` rows (all when None).

        One pass, in which every configuration computes only what differs: the rows of "seed k off" join the batch
        at seed k's slot, as a copy of the model's own rows there (everything before it is the same), skip seed k,
        and run the rest of the network with every later seed on. A switched-off seed is never computed, and the
        network before the first contributing slot runs once. No autograd graph is built."""
        host = self._host
        batch = inputs.shape[0]
        subset = batch if counterfactual_samples is None else min(counterfactual_samples, batch)
        if subset < 1:
            raise ValueError(f"counterfactual_samples must be >= 1, got {counterfactual_samples}")
        contributing = [s for s in self.execution if self.slot(s).counterfactual_eligible()]
        # Rows [0, batch): the model; then `subset` rows per contributing seed, in execution order.
        x, done = host.embed(inputs), 0
        for slot_id in self.execution:
            position = self._positions[slot_id]
            x = host.run_ops(x, done, position)
            done = position
            joining = x[:subset] if slot_id in contributing else None  # "this seed off": the model's rows, as here
            x = self.slot(slot_id)(x)
            if joining is not None:
                x = torch.cat([x, joining])
        logits = host.readout(host.run_ops(x, done, host.num_ops))
        model = logits[:batch]
        model_on_subset = 100.0 * float(accuracy_fn(model[:subset], targets[:subset]))
        contributions = {}
        for k, slot_id in enumerate(contributing):
            off = logits[batch + k * subset : batch + (k + 1) * subset]
            contributions[slot_id] = model_on_subset - 100.0 * float(accuracy_fn(off, targets[:subset]))
        return ValidationResult(
            loss=float(loss_fn(model, targets)),
            accuracy=100.0 * float(accuracy_fn(model, targets)),
            contributions=contributions,
        )

    # ------------------------------------------------------------------ bookkeeping
    def host_parameters(self) -> list[nn.Parameter]:
        return list(self.host.parameters())

    def seed_parameters(self, slot_id: str) -> list[nn.Parameter]:
        slot = self.slot(slot_id)
        params: list[nn.Parameter] = []
        if slot.seed is not None:
            params += list(slot.seed.parameters())
        if slot.gate is not None:
            params += list(slot.gate.parameters())
        return params

    def host_param_count(self) -> int:
        return self._host_params

    def seed_param_count(self) -> int:
        return sum(slot.seed_param_count() for slot in self.iter_slots())

    def count(self, *stages: SeedStage) -> int:
        return sum(1 for slot in self.iter_slots() if slot.state is not None and slot.stage in stages)

    def reports(self) -> tuple[SeedStateReport, ...]:
        return tuple(r for r in (slot.report() for slot in self.iter_slots()) if r is not None)

    def epoch_records(self) -> tuple[SeedEpoch, ...]:
        return tuple(r for r in (slot.epoch_record() for slot in self.iter_slots()) if r is not None)

    def record_gradients(self) -> None:
        """After backward, before the optimizer step: per-seed gradient statistics against the host's."""
        grads = [p.grad for p in self.host.parameters() if p.grad is not None]
        host_norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))) if grads else 0.0
        host_params = self.host_param_count()
        for slot in self.iter_slots():
            slot.record_gradients(host_norm, host_params)

    def record_validation(self, result: ValidationResult) -> None:
        for slot in self.iter_slots():
            slot.record_validation(result.accuracy, result.contributions.get(slot.slot_id))

    def step_epoch(self) -> None:
        for slot in self.iter_slots():
            slot.step_epoch()
