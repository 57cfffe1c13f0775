"""Tolaria: tasks, the morphogenetic training environment and the governor.

Its contracts are generated into `esper.tolaria.contracts` and re-exported here.
"""

from esper.tolaria.contracts import *  # noqa: F403
from esper.tolaria.contracts import __all__ as __all__
