"""Experiment packs are data: the shipped ones load and cross-check; broken ones are refused by name."""

from __future__ import annotations

import dataclasses

import pytest

from esper.karn.contracts import ExperimentArm, GatePair
from esper.karn.packs import PackError, arm, check_pack, load_packs, scale
from esper.leyline import PolicyKind, WireError, from_wire


def test_the_phase0_pack_loads_with_control_treatment_and_the_baselines() -> None:
    pack = load_packs()["phase0"]
    assert arm(pack, "control").policy is PolicyKind.HEURISTIC
    assert "conv_ladder" not in arm(pack, "control").blueprints
    assert set(arm(pack, "treatment").blueprints) == set(arm(pack, "control").blueprints) | {"conv_ladder"}
    assert arm(pack, "static").blueprints == ("conv_heavy",)
    assert arm(pack, "random").policy is PolicyKind.RANDOM
    assert set(scale(pack, "quick").arms) == {"control", "treatment", "static", "random"}
    assert {"ppo_control", "ppo_treatment"} <= set(scale(pack, "full").arms)
    cpu = scale(pack, "cpu")
    assert {"ppo_control", "ppo_treatment"} <= set(cpu.arms) and len(cpu.seeds) >= 5
    assert pack.task == "digits_narrow"  # judged where growth has headroom
    assert GatePair(treatment="treatment", control="control") in pack.gate_pairs


def test_broken_packs_are_refused_naming_the_field() -> None:
    pack = load_packs()["phase0"]
    twice = dataclasses.replace(pack, arms=(*pack.arms, pack.arms[0]))
    with pytest.raises(PackError, match=r"phase0.arms: duplicate arm name\(s\) \['control'\]"):
        check_pack(twice)
    quick = dataclasses.replace(pack.quick, arms=("control", "nope"))
    with pytest.raises(PackError, match=r"phase0.quick.arms: unknown arm\(s\) \['nope'\]"):
        check_pack(dataclasses.replace(pack, quick=quick))
    pairs = (GatePair(treatment="treatment", control="ghost"),)
    with pytest.raises(PackError, match=r"phase0.gate_pairs\[0\].control: unknown arm 'ghost'"):
        check_pack(dataclasses.replace(pack, gate_pairs=pairs))
    with pytest.raises(PackError, match="scale must be one of"):
        scale(pack, "medium")


def test_arm_contract_validates_a_property_named_description() -> None:
    # Regression: the compiled validator once dropped a *property* called "description" as if it were a schema
    # annotation, so no record with such a field could be read.
    good = {"name": "a", "description": "d", "policy": "random", "blueprints": ["conv_light"]}
    assert from_wire(ExperimentArm, good).description == "d"
    with pytest.raises(WireError, match="ExperimentArm.policy: 'sgd' is not allowed; allowed values"):
        from_wire(ExperimentArm, {**good, "policy": "sgd"})
    with pytest.raises(WireError, match="ExperimentArm"):
        from_wire(ExperimentArm, {k: v for k, v in good.items() if k != "description"})
