"""Obs V3: the declared field lists of Tamiyo's observation and every dimension derived from them.

The lists are the single source of truth: Tamiyo's feature extraction must fill exactly these fields in this order
(a test ties the extraction width to them), and adding an op, a stage or a field changes the dims with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from esper.leyline.contracts.blueprint_action import BlueprintAction
from esper.leyline.contracts.lifecycle_op import LifecycleOp
from esper.leyline.contracts.seed_stage import SeedStage

# 2 = Phase 0 (GROW/SHRINK_INTERNAL ops, internal_level_norm); 3 = the seed's delta_ratio (bounded incubation);
# 4 = Phase 1 (slot_order_norm, slot_surface_norm: where each slot sits in the host)
OBS_V3_SCHEMA_VERSION: Final = 4
UNKNOWN_SENTINEL: Final = -1.0  # a declared "not available" value (history padding, never-measured freshness)
SYMLOG_NORM: Final = 7.0
HISTORY_LENGTH: Final = 5


@dataclass(frozen=True, slots=True)
class FeatureField:
    name: str
    encoding: str  # how the raw value is normalised; shown in docs and Karn's feature inspector


_BASE_SCALARS: Final = (
    FeatureField("epoch_norm", "min(epoch, max_epochs) / max_epochs"),
    FeatureField("val_loss", "symlog(val_loss) / 7"),
    FeatureField("val_accuracy", "val_accuracy / 100"),
    *(FeatureField(f"loss_history_{i}", "symlog / 7, oldest first; -1 when missing") for i in range(HISTORY_LENGTH)),
    *(FeatureField(f"accuracy_history_{i}", "/ 100, oldest first; -1 when missing") for i in range(HISTORY_LENGTH)),
    FeatureField("training_fraction", "slots in TRAINING / slots"),
    FeatureField("blending_fraction", "slots in BLENDING / slots"),
    FeatureField("holding_fraction", "slots in HOLDING or FOSSILIZED / slots"),
    FeatureField("last_action_success", "0 or 1"),
)
BASE_FEATURE_FIELDS: Final[tuple[FeatureField, ...]] = (
    *_BASE_SCALARS,
    *(FeatureField(f"last_op_{op.name.lower()}", "one-hot of the previous op") for op in LifecycleOp),
)

SLOT_FEATURE_FIELDS: Final[tuple[FeatureField, ...]] = (
    FeatureField("slot_order_norm", "InjectionSpec.order / lattice_size (the slot's depth in the host's lattice)"),
    FeatureField("slot_surface_norm", "SurfaceType value / largest SurfaceType value"),
    FeatureField("is_active", "1 if the slot holds a seed"),
    *(FeatureField(f"stage_{stage.name.lower()}", "one-hot of the stage") for stage in SeedStage),
    FeatureField("alpha", "raw, in [0, 1]"),
    FeatureField("contribution", "clamp(counterfactual / 10, -1, 1); 0 when not measured"),
    FeatureField("contribution_velocity", "clamp(velocity / 10, -1, 1)"),
    FeatureField("blend_tempo", "blend_tempo_epochs / 12"),
    FeatureField("alpha_target", "raw"),
    FeatureField("alpha_mode", "AlphaMode value / 2"),
    FeatureField("alpha_steps_total", "min(x, max_epochs) / max_epochs"),
    FeatureField("alpha_steps_done", "min(x, max_epochs) / max_epochs"),
    FeatureField("time_to_target", "min(total - done, max_epochs) / max_epochs"),
    FeatureField("alpha_velocity", "clamp((target - alpha) / remaining steps, -1, 1); 0 when holding"),
    FeatureField("alpha_algorithm", "(AlphaAlgorithm value - 1) / 2"),
    FeatureField("gradient_norm", "symlog / 7; 0 when not measured"),
    FeatureField("gradient_health", "[0, 1]; 0 when not measured"),
    FeatureField("has_vanishing", "0 or 1; 0 when not measured"),
    FeatureField("has_exploding", "0 or 1; 0 when not measured"),
    FeatureField("gradient_health_prev", "previous epoch's gradient_health; -1 when missing"),
    FeatureField("epochs_in_stage_norm", "min(epochs_in_current_stage, max_epochs) / max_epochs"),
    FeatureField("counterfactual_fresh", "0.995 ** epochs_since_counterfactual; -1 when never measured"),
    FeatureField("seed_age_norm", "min(epochs_total, max_epochs) / max_epochs"),
    FeatureField("internal_level_norm", "internal_level / internal_max_level; 0 for seeds without structure"),
    FeatureField("delta_ratio", "symlog(|delta| / |x|) / 7; 0 when not measured"),
)

OBS_V3_BASE_FEATURE_SIZE: Final = len(BASE_FEATURE_FIELDS)
OBS_V3_SLOT_FEATURE_SIZE: Final = len(SLOT_FEATURE_FIELDS)
NUM_OPS: Final = len(LifecycleOp)
NUM_STAGES: Final = len(SeedStage)
NUM_BLUEPRINTS: Final = len(BlueprintAction)
# Index used for "no blueprint" (empty slot) in the blueprint embedding table, which has NUM_BLUEPRINTS + 1 rows.
BLUEPRINT_NULL_INDEX: Final = NUM_BLUEPRINTS


def obs_dim(num_slots: int) -> int:
    """Width of the flat observation (without blueprint embeddings) for `num_slots` slots."""
    if num_slots < 1:
        raise ValueError(f"num_slots must be >= 1, got {num_slots}")
    return OBS_V3_BASE_FEATURE_SIZE + OBS_V3_SLOT_FEATURE_SIZE * num_slots


def policy_input_dim(num_slots: int, blueprint_embed_dim: int) -> int:
    """Width after the policy concatenates the per-slot blueprint embeddings."""
    return obs_dim(num_slots) + num_slots * blueprint_embed_dim


def field_index(fields: tuple[FeatureField, ...], name: str) -> int:
    for i, feature in enumerate(fields):
        if feature.name == name:
            return i
    raise KeyError(f"no feature field named {name!r}")
