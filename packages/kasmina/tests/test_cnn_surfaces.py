"""The CNN's surfaces (Phase 2): the lattice in forward order, a PRE_POOL point that sees its block's output at full
resolution before the pool runs, a POST_POOL point that sees the pooled tensor, and dormant slots that change
nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kasmina_recording import RecordingSlot

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.hosts import ConvBlock
from esper.leyline import SurfaceType, TelemetryHub

PRE, POST = SurfaceType.PRE_POOL, SurfaceType.POST_POOL
SIZE = 16
LATTICE = ["r0c0", "r1c0", "r0c1", "r1c1", "r0c2"]


def host_for(seed: int = 0) -> CNNHost:
    torch.manual_seed(seed)
    host = CNNHost(
        CnnHostConfig(in_channels=2, image_size=SIZE, num_classes=5, base_channels=4, num_blocks=3, pool_layers=2)
    )
    with torch.no_grad():  # batch-norm statistics off their init, so eval mode is not a plain affine identity
        for module in host.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    host.eval()
    return host


def images(seed: int = 1) -> torch.Tensor:
    return torch.randn(3, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def unrolled(
    host: CNNHost, x: torch.Tensor, shifts: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The forward pass spelled out from the host's own blocks: {slot id: the tensor at that point} and the logits.
    `shifts[slot_id]` is added to the stream at that point (what a slot there does) before the forward goes on."""
    blocks = [op for op in host.ops if isinstance(op, ConvBlock)]
    assert len(blocks) == 3
    seen = {}
    for i, block in enumerate(blocks):
        x = torch.relu(block.norm(block.conv(x)))
        seen[f"r0c{i}"] = x
        x = x + shifts[f"r0c{i}"] if f"r0c{i}" in shifts else x
        if i < 2:
            x = F.max_pool2d(x, 2)
            seen[f"r1c{i}"] = x
            x = x + shifts[f"r1c{i}"] if f"r1c{i}" in shifts else x
    logits: torch.Tensor = host.head.linear(x.mean(dim=(2, 3)))
    return seen, logits


def test_the_lattice_is_numbered_in_forward_order() -> None:
    host = host_for()
    specs = host.injection_specs()
    assert [(s.slot_id, s.order, s.surface) for s in specs] == [
        ("r0c0", 0, PRE),
        ("r1c0", 1, POST),
        ("r0c1", 2, PRE),
        ("r1c1", 3, POST),
        ("r0c2", 4, PRE),
    ]
    assert [s.position for s in specs] == pytest.approx([k / 5 for k in range(1, 6)])
    assert [s.channels for s in specs] == [4, 4, 8, 8, 16]
    assert host.execution_order() == tuple(LATTICE)  # execution order == action order
    # ops are [block_0, pool_0, block_1, pool_1, block_2]: a pre-pool point sits between a block and its pool
    assert [host.position(s) for s in LATTICE] == [1, 2, 3, 4, 5]
    assert [type(op) for op in host.ops] == [ConvBlock, torch.nn.MaxPool2d, ConvBlock, torch.nn.MaxPool2d, ConvBlock]
    model = MorphogeneticModel(host, list(reversed(LATTICE)), TelemetryHub("r").emitter(0))
    assert model.slot_order == model.execution == tuple(LATTICE)
    assert [model.slot(s).surface for s in LATTICE] == [PRE, POST, PRE, POST, PRE]


def test_every_point_sees_its_tensor_at_its_resolution() -> None:
    """PRE_POOL r0c{i} sees block i's output at full resolution (H / 2^i, before its pool); POST_POOL r1c{i} sees
    the pooled tensor (H / 2^(i+1)); each equal, bit for bit, to the hand-unrolled forward."""
    host = host_for()
    model = MorphogeneticModel(host, LATTICE, TelemetryHub("r").emitter(0))
    model.eval()
    recorders = {s: RecordingSlot(model.slot(s), None) for s in LATTICE}
    for slot_id, recorder in recorders.items():
        model.slots[slot_id] = recorder
    x = images()
    seen, logits = unrolled(host, x, {})
    assert torch.equal(model(x), logits)
    for i in range(3):
        (pre,) = recorders[f"r0c{i}"].seen
        assert pre.shape[-2:] == (SIZE // 2**i, SIZE // 2**i)
        assert torch.equal(pre, seen[f"r0c{i}"])
    for i in range(2):
        (post,) = recorders[f"r1c{i}"].seen
        assert post.shape[-2:] == (SIZE // 2 ** (i + 1), SIZE // 2 ** (i + 1))
        assert torch.equal(post, seen[f"r1c{i}"])
        assert torch.equal(post, F.max_pool2d(recorders[f"r0c{i}"].seen[0], 2))


@pytest.mark.parametrize("target", LATTICE)
def test_a_slots_output_is_what_the_rest_of_the_network_receives(target: str) -> None:
    """A slot that adds a per-pixel shift: at a PRE_POOL point the pool runs on the shifted tensor (max-pooling
    does not commute with the shift, so a pool that ran before the slot would give other logits)."""
    host = host_for()
    model = MorphogeneticModel(host, LATTICE, TelemetryHub("r").emitter(0))
    model.eval()
    spec = next(s for s in host.injection_specs() if s.slot_id == target)
    x = images()
    clean, _ = unrolled(host, x, {})
    shift = torch.randn(clean[target].shape[1:], generator=torch.Generator().manual_seed(2))
    recorders = {s: RecordingSlot(model.slot(s), shift if s == target else None) for s in LATTICE}
    for slot_id, recorder in recorders.items():
        model.slots[slot_id] = recorder
    seen, logits = unrolled(host, x, {target: shift})
    assert torch.equal(model(x), logits)
    for slot_id, recorder in recorders.items():
        assert torch.equal(recorder.seen[0], seen[slot_id]), slot_id
    assert not torch.equal(logits, host(x))  # the shift did reach the output
    if spec.surface is PRE and target != "r0c2":  # a shift applied after the pool instead gives other logits
        col = target[-1]
        _, after_pool = unrolled(host, x, {f"r1c{col}": F.max_pool2d(shift.unsqueeze(0), 2)[0]})
        assert not torch.equal(logits, after_pool)


def test_dormant_slots_change_nothing_bit_for_bit() -> None:
    host = host_for()
    model = MorphogeneticModel(host, LATTICE, TelemetryHub("r").emitter(0))
    model.eval()
    x = images()
    _, logits = unrolled(host, x, {})
    assert torch.equal(host(x), logits)
    assert torch.equal(model(x), logits)
    out = model(x, incubate=True)
    assert out.incubation_logits is None and torch.equal(out.logits, logits)
