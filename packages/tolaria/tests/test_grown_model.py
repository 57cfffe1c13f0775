"""The grown model as an artifact: a real digits episode grows two fossils (a gated conv ladder grown a level, a
multiplied conv_light) and leaves a third seed live; the saved model reloads from its files alone and measures
exactly what the episode's last validation measured."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from step_together_script import DATA, GATES, SLOTS, TASK

from esper.kasmina import GrownModel, evaluate, load_grown_model, save_grown_model
from esper.kasmina.grown import RECORD_FILE, WEIGHTS_FILE
from esper.leyline import (
    AlphaAlgorithm,
    BlueprintAction,
    FactoredAction,
    GerminationStyle,
    LifecycleOp,
    SeedStage,
    TelemetryHub,
    WireError,
    canonical_action,
)
from esper.tolaria import Environment, StepResult

OP = LifecycleOp
# slot index -> (blueprint, style) of the seed it grows and fossilizes
FOSSILS = {
    0: (BlueprintAction.CONV_LADDER, GerminationStyle.GATED_GATE),
    2: (BlueprintAction.CONV_LIGHT, GerminationStyle.LINEAR_MULTIPLY),
}
LIVE_SLOT = 1  # germinated once both fossils stand, still TRAINING when the episode ends
MAX_EPOCHS = 60


def germinate(slot: int, blueprint: BlueprintAction, style: GerminationStyle) -> FactoredAction:
    return dataclasses.replace(canonical_action(OP.GERMINATE, slot, blueprint), style=style)


def next_action(stages: dict[int, SeedStage | None], grown: set[int]) -> FactoredAction:
    """Drive each FOSSILS slot from empty to FOSSILIZED (growing the ladder once while it blends), then germinate
    the live seed."""
    for slot, (blueprint, style) in FOSSILS.items():
        stage = stages[slot]
        if stage is None:
            return germinate(slot, blueprint, style)
        if stage is SeedStage.BLENDING and blueprint is BlueprintAction.CONV_LADDER and slot not in grown:
            grown.add(slot)
            return canonical_action(OP.GROW_INTERNAL, slot)
        if stage is SeedStage.HOLDING:
            return canonical_action(OP.FOSSILIZE, slot)
        if stage is not SeedStage.FOSSILIZED:
            return canonical_action(OP.ADVANCE, slot)
    if stages[LIVE_SLOT] is None:
        return germinate(LIVE_SLOT, BlueprintAction.DEPTHWISE, GerminationStyle.LINEAR_ADD)
    return canonical_action(OP.WAIT)


@pytest.fixture(scope="module")
def grown_episode() -> tuple[Environment, StepResult]:
    env = Environment(TASK, DATA, SLOTS, TelemetryHub("grown").emitter(0), 3, torch.device("cpu"), gates=GATES)
    env.reset(0)
    grown: set[int] = set()
    stages: dict[int, SeedStage | None] = dict.fromkeys(range(len(SLOTS)))
    for _ in range(MAX_EPOCHS):
        result = env.step(next_action(stages, grown))
        by_slot = {r.slot_id: r.stage for r in result.reports}
        stages = {i: by_slot[s] if s in by_slot else None for i, s in enumerate(SLOTS)}
        if stages[LIVE_SLOT] is not None:
            return env, result
    raise AssertionError(f"the script did not fossilize both seeds in {MAX_EPOCHS} epochs: {stages}")


def test_saved_model_reloads_and_measures_the_episodes_last_validation(
    grown_episode: tuple[Environment, StepResult], tmp_path: Path
) -> None:
    env, last = grown_episode
    record = env.save_grown_model(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted([WEIGHTS_FILE, RECORD_FILE])
    # what the record says: the two fossils with their blend and level, the live seed left out
    assert [(s.slot_id, s.blueprint, s.alpha_algorithm) for s in record.seeds] == [
        (SLOTS[0], BlueprintAction.CONV_LADDER, AlphaAlgorithm.GATE),
        (SLOTS[2], BlueprintAction.CONV_LIGHT, AlphaAlgorithm.MULTIPLY),
    ]
    assert record.seeds[0].internal_level == 2 and record.seeds[1].internal_level == 0
    live = env.model.slot(SLOTS[LIVE_SLOT])
    assert live.state is not None and record.live_seeds_left_out == (live.state.seed_id,)
    assert (record.task, record.episode, record.epoch) == ("digits", 0, env.epoch)
    # The live seed is still TRAINING (it does not touch the validated stream), so the grown model is the network
    # the episode's last validation measured.
    model = load_grown_model(tmp_path / "model")
    loss, accuracy = evaluate(model, DATA.val_x, DATA.val_y)
    assert accuracy == record.val_accuracy and loss == pytest.approx(record.val_loss, abs=1e-6)
    assert accuracy == pytest.approx(last.validation.accuracy, abs=1e-9)
    assert loss == pytest.approx(last.validation.loss, abs=1e-4)
    with torch.no_grad():
        env.model.eval()
        assert torch.allclose(model(DATA.val_x), env.model(DATA.val_x), atol=1e-5)


def test_a_saved_model_holds_no_pickle_and_each_weight_is_the_trained_one(
    grown_episode: tuple[Environment, StepResult], tmp_path: Path
) -> None:
    env, _ = grown_episode
    env.save_grown_model(tmp_path / "model")
    model = load_grown_model(tmp_path / "model")
    trained = env.model.state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("_extra_state"):
            assert torch.equal(value, trained[key]), key
    ladder = model.slots[SLOTS[0]].seed
    assert ladder.get_extra_state() == {"level": 2, "max_level": 4}


def test_saving_replaces_a_saved_model_refuses_anything_else_and_loading_names_what_is_missing(
    grown_episode: tuple[Environment, StepResult], tmp_path: Path
) -> None:
    env, _ = grown_episode
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken already exists and is not a saved grown model"):
        env.save_grown_model(tmp_path / "taken")
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]  # nothing half-written beside it
    with pytest.raises(FileNotFoundError, match=f"holds no {RECORD_FILE}"):
        load_grown_model(tmp_path / "taken")
    # A resumed run plays an unfinished round's episodes again: their models replace the earlier ones whole.
    env.save_grown_model(tmp_path / "model")
    (tmp_path / "model" / "stale").write_text("from the earlier try")
    record = env.save_grown_model(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted([WEIGHTS_FILE, RECORD_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "taken"]
    assert load_grown_model(tmp_path / "model").record == record
    (tmp_path / "model" / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=f"holds no {WEIGHTS_FILE}"):
        load_grown_model(tmp_path / "model")
    path = tmp_path / "model" / RECORD_FILE
    path.write_text(path.read_text(encoding="utf-8").replace('"val_accuracy"', '"val_acc"'), encoding="utf-8")
    with pytest.raises(WireError, match="model.json"):
        load_grown_model(tmp_path / "model")


def test_a_model_rebuilt_from_its_record_needs_its_own_weights(
    grown_episode: tuple[Environment, StepResult], tmp_path: Path
) -> None:
    """A record whose fossil sits in a slot the host does not have is refused by name; a fresh GrownModel saved and
    reloaded round-trips bit for bit."""
    env, _ = grown_episode
    record = env.save_grown_model(tmp_path / "model")
    bad = dataclasses.replace(record, seeds=(dataclasses.replace(record.seeds[0], slot_id="r9c9"),))
    with pytest.raises(ValueError, match="no slot"):
        GrownModel(bad)
    fresh = GrownModel(record).eval()
    save_grown_model(fresh, tmp_path / "fresh")
    again = load_grown_model(tmp_path / "fresh")
    with torch.no_grad():
        assert torch.equal(fresh(DATA.val_x), again(DATA.val_x))
