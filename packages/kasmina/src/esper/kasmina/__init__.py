"""Kasmina: hosts, seed slots, blueprints and ladder seeds.

Its contracts (host configs) are generated into `esper.kasmina.contracts` and re-exported here.
"""

from esper.kasmina.alpha import AlphaController, GatedBlend, blend, ease
from esper.kasmina.blueprints import (
    BLUEPRINTS,
    INTERNAL_FAMILIES,
    BlueprintSpec,
    ChannelLadderSeed,
    ConvLadderSeed,
    LoraLadderSeed,
    MicrostructuredSeed,
    build_seed,
    channel_groups,
    count_trainable,
    seed_group_size,
    spec_for,
)
from esper.kasmina.cohort import can_stack, cohort_forward, cohort_validation
from esper.kasmina.compiled import (
    CompileCounters,
    compile_model,
    compile_targets,
    is_compiled,
    recompile_count,
)
from esper.kasmina.contracts import *  # noqa: F403
from esper.kasmina.contracts import __all__ as CONTRACT_NAMES
from esper.kasmina.ddp import LOCAL, RankSymmetry, data_parallel
from esper.kasmina.gates import GATE_FOR_TARGET, MEASURED_CHECKS, GateMode, GateThresholds, QualityGates
from esper.kasmina.grown import (
    GrownModel,
    GrownSlot,
    evaluate,
    fossils,
    grown_from,
    load_grown_model,
    read_record,
    save_grown_model,
)
from esper.kasmina.hosts import AttentionSublayer, CNNHost, HostProtocol, MlpSublayer, TransformerHost
from esper.kasmina.model import (
    MorphogeneticModel,
    TrainingForward,
    ValidationResult,
    call_frozen,
    classification_accuracy,
    cross_entropy,
)
from esper.kasmina.slot import FORWARD_MODE, ForwardMode, IllegalOperation, SeedSlot

__all__ = [
    *CONTRACT_NAMES,
    "BLUEPRINTS",
    "CONTRACT_NAMES",
    "FORWARD_MODE",
    "GATE_FOR_TARGET",
    "INTERNAL_FAMILIES",
    "AlphaController",
    "AttentionSublayer",
    "BlueprintSpec",
    "CNNHost",
    "ChannelLadderSeed",
    "CompileCounters",
    "ConvLadderSeed",
    "LoraLadderSeed",
    "ForwardMode",
    "GateMode",
    "GrownModel",
    "GrownSlot",
    "MEASURED_CHECKS",
    "GateThresholds",
    "GatedBlend",
    "HostProtocol",
    "IllegalOperation",
    "MicrostructuredSeed",
    "MlpSublayer",
    "MorphogeneticModel",
    "QualityGates",
    "SeedSlot",
    "TransformerHost",
    "TrainingForward",
    "ValidationResult",
    "call_frozen",
    "can_stack",
    "cohort_forward",
    "cohort_validation",
    "blend",
    "build_seed",
    "channel_groups",
    "classification_accuracy",
    "compile_model",
    "compile_targets",
    "count_trainable",
    "cross_entropy",
    "LOCAL",
    "RankSymmetry",
    "data_parallel",
    "ease",
    "evaluate",
    "fossils",
    "grown_from",
    "is_compiled",
    "load_grown_model",
    "read_record",
    "recompile_count",
    "save_grown_model",
    "seed_group_size",
    "spec_for",
]
