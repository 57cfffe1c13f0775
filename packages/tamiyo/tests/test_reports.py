"""The report invariants JSON Schema cannot express (esper.leyline.check_seed_state_report), on reports as Tamiyo
receives them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tamiyo_inputs import make_report

from esper.leyline import BlueprintAction, ContractError, SeedStage, check_seed_state_report


@pytest.mark.parametrize("blueprint", list(BlueprintAction))
def test_a_group_size_belongs_to_channel_ladders_only(blueprint: BlueprintAction) -> None:
    report = make_report("r0c0", SeedStage.TRAINING, blueprint)
    channel = blueprint is BlueprintAction.CHANNEL_LADDER
    assert (report.internal_group_size > 0) == channel
    wrong = replace(report, internal_group_size=0 if channel else 4)
    with pytest.raises(ContractError, match="internal_group_size"):
        check_seed_state_report(wrong)


def test_levels_outside_the_ladder_are_refused_naming_the_field() -> None:
    report = make_report("r0c0", SeedStage.TRAINING, BlueprintAction.LORA_LADDER, level=2)
    with pytest.raises(ContractError, match=r"internal_level.*5 is outside 0..internal_max_level \(4\)"):
        check_seed_state_report(replace(report, internal_level=5))
