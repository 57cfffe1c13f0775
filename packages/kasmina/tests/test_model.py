"""Fused counterfactual validation, contributions in the reports, and a transformer model growing seeds."""

from __future__ import annotations

from typing import Any

import torch

from esper.kasmina import MorphogeneticModel, TransformerHost, classification_accuracy, cross_entropy
from esper.leyline import BlueprintAction, GerminationStyle, SeedStage, TelemetryHub, Topology

S = SeedStage


def explicit_off(rig: Any, slot_id: str) -> tuple[float, float]:
    """Loss and accuracy with one seed switched off, computed the slow way."""
    slot = rig.model.slot(slot_id)
    saved = slot.state.alpha.alpha
    slot.state.alpha.alpha = 0.0
    with torch.no_grad():
        logits = rig.model(rig.x)
    slot.state.alpha.alpha = saved
    return float(cross_entropy(logits, rig.y)), 100.0 * float(classification_accuracy(logits, rig.y))


def assert_fused_matches_explicit(rig: Any, live: tuple[str, ...]) -> None:
    """The batched counterfactuals of the live seeds equal the slow ones (each seed switched off in its own pass)."""
    rig.model.eval()
    result = rig.model.fused_validation(rig.x, rig.y)
    assert set(result.contributions) == set(live)
    with torch.no_grad():
        main = rig.model(rig.x)
    assert abs(result.loss - float(cross_entropy(main, rig.y))) < 1e-5
    for slot_id in live:
        loss_off, acc_off = explicit_off(rig, slot_id)
        assert loss_off != result.loss  # switching the seed off matters
        assert abs(result.off_losses[slot_id] - loss_off) < 1e-5
        assert abs(result.contributions[slot_id] - (result.accuracy - acc_off)) < 1e-6


def test_fused_validation_matches_explicit_counterfactuals(rig: Any) -> None:
    rig.drive("r0c0", S.HOLDING, blueprint=BlueprintAction.CONV_HEAVY)
    rig.drive("r1c0", S.BLENDING, blueprint=BlueprintAction.CONV_LIGHT, tempo=8)
    rig.epoch()
    rig.drive("r0c1", S.TRAINING)  # incubating: not a counterfactual candidate
    for slot_id in ("r0c0", "r1c0"):  # make every seed matter
        with torch.no_grad():
            torch.nn.init.normal_(rig.model.slot(slot_id).seed.proj.weight, std=0.5)
    assert_fused_matches_explicit(rig, ("r0c0", "r1c0"))


def test_fused_validation_without_live_seeds_is_a_plain_validation(rig: Any) -> None:
    rig.model.eval()
    result = rig.model.fused_validation(rig.x, rig.y)
    with torch.no_grad():
        logits = rig.model(rig.x)
    assert result.contributions == {} and abs(result.loss - float(cross_entropy(logits, rig.y))) < 1e-6


def test_contributions_reach_the_reports(rig: Any) -> None:
    rig.drive("r0c0", S.HOLDING)
    rig.epoch()
    (report,) = rig.model.reports()
    assert report.metrics.counterfactual_contribution is not None
    assert report.metrics.epochs_since_counterfactual == 0  # measured in this epoch's validation


def test_transformer_model_grows_seeds(transformer_host: TransformerHost) -> None:
    hub = TelemetryHub("r")
    model = MorphogeneticModel(transformer_host, ["r0c0", "r0c1"], hub.emitter(0))
    model.slot("r0c1").germinate(
        BlueprintAction.LORA, "s", GerminationStyle.LINEAR_ADD, 3, 1.0, model.host_param_count()
    )
    model.slot("r0c1").advance()
    tokens = torch.randint(0, 17, (2, 10))
    out = model(tokens, incubate=True)
    assert out.logits.shape == (2, 10, 17)
    _, loss = out.losses(
        lambda logits, t: torch.nn.functional.cross_entropy(logits.reshape(-1, 17), t.reshape(-1)), tokens
    )
    loss.backward()
    assert model.seed_parameters("r0c1")[1].grad is not None


def test_fused_validation_on_the_transformer_lattice(make_rig: Any) -> None:
    """Ladders at a post-attention and a post-MLP point of different layers: the batched counterfactuals equal the
    slow ones."""
    rig = make_rig(slots=("r0c0", "r1c0", "r0c1"), topology=Topology.TRANSFORMER)
    rig.drive("r0c1", S.HOLDING, blueprint=BlueprintAction.LORA_LADDER)
    rig.drive("r1c0", S.BLENDING, blueprint=BlueprintAction.LORA_LADDER, tempo=8)
    rig.epoch()
    for slot_id in ("r0c1", "r1c0"):  # make every seed matter
        with torch.no_grad():
            torch.nn.init.normal_(rig.model.slot(slot_id).seed.up[0].weight, std=0.5)
    assert_fused_matches_explicit(rig, ("r0c1", "r1c0"))
