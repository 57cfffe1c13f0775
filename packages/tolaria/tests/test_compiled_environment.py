"""An environment under `compile_backend` (the `--compile` path) runs as the eager one, compiles every seed it
germinates, and stops compiling once its structure stops changing. The tests use dynamo's "eager" backend: the
capture, guards and recompilations are dynamo's whatever the backend; inductor only makes each graph dearer."""

from __future__ import annotations

from step_together_script import EPOCHS, assert_same_step, environment, script

from esper.kasmina import CompileCounters, compile_targets, is_compiled
from esper.leyline import LifecycleOp, canonical_action

INDEX = 3  # the script's environment 3 germinates a ladder at r0c0, incubates, blends and grows it


def test_a_compiled_environment_runs_as_the_eager_one() -> None:
    eager, compiled = environment(INDEX), environment(INDEX, compile_backend="eager")
    eager.reset(0)
    compiled.reset(0)
    for epoch in range(1, EPOCHS + 1):
        assert_same_step(compiled.step(script(INDEX, epoch)), eager.step(script(INDEX, epoch)))
    targets = compile_targets(compiled.model)
    assert any(name.startswith("slots.") for name in targets), "the script germinates a seed"
    assert all(is_compiled(module) for module in targets.values())
    # The structure no longer changes: more epochs compile nothing.
    settled = CompileCounters.read()
    for _ in range(3):
        compiled.step(canonical_action(LifecycleOp.WAIT))
    assert CompileCounters.read() - settled == CompileCounters(0, 0, 0)
