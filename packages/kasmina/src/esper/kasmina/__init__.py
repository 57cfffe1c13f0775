"""Kasmina: hosts, seed slots, blueprints and ladder seeds (mechanics land with the Kasmina issue).

Its contracts (host configs) are generated into `esper.kasmina.contracts` and re-exported here.
"""

from esper.kasmina.contracts import *  # noqa: F403
from esper.kasmina.contracts import __all__ as __all__
