"""A cohort: the training forward of N MorphogeneticModels whose hosts share one CNN architecture, computed as one
stacked network instead of N in turn (each of N small hosts alone spends its time in per-op overhead, not in
arithmetic).

Layout: the hosts' activations side by side along channels, [B, N * C, H, W] (model i owns channels [i*C, (i+1)*C)).
Each host conv block is one grouped convolution (groups = N) over the concatenated weights and one batch norm over
the concatenated channels (the running statistics it updates are written back to each host's buffers), a pool is one
pool, the head one batched matmul. The concatenations are part of the graph, so autograd gives each model's
parameters exactly their own gradient: every model keeps its own parameters, optimizers, snapshots and rollbacks.
Seeds, incubation paths and slot bookkeeping run per model on its own channels (models differ in what they grow).

The arithmetic is that of each model alone; grouped and plain convolutions sum in different orders, so results agree
to float rounding, not bit for bit (the tolerance is in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from esper.kasmina.hosts import CNNHost, ConvBlock, PooledClassifier
from esper.kasmina.model import (
    LossFn,
    MorphogeneticModel,
    TrainingForward,
    ValidationResult,
    classification_accuracy,
    cross_entropy,
)


def can_stack(models: Sequence[MorphogeneticModel]) -> bool:
    """Whether the models can train as one cohort: more than one, CNN hosts of one configuration with the same slots
    (on one device: torch refuses to concatenate across devices)."""
    if len(models) < 2:
        return False
    first = models[0]
    return all(
        isinstance(m.host, CNNHost)
        and isinstance(first.host, CNNHost)
        and m.host.config == first.host.config
        and m.execution == first.execution
        for m in models
    )


def cohort_forward(models: Sequence[MorphogeneticModel], inputs: Sequence[torch.Tensor]) -> list[TrainingForward]:
    """Each model's training forward (`model(x, incubate=True)`) on its own inputs (equal shapes), as one stacked
    computation. The models must pass `can_stack`."""
    _check_stackable(models)
    hosts = [_cnn_host(m) for m in models]
    logits, paths = _stacked_pass(models, hosts, torch.cat(list(inputs), dim=1), incubate=True)
    order = sorted(paths)
    path_logits = _readout([hosts[i] for i in order], _joined(paths), frozen=True) if paths else []
    incubation = dict(zip(order, path_logits, strict=True))
    return [TrainingForward(own, incubation[i] if i in incubation else None) for i, own in enumerate(logits)]


@torch.no_grad()
def cohort_validation(
    models: Sequence[MorphogeneticModel],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn = cross_entropy,
    accuracy_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = classification_accuracy,
) -> list[ValidationResult]:
    """Each model's validation on the same data as one stacked pass, for models (in eval mode) without a seed whose
    counterfactual is measured: what each one's `fused_validation` returns then (no contributions)."""
    _check_stackable(models)
    if any(slot.counterfactual_eligible() for model in models for slot in model.iter_slots()):
        raise ValueError("a model has a seed to measure a counterfactual of: validate it with fused_validation")
    hosts = [_cnn_host(m) for m in models]
    logits, _ = _stacked_pass(models, hosts, torch.cat([inputs] * len(models), dim=1), incubate=False)
    return [
        ValidationResult(float(loss_fn(own, targets)), 100.0 * float(accuracy_fn(own, targets)), {}) for own in logits
    ]


def _check_stackable(models: Sequence[MorphogeneticModel]) -> None:
    if not can_stack(models):
        raise ValueError("a cohort needs two or more CNN hosts of one configuration with the same slots")


def _stacked_pass(
    models: Sequence[MorphogeneticModel], hosts: Sequence[CNNHost], x: torch.Tensor, incubate: bool
) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """The stacked stream through every host and slot: each model's logits and, with `incubate`, the incubation
    paths (by model index) that reached the end of the ops, still before the head."""
    n, first = len(models), models[0]
    done = 0
    paths: dict[int, torch.Tensor] = {}  # model index -> its incubation path, from its first incubating slot on
    for slot_id in first.execution:
        position = first.host.position(slot_id)
        x = _run_ops(hosts, x, done, position)
        paths = _run_paths(hosts, paths, done, position)
        if paths or any(m.slot(slot_id).seed is not None for m in models):
            parts = list(x.chunk(n, dim=1))
            for i, model in enumerate(models):
                parts[i], path = model.through_slot(slot_id, parts[i], paths[i] if i in paths else None, incubate)
                if path is not None:
                    paths[i] = path
            x = torch.cat(parts, dim=1)
        done = position
    end = len(first.host.ops)
    return _readout(hosts, _run_ops(hosts, x, done, end)), _run_paths(hosts, paths, done, end)


def _joined(paths: dict[int, torch.Tensor]) -> torch.Tensor:
    return torch.cat([paths[i] for i in sorted(paths)], dim=1)


def _run_paths(
    hosts: Sequence[CNNHost], paths: dict[int, torch.Tensor], start: int, stop: int
) -> dict[int, torch.Tensor]:
    """The incubation paths of the models that have one, through ops [start, stop) of their own hosts, frozen (as
    MorphogeneticModel.run_frozen), stacked like the stream."""
    if not paths or start == stop:
        return paths
    order = sorted(paths)
    out = _run_ops([hosts[i] for i in order], _joined(paths), start, stop, frozen=True)
    return dict(zip(order, out.chunk(len(order), dim=1), strict=True))


def _cnn_host(model: MorphogeneticModel) -> CNNHost:
    host = model.host
    assert isinstance(host, CNNHost)
    return host


def _run_ops(hosts: Sequence[CNNHost], x: torch.Tensor, start: int, stop: int, frozen: bool = False) -> torch.Tensor:
    """Ops [start, stop) of every host on its channels. `frozen`: parameters detached and batch-norm statistics left
    as they are (what `call_frozen` does to one module)."""
    for index in range(start, stop):
        ops = [host.ops[index] for host in hosts]
        if isinstance(ops[0], ConvBlock):
            x = _conv_block(ops, x, frozen)
        elif isinstance(ops[0], nn.MaxPool2d):
            x = ops[0](x)  # per channel, no parameters: the same op on every host's channels
        else:
            raise TypeError(f"no stacked form for host op {type(ops[0]).__name__}")
    return x


def _conv_block(blocks: Sequence[nn.Module], x: torch.Tensor, frozen: bool) -> torch.Tensor:
    convs = [b.conv for b in blocks if isinstance(b, ConvBlock)]
    norms = [b.norm for b in blocks if isinstance(b, ConvBlock)]
    weight = _joined_parameters([c.weight for c in convs], frozen)
    x = F.conv2d(x, weight, padding=convs[0].padding, groups=len(convs))
    return torch.relu(_batch_norm(norms, x, frozen))


def _joined_parameters(params: Sequence[torch.Tensor], frozen: bool, stack: bool = False) -> torch.Tensor:
    joined = torch.stack(list(params)) if stack else torch.cat(list(params))
    return joined.detach() if frozen else joined


def _batch_norm(norms: Sequence[nn.BatchNorm2d], x: torch.Tensor, frozen: bool) -> torch.Tensor:
    """BatchNorm2d over the concatenated channels, as each host's norm would compute it on its own channels (`frozen`:
    on a copy of the statistics, which stay as they were)."""
    first = norms[0]
    assert first.running_mean is not None and first.running_var is not None and first.momentum is not None
    mean = torch.cat([_buffer(m.running_mean) for m in norms])
    var = torch.cat([_buffer(m.running_var) for m in norms])
    weight = _joined_parameters([m.weight for m in norms], frozen)
    bias = _joined_parameters([m.bias for m in norms], frozen)
    out = F.batch_norm(x, mean, var, weight, bias, first.training, first.momentum, first.eps)
    if first.training and not frozen:  # F.batch_norm moved the concatenated statistics: hand each host its share
        with torch.no_grad():
            for norm, host_mean, host_var in zip(norms, mean.chunk(len(norms)), var.chunk(len(norms)), strict=True):
                _buffer(norm.running_mean).copy_(host_mean)
                _buffer(norm.running_var).copy_(host_var)
                _buffer(norm.num_batches_tracked).add_(1)
    return out


def _buffer(tensor: torch.Tensor | None) -> torch.Tensor:
    assert tensor is not None, "host batch norms track running statistics"
    return tensor


def _readout(hosts: Sequence[CNNHost], x: torch.Tensor, frozen: bool = False) -> list[torch.Tensor]:
    heads = [host.head for host in hosts if isinstance(host.head, PooledClassifier)]
    assert len(heads) == len(hosts), "CNN hosts end in a PooledClassifier"
    features = x.mean(dim=(2, 3)).reshape(x.shape[0], len(hosts), -1)  # [B, N, C]
    weight = _joined_parameters([h.linear.weight for h in heads], frozen, stack=True)  # [N, classes, C]
    bias = _joined_parameters([h.linear.bias for h in heads], frozen, stack=True)  # [N, classes]
    logits = torch.einsum("bnc,nkc->nbk", features, weight) + bias[:, None, :]
    return list(logits.unbind(0))
