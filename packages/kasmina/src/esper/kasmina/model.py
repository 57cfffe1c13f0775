"""MorphogeneticModel: a host plus its seed slots, routed explicitly, with a fused counterfactual validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from esper.kasmina.ddp import LOCAL, RankSymmetry
from esper.kasmina.gates import QualityGates
from esper.kasmina.hosts import HostProtocol
from esper.kasmina.slot import DEFAULT_EMBARGO_EPOCHS, SeedSlot
from esper.leyline import SeedStage, SeedStateReport, validate_slot_ids

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, slots=True)
class ValidationResult:
    loss: float
    accuracy: float  # percent
    contributions: dict[str, float]  # slot id -> accuracy with the seed minus accuracy without it (points)
    off_losses: dict[str, float]  # slot id -> loss with that seed switched off


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
                    embargo_epochs=embargo_epochs,
                    symmetry=symmetry,
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
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        host = self._host
        x, done = host.embed(inputs), 0
        for slot_id in self.execution:
            position = self._positions[slot_id]
            x = host.run_ops(x, done, position)
            x = self.slots[slot_id](x)
            done = position
        return host.readout(host.run_ops(x, done, host.num_ops))

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
