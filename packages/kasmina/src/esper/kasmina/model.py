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
    contributions: dict[str, float]  # slot id -> accuracy with the seed minus accuracy without it (points)
    off_losses: dict[str, float]  # slot id -> loss with that seed switched off


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
                path = self._run_frozen(path, done, position)
            slot = self.slot(slot_id)
            if incubate and slot.incubating():
                path = slot.incubate(x.detach() if path is None else path)
            elif path is not None and slot.seed is not None:  # a blending or fossilized seed, as it is
                path = call_frozen(slot, path, measure=False)
            x = slot(x)
            done = position
        logits = host.readout(host.run_ops(x, done, host.num_ops))
        if not incubate:
            return logits
        if path is None:
            return TrainingForward(logits, None)
        return TrainingForward(logits, call_frozen(host.head, self._run_frozen(path, done, host.num_ops)))

    def _run_frozen(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for op in self._host.ops[start:stop]:
            x = call_frozen(op, x)
        return x

    @torch.no_grad()
    def fused_validation(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: LossFn = cross_entropy,
        accuracy_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = classification_accuracy,
    ) -> ValidationResult:
        """Validate all seeds as they are plus, for each blending or holding seed, the model with that seed
        switched off: K = 1 + contributing seeds configurations in one batched pass. The host prefix before the
        first contributing slot runs once; the batch is replicated K times from there on. No autograd graph is
        built: validation never backpropagates."""
        with torch.no_grad():
            return self._fused_validation(inputs, targets, loss_fn, accuracy_fn)

    def _fused_validation(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: LossFn,
        accuracy_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> ValidationResult:
        host = self._host
        contributing = [s for s in self.execution if self.slot(s).counterfactual_eligible()]
        configs = len(contributing) + 1
        batch = inputs.shape[0]
        x, done, replicated = host.embed(inputs), 0, False
        for slot_id in self.execution:
            position = self._positions[slot_id]
            x = host.run_ops(x, done, position)
            done = position
            slot = self.slot(slot_id)
            if slot_id in contributing:
                if not replicated:
                    x = x.repeat(configs, *([1] * (x.dim() - 1)))
                    replicated = True
                alpha = torch.full(
                    (configs * batch,) + (1,) * (x.dim() - 1), slot.alpha, dtype=x.dtype, device=x.device
                )
                off = 1 + contributing.index(slot_id)
                alpha[off * batch : (off + 1) * batch] = 0.0
                x = slot(x, alpha=alpha)
            else:
                x = slot(x)
        logits = host.readout(host.run_ops(x, done, host.num_ops))
        if not replicated:
            logits = logits.repeat(configs, *([1] * (logits.dim() - 1)))
        losses, accuracies = [], []
        for k in range(configs):
            chunk = logits[k * batch : (k + 1) * batch]
            losses.append(float(loss_fn(chunk, targets)))
            accuracies.append(100.0 * float(accuracy_fn(chunk, targets)))
        return ValidationResult(
            loss=losses[0],
            accuracy=accuracies[0],
            contributions={s: accuracies[0] - accuracies[1 + i] for i, s in enumerate(contributing)},
            off_losses={s: losses[1 + i] for i, s in enumerate(contributing)},
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
        return sum(p.numel() for p in {id(p): p for p in self.host.parameters()}.values())

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
