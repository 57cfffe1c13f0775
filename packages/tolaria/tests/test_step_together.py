"""Environments stepped together (their hosts trained as one stacked computation) give each environment the run it
gets alone: the same actions succeed, the same seeds grow, and losses, accuracies and weights agree to float rounding
(the tolerance: step_together_script)."""

from __future__ import annotations

import torch
from step_together_script import EPOCHS, TOLERANCE, assert_same_step, environment, script

from esper.kasmina import can_stack
from esper.tolaria import StepResult, step_together


def test_an_environment_in_a_batch_of_eight_runs_as_it_does_alone() -> None:
    envs = [environment(i) for i in range(8)]
    for env in envs:
        env.reset(0)
    assert can_stack([env.model for env in envs])
    history: list[list[StepResult]] = []
    for epoch in range(1, EPOCHS + 1):
        history.append(step_together(envs, [script(i, epoch) for i in range(8)]))
    stages = {r.stage.name for step in history for result in step for r in result.reports}
    assert {"TRAINING", "BLENDING"} <= stages, f"the script must reach incubation and blending, reached {stages}"
    assert any(result.validation.contributions for result in history[-1])
    for index in (0, 3, 5):
        alone = environment(index)
        alone.reset(0)
        for epoch in range(1, EPOCHS + 1):
            assert_same_step(history[epoch - 1][index], alone.step(script(index, epoch)))
        for p, q in zip(envs[index].model.parameters(), alone.model.parameters(), strict=True):
            assert p.shape == q.shape and torch.allclose(p, q, atol=TOLERANCE)
