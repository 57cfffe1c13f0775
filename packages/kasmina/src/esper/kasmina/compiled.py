"""The compile path: torch.compile for the modules of a MorphogeneticModel, counted.

What is compiled: each host op, the host's head and each seed module, in place (`nn.Module.compile`), one module at
a time. The model's routing and the slots (stages, alpha, blending, incubation bookkeeping) stay eager Python: they
change from epoch to epoch, and a graph around them would be recompiled at every lifecycle step. A seed that
germinates later is compiled by calling `compile_model` again, which compiles only what is not compiled yet.

In place, the modules keep their identity, parameter names and place in the tree, so optimizers, state_dict and
`call_frozen` (torch.func.functional_call) see the same parameters as before. functional_call works on a compiled
module as it is: it swaps detached tensors in and calls the module, whose compiled forward takes them as graph
inputs. They are plain tensors, not Parameters, so an op with parameters on the incubation path compiles one more
graph (guard: "expected Parameter, found Tensor") and reuses it from then on. (A `copy.deepcopy` of a compiled
host or seed is eager: torch leaves the compiled forward out of a module's state.)

Settings, and why the number of graphs stays bounded:
- fullgraph=True: a module's forward is one graph or an error at its first call, never a silent mix of graphs
  and eager code; so one compilation is one graph.
- One backend object per backend name, shared by every module compiled with it. Dynamo keeps graphs per code
  object (a class's `forward`), guarded on what they were traced with (the backend among it), not on the module
  instance: a ConvBlock or a seed of a known blueprint, in this model or the next episode's, runs the graphs
  another instance of its class compiled for the same shapes and modes. So graphs grow with the kinds of module
  (class, shapes, ladder level), not with the number of modules or germinations. (A backend object per module, or
  isolate_recompiles=True, would compile every new module afresh, and after 256 entries on one code object,
  torch._dynamo.config.accumulated_recompile_limit, compiling fails.)
- recompile_limit=RECOMPILE_LIMIT graphs per code object, instead of dynamo's default 8, which a class used at a few
  widths in a few modes exceeds; with fullgraph, going past it is an error rather than a silent fall back to eager.
- dynamic=None (automatic dynamic shapes): a graph is first compiled static; when a dimension comes with a second
  size, the recompiled graph has it symbolic, and no further size recompiles it. The batch does change size: the
  fused validation adds rows at each contributing slot, so the ops after it see more rows than the training batch,
  as many more as there are contributing seeds. dynamic=False would compile one graph per size; dynamic=True would
  make every dimension symbolic from the start. (Dynamo's record of the sizes seen is per code object too: the
  second ConvBlock, whose input is smaller than the first one's, gets its spatial dimensions symbolic at once.)
- A ladder's level is a plain int attribute of the seed; dynamo specialises on it (`blocks[:level]` needs it
  static): one graph per level and mode, compiled once and found again whenever a ladder is at that level.

So a code object has at most one graph per guard state it runs in, times two for the batch size. Host op and head:
train step, incubation path (detached parameters: plain tensors, not Parameters, so a graph of its own), no-grad
validation; for each set of shapes the class has in the host. Seed: train step with its input detached (blending,
incubating) or not (fossilized), incubation path, no-grad validation; for each width it is grown at and each level
of a ladder (and frozen, once a scheduled prune freezes it). Epochs of an unchanged structure compile nothing.

Counting. torch counts the graphs dynamo captures (torch._dynamo.utils.counters["stats"]["unique_graphs"]) but
has no counter of recompilations. The shared backend, a GraphCounter, counts the graphs dynamo hands it and, of
those, the recompilations: dynamo's compile id "f/n" is the n-th compilation of code object f, so n > 0 means a
function that was compiled before was compiled again (a guard failed: another shape, mode or level).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import torch
from torch import nn

from esper.kasmina.hosts import HostProtocol
from esper.kasmina.model import MorphogeneticModel

DEFAULT_BACKEND: Final = "inductor"
RECOMPILE_LIMIT: Final = 64

# Graphs and recompilations of the modules compile_model has compiled, in this process.
_TALLY: Final[Counter[str]] = Counter()


class GraphCounter:
    """A compile backend: counts the graphs dynamo hands it and compiles each with `backend`."""

    def __init__(self, backend: str) -> None:
        self._compile: Callable[..., Any] = torch._dynamo.lookup_backend(backend)

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Any:
        compile_id = torch._guards.CompileContext.current_compile_id()
        assert compile_id is not None and compile_id.frame_compile_id is not None, "called outside a compilation"
        _TALLY["graphs"] += 1
        if compile_id.frame_compile_id > 0:
            _TALLY["recompiles"] += 1
        return self._compile(graph, example_inputs)


# One per backend name: dynamo reuses a graph only for the backend object it was compiled with.
_BACKENDS: Final[dict[str, GraphCounter]] = {}
_COMPILED: Final[weakref.WeakSet[nn.Module]] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class CompileCounters:
    """A snapshot of the counts; subtract an earlier one for what happened in between."""

    graphs: int  # graphs compiled for modules compile_model compiled: one per compilation (fullgraph)
    recompiles: int  # of those, the ones for a function compiled before: a guard failed (shape, mode, level)
    dynamo_graphs: int  # torch._dynamo.utils.counters["stats"]["unique_graphs"]: every graph dynamo captured

    @classmethod
    def read(cls) -> CompileCounters:
        stats = torch._dynamo.utils.counters["stats"]
        return cls(graphs=_TALLY["graphs"], recompiles=_TALLY["recompiles"], dynamo_graphs=stats["unique_graphs"])

    def __sub__(self, earlier: CompileCounters) -> CompileCounters:
        return CompileCounters(
            graphs=self.graphs - earlier.graphs,
            recompiles=self.recompiles - earlier.recompiles,
            dynamo_graphs=self.dynamo_graphs - earlier.dynamo_graphs,
        )


def recompile_count() -> int:
    """Recompilations of the modules compile_model has compiled, in this process."""
    return CompileCounters.read().recompiles


def compile_targets(model: MorphogeneticModel) -> dict[str, nn.Module]:
    """The modules the compile path compiles, by their name in `model`: host ops, the head, the seeds in slots."""
    host = model.host
    assert isinstance(host, HostProtocol)
    targets: dict[str, nn.Module] = {f"host.ops.{i}": op for i, op in enumerate(host.ops)}
    targets["host.head"] = host.head
    for slot in model.iter_slots():
        if slot.seed is not None:
            targets[f"slots.{slot.slot_id}.seed"] = slot.seed
    return targets


def is_compiled(module: nn.Module) -> bool:
    return module in _COMPILED


def compile_model(model: MorphogeneticModel, backend: str = DEFAULT_BACKEND) -> int:
    """Compile, in place, every target of `model` (compile_targets) that is not compiled yet; returns how many
    were. Graphs are compiled at a module's first call, unless one compiled for its class already fits."""
    if backend not in _BACKENDS:
        _BACKENDS[backend] = GraphCounter(backend)
    fresh = [module for module in compile_targets(model).values() if not is_compiled(module)]
    for module in fresh:
        module.compile(backend=_BACKENDS[backend], fullgraph=True, dynamic=None, recompile_limit=RECOMPILE_LIMIT)
        _COMPILED.add(module)
    return len(fresh)
