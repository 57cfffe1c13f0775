"""What incubation does to a seed: |delta| / |x| at its slot and the training loss, epoch by epoch.

    uv run python tools/incubation_probe.py --task digits_narrow --blueprint conv_heavy --seeds 0 1 2

One environment per seed: the host trains alone for --host-epochs, a seed germinates in --slot and is advanced to
TRAINING, incubates for the gate's minimum, is advanced to BLENDING and blends for --blend-epochs. Every epoch prints
the stage, the epoch's training loss, the validation accuracy and the seed's |delta| / |x| on the validation images
(the ratio of norms of what the seed adds and what reaches it). The last lines give, per seed, the largest ratio
during incubation and the training loss of the first epoch trained with alpha > 0 over the last incubation epoch's.
"""

from __future__ import annotations

import argparse
import sys

import torch

from esper.kasmina import GateThresholds, QualityGates
from esper.leyline import BlueprintAction, LifecycleOp, SeedStage, TelemetryHub, canonical_action
from esper.tolaria import Environment, get_task

WAIT = canonical_action(LifecycleOp.WAIT)


def probe(args: argparse.Namespace, seed: int) -> tuple[float, float]:
    task = get_task(args.task)
    slots = tuple(task.config.default_slots)
    slot_index = slots.index(args.slot)
    gates = QualityGates(thresholds=GateThresholds(min_training_epochs=args.incubation_epochs))
    env = Environment(task, task.load(None), slots, TelemetryHub("probe").emitter(0), seed, torch.device("cpu"), gates)
    env.reset(0)
    blueprint = BlueprintAction[args.blueprint.upper()]
    plan = (
        [WAIT] * args.host_epochs
        + [canonical_action(LifecycleOp.GERMINATE, slot_index, blueprint)]
        + [canonical_action(LifecycleOp.ADVANCE, slot_index)]
        + [WAIT] * (args.incubation_epochs - 1)
        + [canonical_action(LifecycleOp.ADVANCE, slot_index)]
        + [WAIT] * args.blend_epochs
    )
    worst, last_incubation, first_blend = 0.0, float("nan"), float("nan")
    for action in plan:
        trained_alpha = env.model.slot(args.slot).alpha  # the amplitude this epoch trains with
        step = env.step(action)
        slot = env.model.slot(args.slot)
        measured = slot.delta_ratio() if slot.seed is not None else None
        ratio = float("nan") if measured is None else measured
        train_loss = step.signals.metrics.train_loss
        print(
            f"seed {seed} epoch {env.epoch:3d} {slot.stage.name:10s} alpha {slot.alpha:.2f} train loss {train_loss:.3f}"
            f" val acc {step.validation.accuracy:5.1f} |delta|/|x| {ratio:.3g}"
            + ("  (rolled back)" if step.rolled_back else "")
        )
        if slot.stage is SeedStage.TRAINING:
            worst, last_incubation = max(worst, ratio), train_loss
        elif trained_alpha > 0.0 and first_blend != first_blend:  # NaN: not yet recorded
            first_blend = train_loss
    return worst, first_blend / last_incubation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits_narrow")
    parser.add_argument("--slot", default="r0c0")
    parser.add_argument("--blueprint", default="conv_heavy")
    parser.add_argument("--host-epochs", type=int, default=5)
    parser.add_argument("--incubation-epochs", type=int, default=10)
    parser.add_argument("--blend-epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    results = [probe(args, seed) for seed in args.seeds]
    for seed, (worst, ratio) in zip(args.seeds, results, strict=True):
        print(f"seed {seed}: max |delta|/|x| in incubation {worst:.3g}; first blend / last incubation loss {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
