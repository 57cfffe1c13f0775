"""Simic: rewards, PPO and the vectorized trainer.

Its contracts are generated into `esper.simic.contracts` and re-exported here.
"""

from esper.simic.contracts import *  # noqa: F403
from esper.simic.contracts import __all__ as __all__
