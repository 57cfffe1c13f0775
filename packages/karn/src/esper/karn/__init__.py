"""Karn: telemetry sinks, run store, analytics, gates and dashboards. Never imports torch.

Its contracts (run summary, gate thresholds) are generated into `esper.karn.contracts` and re-exported here.
"""

from esper.karn.contracts import *  # noqa: F403
from esper.karn.contracts import __all__ as CONTRACT_NAMES
from esper.karn.sinks import JsonlSink, read_events, repair_torn_tail

__all__ = [*CONTRACT_NAMES, "JsonlSink", "read_events", "repair_torn_tail"]
