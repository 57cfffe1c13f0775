"""Experiment packs: experiments as data. Each `esper/karn/packs/<name>.json` is an ExperimentPack (a generated
contract); loading validates it against the schema and checks that the names it uses refer to its own arms."""

from __future__ import annotations

from importlib import resources
from typing import Final

from esper.karn.contracts import ExperimentArm, ExperimentPack, ExperimentScale
from esper.leyline import loads

SCALES: Final = ("quick", "cpu", "full")


class PackError(ValueError):
    """A pack whose parts do not fit together (an unknown arm, a duplicate name)."""


def check_pack(pack: ExperimentPack) -> ExperimentPack:
    names = [arm.name for arm in pack.arms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PackError(f"ExperimentPack {pack.name}.arms: duplicate arm name(s) {duplicates}")
    for scale_name in SCALES:
        size = scale(pack, scale_name)
        unknown = [a for a in size.arms if a not in names]
        if unknown:
            raise PackError(f"ExperimentPack {pack.name}.{scale_name}.arms: unknown arm(s) {unknown}; arms: {names}")
        trained = {size.ppo_train_seed + 1000 * i for i in range(size.ppo_envs)}
        mixed = sorted(trained & set(size.seeds))
        if mixed:
            raise PackError(
                f"ExperimentPack {pack.name}.{scale_name}.seeds: {mixed} would also train the PPO arms "
                f"(ppo_train_seed {size.ppo_train_seed} trains on {sorted(trained)}); evaluation seeds must differ"
            )
    for i, pair in enumerate(pack.gate_pairs):
        for role, arm in (("treatment", pair.treatment), ("control", pair.control)):
            if arm not in names:
                raise PackError(
                    f"ExperimentPack {pack.name}.gate_pairs[{i}].{role}: unknown arm {arm!r}; arms: {names}"
                )
    return pack


def scale(pack: ExperimentPack, name: str) -> ExperimentScale:
    if name == "quick":
        return pack.quick
    if name == "cpu":
        return pack.cpu
    if name == "full":
        return pack.full
    raise PackError(f"scale must be one of {SCALES}, got {name!r}")


def arm(pack: ExperimentPack, name: str) -> ExperimentArm:
    for candidate in pack.arms:
        if candidate.name == name:
            return candidate
    raise PackError(f"ExperimentPack {pack.name}: no arm {name!r}")


def load_packs() -> dict[str, ExperimentPack]:
    """Every pack shipped with Karn, by name (the file name must match the pack's name)."""
    packs: dict[str, ExperimentPack] = {}
    for entry in sorted(resources.files("esper.karn").joinpath("packs").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        pack = check_pack(loads(ExperimentPack, entry.read_text(encoding="utf-8")))
        if f"{pack.name}.json" != entry.name:
            raise PackError(f"{entry.name}: holds pack {pack.name!r}; the file must be named {pack.name}.json")
        packs[pack.name] = pack
    return packs
