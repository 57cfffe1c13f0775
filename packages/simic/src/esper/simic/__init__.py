"""Simic: rewards, PPO, the vectorized trainer that learns Tamiyo, and its torch.distributed scale-out.

Its contracts (PPO and reward configs) are generated into `esper.simic.contracts` and re-exported here.
"""

from esper.simic.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    load_latest,
    previous_path,
    read_checkpoint,
    write_checkpoint,
)
from esper.simic.contracts import *  # noqa: F403
from esper.simic.contracts import __all__ as CONTRACT_NAMES
from esper.simic.distributed import (
    DistributedError,
    EventRelay,
    WorkerGroup,
    close_group,
    exit_rank,
    init_group,
    is_peer_failure,
    under_torchrun,
)
from esper.simic.loop import (
    Act,
    EpisodeLoop,
    Episodes,
    LoopConfig,
    NoopBaseline,
    Prepare,
    StepHook,
    Transition,
    seed_window,
    sum_components,
)
from esper.simic.ppo import PpoTrainer, RolloutBuffer, RunningMeanStd, UpdateStats, concat_buffers, gae
from esper.simic.rewards import (
    STAGE_POTENTIALS,
    InternalOpWindow,
    StepOutcome,
    added_params,
    check_reward_config,
    compute_reward,
    potential,
)
from esper.simic.trainer import (
    RoundResult,
    TrainedPolicy,
    TrainerConfig,
    VectorizedTrainer,
    check_resumable,
    load_trained_policy,
)

__all__ = [
    "Act",
    *CONTRACT_NAMES,
    "CONTRACT_NAMES",
    "CheckpointError",
    "EpisodeLoop",
    "Episodes",
    "LoopConfig",
    "NoopBaseline",
    "Prepare",
    "StepHook",
    "Transition",
    "seed_window",
    "sum_components",
    "LoadedCheckpoint",
    "load_latest",
    "previous_path",
    "read_checkpoint",
    "write_checkpoint",
    "DistributedError",
    "EventRelay",
    "WorkerGroup",
    "close_group",
    "exit_rank",
    "concat_buffers",
    "init_group",
    "is_peer_failure",
    "under_torchrun",
    "STAGE_POTENTIALS",
    "InternalOpWindow",
    "PpoTrainer",
    "RolloutBuffer",
    "RoundResult",
    "RunningMeanStd",
    "StepOutcome",
    "TrainedPolicy",
    "TrainerConfig",
    "UpdateStats",
    "VectorizedTrainer",
    "check_resumable",
    "load_trained_policy",
    "added_params",
    "check_reward_config",
    "compute_reward",
    "gae",
    "potential",
]
