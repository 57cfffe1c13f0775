"""Environment-steps per second of the vectorized PPO trainer vs the number of environments (one process, digits,
one round of 20 epochs per environment after a warm-up round; the environments step together, their hosts trained as
one stacked computation), 8 environments against 1 (issue 19: >= 2.0x), and the PPO update's time per round and
share of it (DESIGN.md section 7: <= 10 % of the round)."""

from __future__ import annotations

import argparse

import torch

from esper.leyline import TelemetryHub, Topology, blueprints_for, slot_config
from esper.simic import PpoConfig, RewardConfig, TrainerConfig, VectorizedTrainer
from esper.tamiyo import LstmPolicyConfig, MaskConfig
from esper.tolaria import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    task = get_task("digits")
    data = task.load(None)
    slots = tuple(task.config.default_slots)
    shares, rates = [], {}
    print(f"env_scaling: digits, {args.epochs} epochs per round, torch threads {torch.get_num_threads()}")
    for n in args.envs:
        config = TrainerConfig(
            task=task,
            slots=slot_config(task.build_host().injection_specs(), slots),
            masks=MaskConfig(slots, Topology.CNN, blueprints_for(Topology.CNN)),
            n_envs=n,
            episode_length=args.epochs,
            seed=0,
            device=torch.device("cpu"),
            ppo=PpoConfig(),
            reward=RewardConfig(),
            policy=LstmPolicyConfig(),
        )
        trainer = VectorizedTrainer(config, data, TelemetryHub("bench"))
        trainer.run_round()  # warm-up
        result = trainer.run_round()
        assert result is not None  # no stop request: every round finishes
        rate = n * args.epochs / result.round_seconds
        share = result.update_seconds / result.round_seconds
        shares.append(share)
        rates[n] = rate
        print(
            f"  {n} env(s): {rate:6.1f} env-steps/s, round {result.round_seconds:.2f} s, PPO update "
            f"{result.update_seconds:.3f} s ({share:.1%})"
        )
        print(f"BENCH env-steps/s with {n} env(s) (one process) | {rate:.1f} | grows with envs")
    if 1 in rates and 8 in rates:
        print(f"BENCH env-steps/s, 8 environments vs 1 (one process) | {rates[8] / rates[1]:.2f}x | >= 2.0x")
    print(f"BENCH PPO update share of a round (worst of {args.envs}) | {max(shares):.1%} | <= 10%")


if __name__ == "__main__":
    main()
