"""The compile path: compiled host ops, head and seeds train like eager ones through a seed's lifecycle, and the
number of graphs stays bounded (and does not grow with epochs of an unchanged structure).

Backends: aot_eager (dynamo + AOT autograd, as inductor gets them, without codegen) for numerics, eager for the
graph counts (dynamo's guards decide them, whatever the backend); both keep this file fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from esper.kasmina import (
    CompileCounters,
    MorphogeneticModel,
    compile_model,
    compile_targets,
    cross_entropy,
    is_compiled,
)
from esper.leyline import BlueprintAction, LifecycleOp, SeedStage

S = SeedStage
BP = BlueprintAction
SEEDS = {"r0c0": BP.CONV_LADDER, "r1c0": BP.DEPTHWISE, "r0c1": BP.CONV_LIGHT}
# aot_eager runs the same aten ops as eager, but AOT autograd may regroup them (batch norm's decomposition,
# backward sums): float32 agreement to a few ulps of the values involved.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
# Graphs a module kind (class and parameter shapes) may need (compiled.py): one per guard state it runs in, times
# two for the batch size (static, then symbolic). Host op or head: train step, incubation path (detached
# parameters), no-grad validation. Seed, per ladder level: train step with its input detached, or not (fossilized),
# incubation path, validation.
BATCH_SIZES = 2
HOST_MODES = 3
SEED_MODES = 4


def germinate_all(rig: Any) -> None:
    for slot_id, blueprint in SEEDS.items():
        rig.germinate(slot_id, blueprint)


def twins(make_rig: Callable[..., Any]) -> tuple[Any, Any]:
    """Two identical rigs with the same seeds; the second one compiled (aot_eager)."""
    eager, compiled = make_rig(), make_rig()
    germinate_all(eager)
    germinate_all(compiled)
    compiled.model.load_state_dict(eager.model.state_dict())
    compile_model(compiled.model, backend="aot_eager")
    return eager, compiled


def sgd(model: MorphogeneticModel) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def epoch(rig: Any, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """A real epoch of one batch (a training step with the seeds' gradient statistics, a fused validation recorded
    into the slots, the tick): the logits of both paths, stacked, the gradients applied and the validation loss."""
    rig.model.train()
    optimizer.zero_grad(set_to_none=True)
    out = rig.model(rig.x, incubate=True)
    out.losses(cross_entropy, rig.y)[1].backward()
    rig.model.record_gradients()
    grads = {name: p.grad.clone() for name, p in rig.model.named_parameters() if p.grad is not None}
    optimizer.step()
    rig.model.eval()
    validation = rig.model.fused_validation(rig.x, rig.y)
    rig.model.record_validation(validation)
    rig.model.step_epoch()
    paths = [out.logits] if out.incubation_logits is None else [out.logits, out.incubation_logits]
    return torch.cat(paths).detach(), grads, validation.loss


def assert_epochs_match(eager: Any, compiled: Any, optimizers: tuple[torch.optim.Optimizer, ...]) -> None:
    """An epoch on both twins: logits, gradients and validation loss agree."""
    eager_logits, eager_grads, eager_loss = epoch(eager, optimizers[0])
    logits, grads, loss = epoch(compiled, optimizers[1])
    torch.testing.assert_close(logits, eager_logits, **TOLERANCE)
    assert grads.keys() == eager_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")
    assert abs(loss - eager_loss) < 1e-4


def both(eager: Any, compiled: Any, action: Callable[[Any], object]) -> None:
    """The same lifecycle step on both twins; they stay in the same stages."""
    action(eager)
    action(compiled)
    assert [s.stage for s in compiled.model.iter_slots()] == [s.stage for s in eager.model.iter_slots()]


def advance(rig: Any) -> None:
    for slot_id in SEEDS:
        assert rig.model.slot(slot_id).advance().passed


def grow(rig: Any) -> None:
    assert rig.model.slot("r0c0").change_internal_level(LifecycleOp.GROW_INTERNAL)


def test_compile_model_compiles_each_module_once(make_rig: Callable[..., Any]) -> None:
    rig = make_rig()
    host_modules = len(rig.model.host.ops) + 1
    assert compile_model(rig.model, backend="eager") == host_modules
    rig.germinate("r0c0")
    assert compile_model(rig.model, backend="eager") == 1  # only the new seed
    assert compile_model(rig.model, backend="eager") == 0
    assert all(is_compiled(m) for m in compile_targets(rig.model).values())
    assert set(compile_targets(rig.model)) <= {name for name, _ in rig.model.named_modules()}


def test_compiled_training_matches_eager_through_the_lifecycle(make_rig: Callable[..., Any]) -> None:
    """Incubation (call_frozen through compiled ops), blending, a ladder level grown, and fossilized seeds: the
    compiled twin computes what the eager one does, epoch by epoch, takes the same gates and ends with the same
    parameters."""
    eager, compiled = twins(make_rig)
    optimizers = (sgd(eager.model), sgd(compiled.model))

    def epochs(count: int) -> None:
        for _ in range(count):
            assert_epochs_match(eager, compiled, optimizers)

    both(eager, compiled, advance)  # TRAINING
    epochs(1)
    both(eager, compiled, advance)  # BLENDING
    epochs(1)
    both(eager, compiled, grow)
    epochs(2)  # alpha reaches 1 (tempo 3)
    both(eager, compiled, advance)  # HOLDING
    both(eager, compiled, lambda rig: [rig.model.slot(s).fossilize() for s in SEEDS])
    assert all(slot.stage is S.FOSSILIZED for slot in compiled.model.iter_slots())
    epochs(1)
    for name, value in compiled.model.state_dict().items():
        torch.testing.assert_close(value, eager.model.state_dict()[name], **TOLERANCE)


def test_graphs_stay_bounded_through_the_lifecycle_and_are_reused(make_rig: Callable[..., Any]) -> None:
    """Each lifecycle step compiles at most the graphs its new guard states need, epochs of an unchanged structure
    compile none, a ladder level visited before is found again, and in all at most the bound of each module kind.
    Graphs belong to module kinds, not to modules: the same lifecycle in a new model compiles nothing."""
    torch._dynamo.reset()  # as in a new process: no graphs, and no sizes seen, from earlier tests
    rig = make_rig()
    before = CompileCounters.read()
    levels = lifecycle(rig)
    counted = CompileCounters.read() - before
    assert counted.graphs == counted.dynamo_graphs  # every graph dynamo compiled went through compile_model's backend
    assert 0 < counted.graphs <= graph_bound(rig.model, ladder_levels=levels)
    assert 0 < counted.recompiles < counted.graphs
    before = CompileCounters.read()
    lifecycle(make_rig())
    assert CompileCounters.read() - before == CompileCounters(graphs=0, recompiles=0, dynamo_graphs=0)


def lifecycle(rig: Any) -> int:
    """Germinate, incubate, blend, grow / shrink / grow a ladder, fossilize, each followed by epochs that must
    settle (assert_settled); returns the number of ladder levels visited."""
    compile_model(rig.model, backend="eager")
    germinate_all(rig)
    compile_model(rig.model, backend="eager")
    advance(rig)  # TRAINING: incubation
    assert_settled(rig)
    rig.model.step_epoch()
    advance(rig)  # BLENDING
    assert_settled(rig)
    ladder = rig.model.slot("r0c0")
    levels = {ladder.microstructure().internal_level}
    for op in (LifecycleOp.GROW_INTERNAL, LifecycleOp.SHRINK_INTERNAL, LifecycleOp.GROW_INTERNAL):
        assert ladder.change_internal_level(op)
        revisit = ladder.microstructure().internal_level in levels
        levels.add(ladder.microstructure().internal_level)
        assert_settled(rig, new_graphs_at_most=0 if revisit else BATCH_SIZES * SEED_MODES)
    for slot_id in SEEDS:
        rig.drive(slot_id, S.FOSSILIZED)
    assert_settled(rig)
    return len(levels)


def assert_settled(rig: Any, new_graphs_at_most: int | None = None) -> None:
    """Two epochs compile what this structure needs (at most `new_graphs_at_most`, if given: the first one meets
    the structure, the second the alpha its tick set, which decides the contributing seeds); a third compiles
    nothing."""
    before = CompileCounters.read()
    rig.epoch()
    rig.epoch()
    if new_graphs_at_most is not None:
        assert (CompileCounters.read() - before).graphs <= new_graphs_at_most
    settled = CompileCounters.read()
    rig.epoch()
    assert CompileCounters.read() - settled == CompileCounters(graphs=0, recompiles=0, dynamo_graphs=0)


def kind(module: torch.nn.Module) -> tuple[type, tuple[tuple[int, ...], ...]]:
    """What decides a module's graphs besides its modes: its class and its parameters' shapes."""
    return type(module), tuple(tuple(p.shape) for p in module.parameters())


def graph_bound(model: MorphogeneticModel, ladder_levels: int) -> int:
    """BATCH_SIZES x the modes of each module kind in the model, a ladder counted once per level it visited."""
    targets = compile_targets(model)
    host = {kind(m) for name, m in targets.items() if name.startswith("host.")}
    seeds = {kind(m) for name, m in targets.items() if name.startswith("slots.")}
    return BATCH_SIZES * (HOST_MODES * len(host) + SEED_MODES * (len(seeds) - 1 + ladder_levels))
