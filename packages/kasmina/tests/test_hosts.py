from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.kasmina import CNNHost, HostProtocol, MorphogeneticModel, TransformerHost
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import SurfaceType, TelemetryHub, parse_slot_id

SURFACES = (SurfaceType.PRE_POOL, SurfaceType.POST_POOL)


def check_specs(host: HostProtocol) -> None:
    specs = host.injection_specs()
    assert [s.order for s in specs] == list(range(len(specs)))  # strictly increasing, each exactly once
    assert len({s.slot_id for s in specs}) == len(specs)
    assert sorted(host.execution_order()) == sorted(s.slot_id for s in specs)
    positions = [host.position(s) for s in host.execution_order()]
    assert positions == sorted(positions)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(0, 4), st.sampled_from([4, 8]))
def test_cnn_specs_cover_every_point_once(blocks: int, pools: int, base: int) -> None:
    pools = min(pools, blocks, 3)
    host = CNNHost(
        CnnHostConfig(
            in_channels=1, image_size=8, num_classes=3, base_channels=base, num_blocks=blocks, pool_layers=pools
        )
    )
    check_specs(host)
    specs = host.injection_specs()
    # forward order: each block's pre-pool point, then (when it pools) its post-pool point
    forward = [
        (f"r{row}c{block}", surface)
        for block in range(blocks)
        for row, surface in enumerate(SURFACES[: 1 + (block < pools)])
    ]
    assert [(s.slot_id, s.surface) for s in specs] == forward
    assert host.execution_order() == tuple(s.slot_id for s in specs)
    assert [s.position for s in specs] == pytest.approx([(k + 1) / (blocks + pools) for k in range(blocks + pools)])
    assert all(parse_slot_id(s.slot_id)[0] == (0 if s.surface is SurfaceType.PRE_POOL else 1) for s in specs)
    assert host(torch.randn(2, 1, 8, 8)).shape == (2, 3)


TRANSFORMER_LAYOUTS = [
    (SurfaceType.BLOCK_END,),
    (SurfaceType.POST_ATTN,),
    (SurfaceType.POST_MLP,),
    (SurfaceType.POST_ATTN, SurfaceType.POST_MLP),
]


@settings(max_examples=16, deadline=None)
@given(st.integers(1, 4), st.sampled_from(TRANSFORMER_LAYOUTS))
def test_transformer_specs_and_causality(layers: int, surfaces: tuple[SurfaceType, ...]) -> None:
    torch.manual_seed(0)
    host = TransformerHost(
        TransformerHostConfig(vocab_size=11, block_size=8, n_layer=layers, n_head=2, n_embd=8, surfaces=surfaces)
    )
    check_specs(host)
    assert host.head.lm_head.weight is host.token_embedding.weight
    tokens = torch.randint(0, 11, (2, 6))
    logits = host(tokens)
    assert logits.shape == (2, 6, 11)
    changed = tokens.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 11
    assert torch.allclose(host(changed)[:, :4], logits[:, :4], atol=1e-6)


def test_cnn_action_order_is_the_forward_order() -> None:
    host = CNNHost(
        CnnHostConfig(in_channels=1, image_size=8, num_classes=3, base_channels=4, num_blocks=2, pool_layers=2)
    )
    assert [(s.slot_id, s.order) for s in host.injection_specs()] == [
        ("r0c0", 0),
        ("r1c0", 1),
        ("r0c1", 2),
        ("r1c1", 3),
    ]
    assert host.execution_order() == ("r0c0", "r1c0", "r0c1", "r1c1")


def test_bad_configs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="pool_layers"):
        CNNHost(CnnHostConfig(num_blocks=2, pool_layers=3))
    with pytest.raises(ValueError, match="multiple of n_head"):
        TransformerHost(TransformerHostConfig(vocab_size=5, n_embd=10, n_head=4))


@pytest.mark.parametrize("topology", ["cnn", "transformer"])
def test_dormant_model_equals_the_bare_host(topology: str) -> None:
    torch.manual_seed(1)
    if topology == "cnn":
        host: torch.nn.Module = CNNHost(CnnHostConfig(in_channels=1, image_size=8, num_classes=3, base_channels=4))
        inputs = torch.randn(3, 1, 8, 8)
    else:
        host = TransformerHost(TransformerHostConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=8))
        inputs = torch.randint(0, 11, (3, 6))
    assert isinstance(host, HostProtocol)
    slots = [s.slot_id for s in host.injection_specs()]
    model = MorphogeneticModel(host, slots, TelemetryHub("r").emitter(0))
    host.eval()
    assert torch.equal(model(inputs), host(inputs))


def test_model_rejects_unknown_slots() -> None:
    host = CNNHost(CnnHostConfig(in_channels=1, image_size=8, num_classes=3, base_channels=4))
    with pytest.raises(ValueError, match=r"host has no slot\(s\) \['r5c0'\]"):
        MorphogeneticModel(host, ["r0c0", "r5c0"], TelemetryHub("r").emitter(0))
