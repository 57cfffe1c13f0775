"""Tamiyo: Obs V3 features, action masks and policies.

Its contracts are generated into `esper.tamiyo.contracts` and re-exported here.
"""

from esper.tamiyo.contracts import *  # noqa: F403
from esper.tamiyo.contracts import __all__ as __all__
