"""Karn: telemetry sinks, run store, analytics, gates and dashboards. Never imports torch.

Its contracts (run summary, gate thresholds) are generated into `esper.karn.contracts` and re-exported here.
"""

from esper.karn.contracts import *  # noqa: F403
from esper.karn.contracts import __all__ as CONTRACT_NAMES
from esper.karn.eventlog import EventLog, EventTail, TornTail, read_event_log
from esper.karn.gates import ExitGateResult, GateReport, GateVerdict, evaluate
from esper.karn.sinks import JsonlSink, read_events, rewind_to_checkpoint
from esper.karn.stats import format_mean_ci, mean_ci
from esper.karn.store import (
    OVERSHOOT_WINDOW,
    VIEW_FOR_EVENT,
    VIEWS,
    QueryError,
    QueryResult,
    RunStore,
    list_run_dirs,
)

__all__ = [
    *CONTRACT_NAMES,
    "EventLog",
    "EventTail",
    "ExitGateResult",
    "GateReport",
    "GateVerdict",
    "JsonlSink",
    "OVERSHOOT_WINDOW",
    "QueryError",
    "QueryResult",
    "RunStore",
    "TornTail",
    "VIEWS",
    "VIEW_FOR_EVENT",
    "evaluate",
    "format_mean_ci",
    "list_run_dirs",
    "mean_ci",
    "read_event_log",
    "read_events",
    "rewind_to_checkpoint",
]
