"""`step_optimizers` computes exactly what each optimizer's own step() does, momentum buffers included, whether SGD
optimizers share their hyperparameters (one foreach update) or not, with other optimizers beside them."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.tolaria import step_optimizers

SGD_SETTINGS = st.sampled_from(
    [
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        {"lr": 0.01, "momentum": 0.0},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ]
)


def build(specs: list[dict[str, object]], adam: bool, seed: int) -> list[torch.optim.Optimizer]:
    generator = torch.Generator().manual_seed(seed)
    optimizers: list[torch.optim.Optimizer] = []
    for spec in specs:
        params = [torch.nn.Parameter(torch.randn(3, 4, generator=generator)) for _ in range(2)]
        optimizers.append(torch.optim.SGD(params, foreach=True, **spec))  # type: ignore[arg-type]
    if adam:
        optimizers.append(torch.optim.AdamW([torch.nn.Parameter(torch.randn(5, generator=generator))]))
    return optimizers


def fill_gradients(optimizers: list[torch.optim.Optimizer], step: int) -> None:
    generator = torch.Generator().manual_seed(1000 + step)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.randn(p.shape, generator=generator)


@settings(max_examples=20, deadline=None)
@given(specs=st.lists(SGD_SETTINGS, min_size=1, max_size=4), adam=st.booleans(), seed=st.integers(0, 1000))
def test_stepping_together_equals_stepping_each(specs: list[dict[str, object]], adam: bool, seed: int) -> None:
    each, together = build(specs, adam, seed), build(specs, adam, seed)
    for step in range(3):  # the first step creates the momentum buffers, the next ones use them
        fill_gradients(each, step)
        fill_gradients(together, step)
        for optimizer in each:
            optimizer.step()
        step_optimizers(together)
    for mine, theirs in zip(together, each, strict=True):
        for p, q in zip(mine.param_groups[0]["params"], theirs.param_groups[0]["params"], strict=True):
            assert torch.equal(p, q)
            assert mine.state[p].keys() == theirs.state[q].keys()
            for name, value in theirs.state[q].items():
                assert torch.equal(mine.state[p][name], value), name
