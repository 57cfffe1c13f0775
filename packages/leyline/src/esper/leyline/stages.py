"""The seed lifecycle: which stage may follow which, and the stage groups everyone else uses."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from esper.leyline.contracts.seed_stage import SeedStage

S = SeedStage

# First entry of each row = the default target of ADVANCE.
VALID_TRANSITIONS: Final[Mapping[SeedStage, tuple[SeedStage, ...]]] = MappingProxyType(
    {
        S.UNKNOWN: (S.DORMANT,),
        S.DORMANT: (S.GERMINATED,),
        S.GERMINATED: (S.TRAINING, S.PRUNED),
        S.TRAINING: (S.BLENDING, S.PRUNED),
        S.BLENDING: (S.HOLDING, S.PRUNED),
        # HOLDING -> BLENDING: a retarget below full amplitude, or a scheduled prune ramping alpha down.
        S.HOLDING: (S.FOSSILIZED, S.BLENDING, S.PRUNED),
        S.FOSSILIZED: (),
        S.PRUNED: (S.EMBARGOED,),
        S.EMBARGOED: (S.RESETTING,),
        S.RESETTING: (S.DORMANT,),
    }
)

RESERVED_STAGE_VALUES: Final = frozenset({5})
TERMINAL_STAGES: Final = frozenset({S.FOSSILIZED})
FAILURE_STAGES: Final = frozenset({S.PRUNED, S.EMBARGOED, S.RESETTING})
# A seed module exists and can still be changed (pruned, advanced, grown).
LIVE_STAGES: Final = frozenset({S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING})
# The seed's output reaches the host (or is trained against the task loss).
ACTIVE_STAGES: Final = frozenset({S.TRAINING, S.BLENDING, S.HOLDING, S.FOSSILIZED})
# Stages in which GROW_INTERNAL / SHRINK_INTERNAL may act on a microstructured seed.
INTERNAL_OP_STAGES: Final = frozenset({S.TRAINING, S.BLENDING, S.HOLDING})

# One-hot index of each stage (enum order; the reserved value 5 has no column).
STAGE_INDEX: Final[Mapping[SeedStage, int]] = MappingProxyType({stage: i for i, stage in enumerate(SeedStage)})


def is_valid_transition(source: SeedStage, target: SeedStage) -> bool:
    return target in VALID_TRANSITIONS[source]


def advance_target(stage: SeedStage) -> SeedStage:
    """Where ADVANCE takes a seed; ValueError for stages ADVANCE does not apply to."""
    if stage not in (S.GERMINATED, S.TRAINING, S.BLENDING):
        raise ValueError(f"ADVANCE does not apply to stage {stage.name}; it applies to GERMINATED, TRAINING, BLENDING")
    return VALID_TRANSITIONS[stage][0]


def stage_from_value(value: int) -> SeedStage:
    """Decode a wire stage value; 5 (the retired SHADOWING stage) and unknown values are errors."""
    if value in RESERVED_STAGE_VALUES:
        raise ValueError(f"stage value {value} is reserved (retired SHADOWING stage) and rejected")
    try:
        return SeedStage(value)
    except ValueError:
        allowed = ", ".join(f"{s.value} {s.name}" for s in SeedStage)
        raise ValueError(f"unknown stage value {value!r}; allowed: {allowed}") from None
