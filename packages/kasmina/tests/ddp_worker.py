"""One rank of the DDP-symmetry test (run as a script by test_ddp.py): each rank gets a different local view of
the same ladder seed (conv_ladder or channel_ladder on a CNN host, or lora_ladder on the transformer's
post-attention point), and the lifecycle and internal-level decisions must still come out identical."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from esper.kasmina import (
    CNNHost,
    GateThresholds,
    MorphogeneticModel,
    QualityGates,
    TransformerHost,
    cross_entropy,
    data_parallel,
)
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import (
    AlphaMode,
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    ListSink,
    SeedInternalLevelChangedPayload,
    SurfaceType,
    TelemetryHub,
)


def build(ladder: str) -> tuple[torch.nn.Module, BlueprintAction, torch.Tensor, torch.Tensor]:
    """(host, ladder blueprint, inputs, targets) for the ladder under test (conv_ladder, channel_ladder: a CNN whose
    r0c0 has 4 channels, so channel_ladder has 4 groups of 2; lora_ladder: the transformer lattice)."""
    if ladder in ("conv_ladder", "channel_ladder"):
        config = CnnHostConfig(in_channels=1, image_size=8, num_classes=3, base_channels=4, num_blocks=2, pool_layers=2)
        blueprint = BlueprintAction[ladder.upper()]
        return CNNHost(config), blueprint, torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    assert ladder == "lora_ladder", ladder
    surfaces = (SurfaceType.POST_ATTN, SurfaceType.POST_MLP)
    lattice = TransformerHostConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, surfaces=surfaces)
    inputs, targets = torch.randint(0, 11, (4, 6)), torch.randint(0, 11, (4, 6))
    return TransformerHost(lattice), BlueprintAction.LORA_LADDER, inputs, targets


def main(rank: int, world: int, port: int, out: str, ladder_name: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    host, ladder, x, y = build(ladder_name)
    gates = QualityGates(thresholds=GateThresholds(min_training_epochs=5))
    sink = ListSink()
    model = MorphogeneticModel(
        host,
        ["r0c0", "r0c1"],
        TelemetryHub(f"rank{rank}", sinks=(sink,)).emitter(0),
        gates=gates,
        symmetry=data_parallel(),
    )
    slot = model.slot("r0c0")
    slot.germinate(ladder, "s0", GerminationStyle.LINEAR_ADD, 2, 1.0, model.host_param_count())
    slot.advance()  # G1 on both ranks
    _, loss = model(x, incubate=True).losses(cross_entropy, y)
    loss.backward()
    model.record_gradients()
    log = []

    # 1. G2: rank 0 has trained long enough, rank 1 believes it has not.
    slot.state.epochs_in_stage = 10 if rank == 0 else 0
    log.append(("advance_to_blending", slot.advance().passed, slot.stage.name))

    # 2. Internal level: rank 1's local level drifted to 3; rank 0 proposes 1 -> 2.
    if rank == 1:
        slot.seed.set_internal_level(3)
    log.append(("grow", slot.change_internal_level(LifecycleOp.GROW_INTERNAL), slot.seed.internal_level))

    # 3. G3: rank 1 thinks alpha arrived, rank 0 knows it has not.
    if rank == 1:
        slot.state.alpha.alpha, slot.state.alpha.mode = 1.0, AlphaMode.HOLD
    log.append(("advance_to_holding", slot.advance().passed, slot.stage.name))

    with open(out, "w") as f:
        report = slot.report()
        changes = [e.payload for e in sink.events if isinstance(e.payload, SeedInternalLevelChangedPayload)]
        levels = [(p.to_level, p.group_size) for p in changes]  # from_level is each rank's own local level
        json.dump(
            {
                "stage": slot.stage.name,
                "level": slot.seed.internal_level,
                "report": [report.internal_level, report.internal_group_size, report.internal_active_params],
                "level_events": levels,
                "log": log,
            },
            f,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    # End without the interpreter's teardown, as the CLI ends a torchrun rank (esper.simic.exit_rank): gloo's C++
    # threads can abort a process in its destructors at a normal exit.
    sys.stdout.flush()
    os._exit(0)
