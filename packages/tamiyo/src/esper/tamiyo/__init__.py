"""Tamiyo: Obs V3 features, action masks and policies (heuristic, random, lstm). Reads reports, never slots.

Its contracts (policy configs) are generated into `esper.tamiyo.contracts` and re-exported here.
"""

from esper.tamiyo.contracts import *  # noqa: F403
from esper.tamiyo.contracts import __all__ as CONTRACT_NAMES
from esper.tamiyo.features import EnvView, FeatureExtractor, Observation
from esper.tamiyo.heuristic import HEURISTIC_OP_PATHS, NEVER, HeuristicMemory, HeuristicPolicy
from esper.tamiyo.lstm_policy import Evaluation, FactoredActorCritic, LstmPolicy, LstmState
from esper.tamiyo.masks import ActionMasks, MaskConfig, compute_masks
from esper.tamiyo.policy import (
    CANONICAL,
    HEAD_INDEX,
    HEADS,
    RELEVANCE,
    Explanation,
    Policy,
    PolicyOutput,
    as_row,
    decisions_of,
    floored_probs,
    head_mask,
    normalized_entropy,
    sample_actions,
    to_factored,
)
from esper.tamiyo.random_policy import RandomPolicy

__all__ = [
    *CONTRACT_NAMES,
    "CANONICAL",
    "CONTRACT_NAMES",
    "HEAD_INDEX",
    "HEADS",
    "HEURISTIC_OP_PATHS",
    "NEVER",
    "RELEVANCE",
    "ActionMasks",
    "EnvView",
    "Evaluation",
    "Explanation",
    "FactoredActorCritic",
    "FeatureExtractor",
    "HeuristicMemory",
    "HeuristicPolicy",
    "LstmPolicy",
    "LstmState",
    "MaskConfig",
    "Observation",
    "Policy",
    "PolicyOutput",
    "RandomPolicy",
    "compute_masks",
    "floored_probs",
    "head_mask",
    "normalized_entropy",
    "sample_actions",
    "as_row",
    "decisions_of",
    "to_factored",
]
