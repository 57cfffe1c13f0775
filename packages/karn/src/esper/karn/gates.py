"""Exit gates (Phase 0's, Phase 1's heavy blueprint per topology and surface preference, and Phase 2's overshoot
prunes), measured from the run store's analytics views.

A gate is PASS, FAIL or SKIP (it cannot be judged on what it was given; its note says why). A gate skipped for want of
a control run is not evidence: the report does not pass. A gate that does not apply to the run (`applicable` False:
surface_preference on a run that is not a sublayer lattice, such as every Phase 0 run) is skipped and does not hold
the report back. `esper gates` exits 0 only when the report passes. Thresholds come from the generated
GateThresholds contract.

Definitions (also in docs/karn.md):
- internal_op_share: GROW/SHRINK_INTERNAL decisions / non-WAIT decisions taken while a ladder seed (any seed with an
  internal kind: conv_ladder, lora_ladder, channel_ladder) was live in that environment >= min_internal_op_share. A
  run that never decided with a ladder seed present fails.
- heavy_blueprint: the heavy fixed blueprint of the run's topology (HEAVY_BLUEPRINT: conv_heavy on a CNN, lora_large
  on a transformer); treatment frequency < control's x max_heavy_frequency_ratio (control 0: treatment must be 0
  too, and then there is no reduction to show, so it fails), and ROI (accuracy gain over the host-only baseline per
  1000 added params) not lower: roi_t >= min_roi_ratio x roi_c when roi_c > 0, else roi_t >= roi_c. Treatment and
  control of different topologies fail.
- surface_preference: over the run's non-WAIT decisions whose slot is POST_ATTN or POST_MLP, the POST_ATTN share and
  its 95 % Wilson interval; passes when the interval lies above 0.5 + min_surface_preference or below
  0.5 - min_surface_preference (a preference exists), fails otherwise (no such decision: fails). Skipped when the
  run's enabled slots do not offer both surfaces (fewer than two distinct surfaces: not a lattice run).
- entropy: the longest streak of PPO updates whose op-head entropy is below entropy_collapse_threshold, as a
  fraction of all updates, <= max_collapsed_update_fraction (no PPO updates: passes, nothing can collapse).
- rollbacks: rollbacks per episode <= control's + max_rollback_rate_increase.
- invalid_actions: invalid-action rate <= control's + max_invalid_action_rate_increase.
- overshoot_prunes: overshoot prunes per finished episode (the overshoot_prune_rate view: seeds pruned within
  OVERSHOOT_WINDOW = 5 epochs of first reaching their top internal level) <= control's +
  max_overshoot_prune_increase. Needs a control (SKIP without one); a run without a finished episode fails.
- thrash (per seed, then averaged): internal op density (internal ops / decisions while the seed was live) <=
  max_internal_op_density, reversal rate <= max_reversal_rate, and the net level change converges: over seeds with
  at least two internal ops, mean |net level change| / ops >= min_level_convergence (a level that goes up and
  comes back down again scores 0).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from esper.karn.contracts import GateThresholds
from esper.karn.stats import wilson_interval
from esper.karn.store import OVERSHOOT_WINDOW, RunStore
from esper.leyline import BLUEPRINT_IDS, BlueprintAction, SurfaceType, Topology, assert_covers

# The heavy fixed blueprint of each topology: what a ladder should be preferred to.
HEAVY_BLUEPRINT: Final[Mapping[Topology, BlueprintAction]] = MappingProxyType(
    {Topology.CNN: BlueprintAction.CONV_HEAVY, Topology.TRANSFORMER: BlueprintAction.LORA_LARGE}
)
assert_covers(Topology, HEAVY_BLUEPRINT, consumer="karn gates HEAVY_BLUEPRINT")
# The surface preference gate's two surfaces; the share it reports is the first's.
PREFERENCE_SURFACES: Final = (SurfaceType.POST_ATTN, SurfaceType.POST_MLP)


class GateVerdict(enum.Enum):
    """The outcome of one exit gate (not tolaria's governor Verdict)."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class ExitGateResult:
    """One exit gate of a phase, measured on a run (not leyline's GateResult, a seed's quality gate)."""

    gate: str
    verdict: GateVerdict
    measured: str
    threshold: str
    note: str = ""
    applicable: bool = True  # False: the gate does not apply to this run (a SKIP that does not block `passed`)


@dataclass(frozen=True)
class GateReport:
    run: str
    control: str | None
    results: list[ExitGateResult]

    @property
    def passed(self) -> bool:
        """Every gate that applies to the run passes (a SKIP for want of a control does not)."""
        return all(r.verdict is GateVerdict.PASS or not r.applicable for r in self.results)


@dataclass(frozen=True)
class RunMetrics:
    """The numbers the gates read, from one run's views."""

    internal_op_share: float | None
    ladder_decisions: int
    topology: Topology | None  # None: no TRAINING_STARTED
    heavy_blueprint: str | None  # HEAVY_BLUEPRINT's id for the topology
    heavy_frequency: float
    germinations: int
    surface_decisions: dict[str, int]  # non-WAIT decisions per surface of the enabled slots (surface_usage)
    roi_per_kparam: float | None
    op_entropies: list[float]
    rollbacks_per_episode: float | None
    invalid_action_rate: float | None
    overshoot_prunes: int  # seeds pruned within OVERSHOOT_WINDOW epochs of first reaching their top level
    overshoot_prunes_per_episode: float | None  # None: no finished episode
    mean_internal_op_density: float | None
    mean_reversal_rate: float | None
    level_convergence: float | None


def _topology(store: RunStore) -> Topology | None:
    """The topology of the run's latest training start (None: no TRAINING_STARTED)."""
    run = store.one("SELECT topology FROM runs ORDER BY seq DESC LIMIT 1")
    return None if run is None else Topology(run["topology"])


def measure(store: RunStore) -> RunMetrics:
    share = store.one("SELECT * FROM internal_op_share")
    topology = _topology(store)
    heavy_id = None if topology is None else BLUEPRINT_IDS[HEAVY_BLUEPRINT[topology]]
    heavy = store.one(
        "SELECT coalesce(sum(germinations), 0) AS n, "
        "coalesce(sum(germinations) FILTER (WHERE blueprint_id = ?), 0) AS heavy FROM blueprint_frequency",
        [heavy_id],
    )
    surfaces = store.query("SELECT surface, non_wait_decisions FROM surface_usage").rows
    roi = store.one("SELECT roi_per_kparam FROM roi")
    rollbacks = store.one("SELECT rollbacks_per_episode FROM rollback_rate")
    invalid = store.one("SELECT invalid_action_rate FROM invalid_action_rate")
    overshoot = store.one("SELECT overshoot_prunes, per_episode FROM overshoot_prune_rate")
    thrash = store.one(
        "SELECT avg(internal_op_density) AS density, avg(reversal_rate) AS reversal, "
        "avg(level_convergence) FILTER (WHERE op_count >= 2) AS convergence FROM anti_thrash"
    )
    entropies = store.query("SELECT entropy FROM head_entropies WHERE head = 'op' ORDER BY seq").rows
    assert heavy is not None and thrash is not None  # aggregates without GROUP BY always return one row
    germinations = int(heavy["n"])
    return RunMetrics(
        internal_op_share=None if share is None else share["internal_op_share"],
        ladder_decisions=0 if share is None else int(share["non_wait_decisions_with_ladder"]),
        topology=topology,
        heavy_blueprint=heavy_id,
        heavy_frequency=int(heavy["heavy"]) / germinations if germinations else 0.0,
        germinations=germinations,
        surface_decisions={str(surface): int(n) for surface, n in surfaces},
        roi_per_kparam=None if roi is None else roi["roi_per_kparam"],
        op_entropies=[float(row[0]) for row in entropies],
        rollbacks_per_episode=None if rollbacks is None else rollbacks["rollbacks_per_episode"],
        invalid_action_rate=None if invalid is None else invalid["invalid_action_rate"],
        overshoot_prunes=0 if overshoot is None else int(overshoot["overshoot_prunes"]),
        overshoot_prunes_per_episode=None if overshoot is None else overshoot["per_episode"],
        mean_internal_op_density=thrash["density"],
        mean_reversal_rate=thrash["reversal"],
        level_convergence=thrash["convergence"],
    )


def longest_collapse_fraction(entropies: list[float], threshold: float) -> float:
    longest = streak = 0
    for value in entropies:
        streak = streak + 1 if value < threshold else 0
        longest = max(longest, streak)
    return longest / len(entropies) if entropies else 0.0


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _verdict(ok: bool) -> GateVerdict:
    return GateVerdict.PASS if ok else GateVerdict.FAIL


def gate_internal_op_share(t: RunMetrics, th: GateThresholds) -> ExitGateResult:
    name, bound = "internal_op_share", f">= {th.min_internal_op_share:.3f}"
    if t.internal_op_share is None:
        return ExitGateResult(
            name, GateVerdict.FAIL, "n/a", bound, "no non-WAIT decision was taken with a ladder seed live"
        )
    return ExitGateResult(
        name,
        _verdict(t.internal_op_share >= th.min_internal_op_share),
        f"{t.internal_op_share:.3f} of {t.ladder_decisions} decisions",
        bound,
    )


def _needs_control(name: str, measured: str) -> ExitGateResult:
    return ExitGateResult(name, GateVerdict.SKIP, measured, "needs --control", "no control run given")


def gate_heavy_blueprint(t: RunMetrics, c: RunMetrics | None, th: GateThresholds) -> ExitGateResult:
    name = "heavy_blueprint"
    if c is None:
        return _needs_control(name, f"{t.heavy_blueprint} freq {t.heavy_frequency:.3f}")
    if t.heavy_blueprint is None or t.heavy_blueprint != c.heavy_blueprint:
        return ExitGateResult(
            name,
            GateVerdict.FAIL,
            f"topology {t.topology} vs {c.topology}",
            "same topology",
            "treatment and control must be runs (TRAINING_STARTED) of one topology: their heavy blueprints differ",
        )
    bound = f"{t.heavy_blueprint} freq < {th.max_heavy_frequency_ratio:g} x {c.heavy_frequency:.3f}; ROI not lower"
    measured = (
        f"{t.heavy_blueprint} freq {t.heavy_frequency:.3f} vs {c.heavy_frequency:.3f}; "
        f"ROI {_fmt(t.roi_per_kparam)} vs {_fmt(c.roi_per_kparam)}"
    )
    lower = t.heavy_frequency < th.max_heavy_frequency_ratio * c.heavy_frequency
    if t.roi_per_kparam is None or c.roi_per_kparam is None:
        return ExitGateResult(
            name, GateVerdict.FAIL, measured, bound, "ROI needs a host-only baseline and added parameters in both runs"
        )
    if c.roi_per_kparam > 0:
        roi_ok = t.roi_per_kparam >= th.min_roi_ratio * c.roi_per_kparam
    else:
        roi_ok = t.roi_per_kparam >= c.roi_per_kparam
    note = "" if lower else f"{t.heavy_blueprint} not selected less often than in the control"
    if not roi_ok:
        note = (note + "; " if note else "") + "lower ROI than the control"
    return ExitGateResult(name, _verdict(lower and roi_ok), measured, bound, note)


def gate_surface_preference(t: RunMetrics, th: GateThresholds) -> ExitGateResult:
    name = "surface_preference"
    first, second = (surface.name for surface in PREFERENCE_SURFACES)
    margin = th.min_surface_preference
    bound = f"95 % CI of the {first} share outside [{0.5 - margin:.3f}, {0.5 + margin:.3f}]"
    if not {first, second} <= t.surface_decisions.keys():
        surfaces = " ".join(t.surface_decisions) or "none"
        note = f"not a lattice run: its enabled slots do not offer both {first} and {second} (surfaces: {surfaces})"
        return ExitGateResult(name, GateVerdict.SKIP, f"surfaces {surfaces}", bound, note, applicable=False)
    k, n = t.surface_decisions[first], t.surface_decisions[first] + t.surface_decisions[second]
    if n == 0:
        return ExitGateResult(name, GateVerdict.FAIL, "n 0", bound, f"no non-WAIT decision on a {first}/{second} slot")
    low, high = wilson_interval(k, n)
    preferred = low > 0.5 + margin or high < 0.5 - margin
    measured = f"{first} share {k / n:.3f} (95 % CI {low:.3f}-{high:.3f}, n {n})"
    note = "" if preferred else "no preference: the interval reaches an even split"
    return ExitGateResult(name, _verdict(preferred), measured, bound, note)


def gate_entropy(entropies: list[float], th: GateThresholds, source: str = "") -> ExitGateResult:
    """`entropies`: the op head's entropy per PPO update, of the run itself or (`source` says so) of the training
    run whose policy an evaluation run acts with."""
    name = "no_entropy_collapse"
    bound = f"collapsed streak <= {th.max_collapsed_update_fraction:.2f} (op entropy < {th.entropy_collapse_threshold})"
    if not entropies:
        return ExitGateResult(name, GateVerdict.PASS, "no PPO updates", bound, "nothing to collapse")
    fraction = longest_collapse_fraction(entropies, th.entropy_collapse_threshold)
    return ExitGateResult(
        name,
        _verdict(fraction <= th.max_collapsed_update_fraction),
        f"{fraction:.2f} of {len(entropies)} updates (min {min(entropies):.3f})",
        bound,
        source,
    )


def gate_rollbacks(t: RunMetrics, c: RunMetrics | None, th: GateThresholds) -> ExitGateResult:
    name = "no_rollback_rise"
    if c is None:
        return _needs_control(name, f"{_fmt(t.rollbacks_per_episode)} per episode")
    if t.rollbacks_per_episode is None or c.rollbacks_per_episode is None:
        return ExitGateResult(name, GateVerdict.FAIL, "n/a", "", "a run has no finished episode")
    bound = f"<= {c.rollbacks_per_episode:.3f} + {th.max_rollback_rate_increase:g}"
    ok = t.rollbacks_per_episode <= c.rollbacks_per_episode + th.max_rollback_rate_increase
    return ExitGateResult(name, _verdict(ok), f"{t.rollbacks_per_episode:.3f} per episode", bound)


def gate_invalid_actions(t: RunMetrics, c: RunMetrics | None, th: GateThresholds) -> ExitGateResult:
    name = "invalid_action_rate"
    if c is None:
        return _needs_control(name, _fmt(t.invalid_action_rate))
    if t.invalid_action_rate is None or c.invalid_action_rate is None:
        return ExitGateResult(name, GateVerdict.FAIL, "n/a", "", "a run has no decisions")
    bound = f"<= {c.invalid_action_rate:.3f} + {th.max_invalid_action_rate_increase:g}"
    ok = t.invalid_action_rate <= c.invalid_action_rate + th.max_invalid_action_rate_increase
    return ExitGateResult(name, _verdict(ok), f"{t.invalid_action_rate:.3f}", bound)


def gate_overshoot_prunes(t: RunMetrics, c: RunMetrics | None, th: GateThresholds) -> ExitGateResult:
    name = "overshoot_prunes"
    measured = f"{_fmt(t.overshoot_prunes_per_episode)} per episode ({t.overshoot_prunes} overshoot prunes)"
    if c is None:
        return _needs_control(name, measured)
    if t.overshoot_prunes_per_episode is None or c.overshoot_prunes_per_episode is None:
        return ExitGateResult(name, GateVerdict.FAIL, measured, "", "a run has no finished episode")
    bound = f"<= {c.overshoot_prunes_per_episode:.3f} + {th.max_overshoot_prune_increase:g}"
    ok = t.overshoot_prunes_per_episode <= c.overshoot_prunes_per_episode + th.max_overshoot_prune_increase
    note = "" if ok else f"more seeds pruned within {OVERSHOOT_WINDOW} epochs of reaching their top level"
    return ExitGateResult(name, _verdict(ok), measured, bound, note)


def gate_thrash(t: RunMetrics, th: GateThresholds) -> ExitGateResult:
    name = "bounded_thrash"
    bound = (
        f"density <= {th.max_internal_op_density:g}, reversal <= {th.max_reversal_rate:g}, "
        f"convergence >= {th.min_level_convergence:g}"
    )
    if t.mean_internal_op_density is None or t.mean_reversal_rate is None:
        return ExitGateResult(name, GateVerdict.PASS, "no internal ops", bound, "nothing to thrash")
    measured = (
        f"density {t.mean_internal_op_density:.3f}, reversal {t.mean_reversal_rate:.3f}, "
        f"convergence {_fmt(t.level_convergence)}"
    )
    problems = []
    if t.mean_internal_op_density > th.max_internal_op_density:
        problems.append("op density too high")
    if t.mean_reversal_rate > th.max_reversal_rate:
        problems.append("levels reverse too often")
    if t.level_convergence is not None and t.level_convergence < th.min_level_convergence:
        problems.append("levels oscillate instead of converging")
    return ExitGateResult(name, _verdict(not problems), measured, bound, "; ".join(problems))


def evaluate(
    run: RunStore,
    control: RunStore | None = None,
    thresholds: GateThresholds | None = None,
    training: RunStore | None = None,
) -> GateReport:
    """The exit gates of `run` (against `control`). `training`: for an evaluation run (a trained policy acting
    without learning), the PPO run that trained it: its updates are what the entropy gate judges."""
    th = thresholds if thresholds is not None else GateThresholds()
    t = measure(run)
    c = measure(control) if control is not None else None
    if training is None:
        entropy = gate_entropy(t.op_entropies, th)
    else:
        entropy = gate_entropy(measure(training).op_entropies, th, f"read from the training run {training.run_dir}")
    results = [
        gate_internal_op_share(t, th),
        gate_heavy_blueprint(t, c, th),
        gate_surface_preference(t, th),
        entropy,
        gate_rollbacks(t, c, th),
        gate_invalid_actions(t, c, th),
        gate_overshoot_prunes(t, c, th),
        gate_thrash(t, th),
    ]
    return GateReport(str(run.run_dir), None if control is None else str(control.run_dir), results)
