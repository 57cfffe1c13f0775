"""A cohort's stacked training forward equals each model's own forward: logits, incubation logits, every parameter's
gradient and the batch-norm statistics, with models that grow different seeds in different stages."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from esper.kasmina import can_stack, cohort_forward, cohort_validation, cross_entropy
from esper.leyline import BlueprintAction, SeedStage, Topology

S = SeedStage
TOLERANCE = 1e-5  # grouped and plain convolutions sum in different orders: float rounding, nothing more


def grown_rigs(make_rig: Any) -> list[Any]:
    """Four models, one host configuration: empty; an incubating seed whose path passes a blending seed after it; a
    blending seed and a holding ladder; a fossil before an incubating seed (the path starting after a seed that is
    part of the host)."""
    rigs = [make_rig(seed=i) for i in range(4)]
    rigs[1].drive("r1c0", S.BLENDING, blueprint=BlueprintAction.CONV_LIGHT, tempo=8)
    rigs[1].drive("r0c0", S.TRAINING, blueprint=BlueprintAction.CONV_LIGHT)  # its path passes the blending seed
    rigs[2].drive("r0c0", S.BLENDING, blueprint=BlueprintAction.CONV_SMALL, tempo=8)
    rigs[2].drive("r1c0", S.HOLDING, blueprint=BlueprintAction.CONV_LADDER)
    rigs[3].drive("r0c0", S.FOSSILIZED, blueprint=BlueprintAction.DEPTHWISE)
    rigs[3].drive("r0c1", S.TRAINING, blueprint=BlueprintAction.CONV_LIGHT)
    for rig in rigs:  # every seed's delta non-zero, so that a routing mistake shows
        for slot in rig.model.iter_slots():
            if slot.seed is not None:
                with torch.no_grad():
                    for p in slot.seed.parameters():
                        p.add_(0.1 * torch.randn_like(p))
    return rigs


def losses(forward: Any, y: torch.Tensor) -> torch.Tensor:
    return forward.losses(cross_entropy, y)[1]


def test_cohort_forward_equals_each_model_alone(make_rig: Any) -> None:
    alone = [rig.model for rig in grown_rigs(make_rig)]
    stacked = [rig.model for rig in grown_rigs(make_rig)]  # the same models again (every step is seeded)
    for model, twin in zip(alone, stacked, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters(), strict=True))
    inputs = [torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(len(alone))]
    targets = [torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(10 + i)) for i in range(len(alone))]
    for model in alone + stacked:
        model.train()
    outs = cohort_forward(stacked, inputs)
    torch.autograd.backward(sum(losses(out, y) for out, y in zip(outs, targets, strict=True)))
    for model, out, x, y in zip(alone, outs, inputs, targets, strict=True):
        own = model(x, incubate=True)
        assert torch.allclose(out.logits, own.logits, atol=TOLERANCE)
        assert (out.incubation_logits is None) == (own.incubation_logits is None)
        if own.incubation_logits is not None:
            assert out.incubation_logits is not None
            assert torch.allclose(out.incubation_logits, own.incubation_logits, atol=TOLERANCE)
        torch.autograd.backward(losses(own, y))
    for model, twin in zip(alone, stacked, strict=True):
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                assert q.grad is not None and torch.allclose(p.grad, q.grad, atol=TOLERANCE), name
        for (name, b), c in zip(model.named_buffers(), twin.buffers(), strict=True):
            assert torch.allclose(b.float(), c.float(), atol=TOLERANCE), name
    assert any(out.incubation_logits is not None for out in outs)


def test_only_like_cnn_models_stack(make_rig: Any) -> None:
    cnn = [make_rig(seed=i).model for i in range(2)]
    assert can_stack(cnn) and not can_stack(cnn[:1])
    assert not can_stack([cnn[0], make_rig(slots=("r0c0", "r0c1")).model])  # other slots
    transformers = [make_rig(slots=("r0c0", "r1c0"), topology=Topology.TRANSFORMER).model for _ in range(2)]
    assert not can_stack(transformers)
    with pytest.raises(ValueError, match="a cohort needs two or more CNN hosts"):
        cohort_forward(transformers, [torch.zeros(2, 10, dtype=torch.long)] * 2)


def test_cohort_validation_equals_each_models_own(make_rig: Any) -> None:
    """Models with nothing to measure a counterfactual of (empty, incubating, a fossil before an incubating seed):
    the stacked validation gives each its own fused_validation's loss and accuracy. A blending seed is refused."""
    rigs = grown_rigs(make_rig)
    plain = [rigs[0].model, rigs[1].model, rigs[3].model]
    x = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(6))
    rigs[1].model.slot("r1c0").state.alpha.alpha = 0.0  # its blending seed no longer changes the output
    for model in plain:
        model.eval()
    for model, stacked in zip(plain, cohort_validation(plain, x, y), strict=True):
        own = model.fused_validation(x, y)
        assert own.contributions == stacked.contributions == {}
        assert abs(own.loss - stacked.loss) < TOLERANCE and abs(own.accuracy - stacked.accuracy) < TOLERANCE
    with pytest.raises(ValueError, match="a model has a seed to measure a counterfactual of"):
        cohort_validation([rigs[0].model, rigs[2].model], x, y)
