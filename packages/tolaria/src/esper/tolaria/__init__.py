"""Tolaria: tasks and their data, the morphogenetic training environment, and the governor.

Its contracts (task config) are generated into `esper.tolaria.contracts` and re-exported here.
"""

from esper.tolaria.contracts import *  # noqa: F403
from esper.tolaria.contracts import __all__ as CONTRACT_NAMES
from esper.tolaria.data import DataError, TensorData
from esper.tolaria.environment import ActionResult, Environment, StepResult, step_optimizers, step_together
from esper.tolaria.governor import Governor, GovernorConfig, Verdict
from esper.tolaria.tasks import COUNTERFACTUAL_SAMPLES, TASKS, TaskSpec, get_task

__all__ = [
    *CONTRACT_NAMES,
    "CONTRACT_NAMES",
    "COUNTERFACTUAL_SAMPLES",
    "TASKS",
    "ActionResult",
    "DataError",
    "Environment",
    "Governor",
    "GovernorConfig",
    "StepResult",
    "TaskSpec",
    "TensorData",
    "Verdict",
    "get_task",
    "step_optimizers",
    "step_together",
]
