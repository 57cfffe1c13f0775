"""Fused counterfactual validation, contributions in the reports, and a transformer model growing seeds."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from conftest import Rig
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.kasmina import MorphogeneticModel, TransformerHost, classification_accuracy, cross_entropy
from esper.leyline import BlueprintAction, GerminationStyle, SeedStage, TelemetryHub, Topology

S = SeedStage


def target_probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A continuous stand-in for accuracy (mean probability of the target), so that equality is checked to 1e-6
    rather than to one sample's worth of accuracy."""
    probabilities = logits.softmax(-1).gather(-1, targets.unsqueeze(-1))
    return probabilities.mean()


def naive_off(rig: Any, slot_id: str, rows: int) -> float:
    """The metric on the first `rows` samples with one seed switched off, in its own full pass (the slow way)."""
    slot = rig.model.slot(slot_id)
    saved = slot.state.alpha.alpha
    slot.state.alpha.alpha = 0.0
    with torch.no_grad():
        logits = rig.model(rig.x[:rows])
    slot.state.alpha.alpha = saved
    return 100.0 * float(target_probability(logits, rig.y[:rows]))


def assert_fused_matches_naive(rig: Any, live: tuple[str, ...], subset: int | None = None) -> None:
    """The fused counterfactuals of the live seeds equal the naive ones (each seed switched off in a separate full
    pass over the same inputs), and the model's own figures are those of a plain forward."""
    rig.model.eval()
    rows = len(rig.x) if subset is None else subset
    fused = rig.model.fused_validation(rig.x, rig.y, accuracy_fn=target_probability, counterfactual_samples=subset)
    accuracy = rig.model.fused_validation(rig.x, rig.y, counterfactual_samples=subset)
    assert set(fused.contributions) == set(live)
    with torch.no_grad():
        main = rig.model(rig.x)
    assert abs(fused.loss - float(cross_entropy(main, rig.y))) < 1e-5
    assert abs(accuracy.accuracy - 100.0 * float(classification_accuracy(main, rig.y))) < 1e-9
    on_subset = 100.0 * float(target_probability(main[:rows], rig.y[:rows]))
    for slot_id in live:
        off = naive_off(rig, slot_id, rows)
        assert off != on_subset  # switching the seed off matters
        assert abs(fused.contributions[slot_id] - (on_subset - off)) < 1e-4


@functools.cache
def grown_rig() -> Rig:
    """Seeds at the first slot (holding), a later one (blending) and between them an incubating one (not a
    counterfactual candidate), every seed's delta made to matter. Built once: the tests only read it."""
    rig = Rig()
    rig.drive("r0c0", S.HOLDING, blueprint=BlueprintAction.CONV_HEAVY)
    rig.drive("r1c0", S.BLENDING, blueprint=BlueprintAction.CONV_LIGHT, tempo=8)
    rig.epoch()
    rig.drive("r0c1", S.TRAINING)
    for slot_id in ("r0c0", "r1c0"):
        with torch.no_grad():
            torch.nn.init.normal_(rig.model.slot(slot_id).seed.proj.weight, std=0.5)
    return rig


@settings(max_examples=25, deadline=None)
@given(subset=st.one_of(st.none(), st.integers(min_value=1, max_value=40)))
def test_fused_validation_matches_naive_counterfactuals(subset: int | None) -> None:
    """For any subset of the rows (None: all; more rows than there are: all of them)."""
    assert_fused_matches_naive(grown_rig(), ("r0c0", "r1c0"), subset)


def test_fused_validation_counts_a_fossil_as_host(rig: Any) -> None:
    """A fossilized seed is on in every configuration; only the blending seed after it is switched off."""
    rig.drive("r0c0", S.FOSSILIZED, blueprint=BlueprintAction.CONV_LIGHT)
    rig.drive("r0c1", S.HOLDING, blueprint=BlueprintAction.CONV_LIGHT)
    for slot_id in ("r0c0", "r0c1"):
        with torch.no_grad():
            torch.nn.init.normal_(rig.model.slot(slot_id).seed.proj.weight, std=0.5)
    assert_fused_matches_naive(rig, ("r0c1",), 8)


def test_fused_validation_refuses_an_empty_subset(rig: Any) -> None:
    with pytest.raises(ValueError, match="counterfactual_samples must be >= 1, got 0"):
        rig.model.fused_validation(rig.x, rig.y, counterfactual_samples=0)


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
    assert_fused_matches_naive(rig, ("r0c1", "r1c0"), 5)
