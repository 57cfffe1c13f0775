"""The transformer's sublayer lattice: which points a surface layout exposes, where they sit in the forward pass,
and that the one routing path computes the same network for every layout."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from kasmina_recording import RecordingSlot

from esper.kasmina import AttentionSublayer, MlpSublayer, MorphogeneticModel, TransformerHost
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import SurfaceType, TelemetryHub, parse_slot_id

ATTN, MLP, END = SurfaceType.POST_ATTN, SurfaceType.POST_MLP, SurfaceType.BLOCK_END
LATTICE = (ATTN, MLP)


def config(surfaces: tuple[SurfaceType, ...] | list[SurfaceType], n_layer: int = 3) -> TransformerHostConfig:
    return TransformerHostConfig(
        vocab_size=13, block_size=8, n_layer=n_layer, n_head=2, n_embd=8, dropout=0.0, surfaces=surfaces
    )


def host_for(surfaces: tuple[SurfaceType, ...], n_layer: int = 3, seed: int = 0) -> TransformerHost:
    torch.manual_seed(seed)
    host = TransformerHost(config(surfaces, n_layer))
    host.eval()
    return host


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 13, (3, 7), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the forward pass, spelled out
def attention_residual(op: AttentionSublayer, x: torch.Tensor) -> torch.Tensor:
    """x + proj(causal attention(ln1 x)), heads split by hand."""
    batch, steps, dim = x.shape
    q, k, v = op.qkv(op.ln1(x)).split(dim, dim=2)
    q, k, v = (t.view(batch, steps, op.heads, dim // op.heads).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    attended: torch.Tensor = op.proj(y.transpose(1, 2).reshape(batch, steps, dim))
    return x + attended


def mlp_residual(op: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x + fc2(GELU(fc1(ln2 x)))."""
    assert isinstance(op, MlpSublayer)
    fc1, fc2 = op.mlp[0], op.mlp[2]
    out: torch.Tensor = fc2(F.gelu(fc1(op.ln2(x))))
    return x + out


def unrolled(host: TransformerHost, inputs: torch.Tensor, shifts: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """[embedding, after attn_0's residual, after mlp_0's, after attn_1's, ...] and the logits last: entry k is the
    stream after k sublayers. `shifts[k]` is added to the stream after entry k is taken (what a slot there does)."""
    steps = inputs.shape[1]
    x = host.token_embedding(inputs) + host.position_embedding(torch.arange(steps))
    stream = [x]
    for op in host.ops:
        x = attention_residual(op, x) if isinstance(op, AttentionSublayer) else mlp_residual(op, x)
        stream.append(x)
        if len(stream) - 1 in shifts:
            x = x + shifts[len(stream) - 1]
    stream.append(host.head.lm_head(host.head.ln_f(x)))
    return stream


# ---------------------------------------------------------------- the lattice
def test_the_sublayer_lattice_names_orders_and_places_every_point() -> None:
    host = host_for(LATTICE)
    specs = host.injection_specs()
    assert [s.slot_id for s in specs] == ["r0c0", "r1c0", "r0c1", "r1c1", "r0c2", "r1c2"]
    assert [s.order for s in specs] == [0, 1, 2, 3, 4, 5]
    assert [s.surface for s in specs] == [ATTN, MLP] * 3
    assert [s.position for s in specs] == pytest.approx([k / 6 for k in range(1, 7)])
    assert {s.channels for s in specs} == {8}
    assert [host.position(s.slot_id) for s in specs] == [1, 2, 3, 4, 5, 6]  # after op k = order
    assert host.execution_order() == tuple(s.slot_id for s in specs)
    assert len(host.ops) == 6 and [type(op) for op in host.ops] == [AttentionSublayer, MlpSublayer] * 3


@pytest.mark.parametrize("surfaces", [(END,), (ATTN,), (MLP,), LATTICE], ids=lambda s: "+".join(x.name for x in s))
@settings(max_examples=8, deadline=None)
@given(n_layer=st.integers(1, 5))
def test_every_layout_follows_the_id_order_and_position_rules(surfaces: tuple[SurfaceType, ...], n_layer: int) -> None:
    host = host_for(surfaces, n_layer)
    specs = host.injection_specs()
    assert len(specs) == n_layer * len(surfaces) and len(host.ops) == 2 * n_layer
    for spec in specs:
        rank, layer = parse_slot_id(spec.slot_id)
        assert spec.surface is surfaces[rank]
        assert spec.order == layer * len(surfaces) + rank
        assert spec.position == pytest.approx((spec.order + 1) / (n_layer * len(surfaces)))
        ops_before = 2 * layer + (1 if spec.surface is ATTN else 2)  # after attn_layer, or after mlp_layer
        assert host.position(spec.slot_id) == ops_before
    positions = [host.position(s) for s in host.execution_order()]
    assert positions == sorted(positions)


@settings(max_examples=25, deadline=None)
@given(st.permutations(["r0c0", "r1c0", "r0c1", "r1c1", "r0c2", "r1c2"]), st.integers(1, 6))
def test_the_model_executes_and_indexes_slots_in_order(ids: list[str], count: int) -> None:
    host = host_for(LATTICE)
    chosen = ids[:count]
    model = MorphogeneticModel(host, chosen, TelemetryHub("r").emitter(0))
    order = {s.slot_id: s.order for s in host.injection_specs()}
    by_order = tuple(sorted(chosen, key=order.__getitem__))
    assert model.slot_order == by_order  # whatever order the ids came in
    assert model.execution == by_order  # the lattice's orders follow the forward pass
    assert [model.slot(s).surface for s in by_order] == [ATTN if s.startswith("r0") else MLP for s in by_order]


# ---------------------------------------------------------------- routing
def test_every_point_sees_the_stream_right_after_its_residual() -> None:
    host = host_for(LATTICE)
    inputs = tokens()
    stream = unrolled(host, inputs, {})
    for spec in host.injection_specs():
        position = host.position(spec.slot_id)
        assert torch.equal(host.run_ops(host.embed(inputs), 0, position), stream[position]), spec.slot_id
    assert torch.equal(host(inputs), stream[-1])


@pytest.mark.parametrize("target", ["r0c0", "r1c0", "r0c1", "r1c1", "r0c2", "r1c2"])
def test_a_slot_receives_its_point_and_its_output_feeds_the_next_sublayer(target: str) -> None:
    """Every slot of the model sees exactly the hand-unrolled stream at its point; the one slot that shifts the
    stream changes the logits exactly as adding the shift after that sublayer does."""
    host = host_for(LATTICE)
    ids = [s.slot_id for s in host.injection_specs()]
    model = MorphogeneticModel(host, ids, TelemetryHub("r").emitter(0))
    model.eval()
    shift = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(2))
    recorders = {}
    for slot_id in ids:
        recorders[slot_id] = RecordingSlot(model.slot(slot_id), shift if slot_id == target else None)
        model.slots[slot_id] = recorders[slot_id]
    inputs = tokens()
    stream = unrolled(host, inputs, {host.position(target): shift})
    logits = model(inputs)
    for slot_id, recorder in recorders.items():
        (seen,) = recorder.seen
        assert torch.equal(seen, stream[host.position(slot_id)]), slot_id
    assert torch.equal(logits, stream[-1])
    assert not torch.equal(logits, host(inputs))  # the shift did reach the output


@pytest.mark.parametrize("surfaces", [(END,), (ATTN,), (MLP,), LATTICE], ids=lambda s: "+".join(x.name for x in s))
def test_dormant_slots_change_nothing(surfaces: tuple[SurfaceType, ...]) -> None:
    host = host_for(surfaces)
    model = MorphogeneticModel(host, [s.slot_id for s in host.injection_specs()], TelemetryHub("r").emitter(0))
    model.eval()
    inputs = tokens()
    assert torch.equal(model(inputs), host(inputs))
    out = model(inputs, incubate=True)
    assert out.incubation_logits is None and torch.equal(out.logits, host(inputs))


def test_the_block_end_layout_is_the_lattice_host_with_fewer_points() -> None:
    block_end, lattice = host_for((END,), seed=4), host_for(LATTICE, seed=9)
    assert not torch.equal(block_end(tokens()), lattice(tokens()))  # different weights so far
    lattice.load_state_dict(block_end.state_dict())  # strict: the layout adds no parameters
    inputs = tokens()
    assert torch.equal(block_end(inputs), lattice(inputs))
    specs = block_end.injection_specs()
    assert [(s.slot_id, s.surface, s.order) for s in specs] == [(f"r0c{i}", END, i) for i in range(3)]
    assert [block_end.position(s.slot_id) for s in specs] == [2, 4, 6]  # after each MLP residual
    for i in range(3):  # the block end is the lattice's post-MLP point
        assert block_end.position(f"r0c{i}") == lattice.position(f"r1c{i}")
    # the same seed gives the same weights whatever the layout
    assert all(
        torch.equal(a, b)
        for a, b in zip(host_for((END,)).state_dict().values(), host_for(LATTICE).state_dict().values(), strict=True)
    )


# ---------------------------------------------------------------- bad layouts
@pytest.mark.parametrize(
    ("surfaces", "shown"),
    [
        ([MLP, ATTN], "[POST_MLP, POST_ATTN]"),
        ([END, ATTN], "[BLOCK_END, POST_ATTN]"),
        ([SurfaceType.PRE_POOL], "[PRE_POOL]"),
        ([SurfaceType.POST_POOL], "[POST_POOL]"),
        ([ATTN, ATTN], "[POST_ATTN, POST_ATTN]"),
        ([END, END], "[BLOCK_END, BLOCK_END]"),
        ([ATTN, MLP, MLP], "[POST_ATTN, POST_MLP, POST_MLP]"),
        ([], "[]"),
    ],
)
def test_bad_layouts_fail_naming_the_field_and_the_allowed_values(surfaces: list[SurfaceType], shown: str) -> None:
    allowed = "allowed: [BLOCK_END] or [POST_ATTN] or [POST_MLP] or [POST_ATTN, POST_MLP]"
    with pytest.raises(ValueError, match=rf"^surfaces {re.escape(shown)} .*{re.escape(allowed)}"):
        TransformerHost(config(surfaces))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(SurfaceType)), max_size=3))
def test_a_layout_is_accepted_exactly_when_it_is_block_end_or_an_ordered_sublayer_subset(
    surfaces: list[SurfaceType],
) -> None:
    sublayer_subset = (
        bool(surfaces)
        and set(surfaces) <= set(LATTICE)
        and len(set(surfaces)) == len(surfaces)
        and surfaces == sorted(surfaces, key=LATTICE.index)
    )
    if surfaces == [END] or sublayer_subset:
        host = TransformerHost(config(surfaces, n_layer=2))
        assert {s.surface for s in host.injection_specs()} == set(surfaces)
    else:
        with pytest.raises(ValueError, match="^surfaces "):
            TransformerHost(config(surfaces, n_layer=2))
