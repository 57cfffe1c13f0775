"""Sampling noise of a counterfactual contribution measured on a fixed validation subset instead of the whole set.

A contribution is the mean over validation samples of d_i = [correct with the seed] - [correct without it]. On a
random subset of m of the N samples its standard deviation is 100 * sqrt(S^2 * (1/m - 1/N)) points (S^2: the
variance of d over the N samples); against the contribution on unlimited data it is 100 * sqrt(S^2 / m). This
measures S^2 on real seeds: the digits task in the real Environment, three conv_light seeds germinated at its three
default slots and driven to blending, then every epoch each contributing seed's d_i over the whole validation set
(the seed switched off in its own full pass). Reports the noise at several subset sizes, the default's included."""

from __future__ import annotations

import argparse
import statistics

import torch

from esper.leyline import BlueprintAction, LifecycleOp, SeedStage, TelemetryHub, canonical_action
from esper.tolaria import COUNTERFACTUAL_SAMPLES, Environment, get_task

S = SeedStage


def scripted(env: Environment) -> LifecycleOp:
    """The next step of the script: advance the first seed short of blending, else germinate the next empty slot."""
    for index, slot_id in enumerate(env.slot_ids):
        stage = env.model.slot(slot_id).stage
        if stage is S.DORMANT:
            env.step(canonical_action(LifecycleOp.GERMINATE, index, BlueprintAction.CONV_LIGHT))
            return LifecycleOp.GERMINATE
        if stage in (S.GERMINATED, S.TRAINING):
            env.step(canonical_action(LifecycleOp.ADVANCE, index))
            return LifecycleOp.ADVANCE
    env.step(canonical_action(LifecycleOp.WAIT))
    return LifecycleOp.WAIT


def per_sample_differences(env: Environment, slot_id: str) -> torch.Tensor:
    """d_i over the whole validation set for one seed: correct with it minus correct with it switched off."""
    model, slot = env.model, env.model.slot(slot_id)
    assert slot.state is not None
    model.eval()
    with torch.no_grad():
        on = (model(env.data.val_x).argmax(-1) == env.data.val_y).float()
        saved, slot.state.alpha.alpha = slot.state.alpha.alpha, 0.0
        off = (model(env.data.val_x).argmax(-1) == env.data.val_y).float()
        slot.state.alpha.alpha = saved
    return on - off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    task = get_task("digits")
    data = task.load(None)
    variances, contributions = [], []
    for seed in args.seeds:
        env = Environment(
            task, data, tuple(task.config.default_slots), TelemetryHub("n").emitter(0), seed, torch.device("cpu")
        )
        env.reset(0)
        for _ in range(args.epochs):
            scripted(env)
            for slot in env.model.iter_slots():
                if slot.counterfactual_eligible():
                    d = per_sample_differences(env, slot.slot_id)
                    variances.append(float(d.var()))
                    contributions.append(100.0 * float(d.mean()))
    n = len(data.val_x)
    s2 = statistics.mean(variances)
    print(
        f"counterfactual_noise: digits, {len(args.seeds)} run(s) x {args.epochs} epochs, {len(variances)} measured "
        f"contributions over N = {n} validation samples: mean |contribution| "
        f"{statistics.mean(abs(c) for c in contributions):.2f} points, mean S^2 {s2:.4f}"
    )
    for m in (64, 128, 256):
        print(f"  subset {m:4d} of {n}: SD {100 * (s2 * (1 / m - 1 / n)) ** 0.5:.2f} points vs the whole set")
    m = COUNTERFACTUAL_SAMPLES
    noise = 100 * (s2 / m) ** 0.5
    print(f"BENCH contribution noise on the default subset ({m} samples, vs unlimited data) | {noise:.2f} pt | stated")


if __name__ == "__main__":
    main()
