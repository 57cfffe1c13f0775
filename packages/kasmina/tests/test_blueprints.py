"""Every blueprint for every topology: shape preserved, parameter counts from the built module, coverage."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.kasmina import (
    BLUEPRINTS,
    INTERNAL_FAMILIES,
    ConvLadderSeed,
    LoraLadderSeed,
    MicrostructuredSeed,
    build_seed,
    count_trainable,
)
from esper.leyline import (
    BLUEPRINT_INTERNAL_KIND,
    TOPOLOGY_BLUEPRINTS,
    BlueprintAction,
    SeedInternalKind,
    Topology,
    assert_covers,
)

BP = BlueprintAction
CASES = sorted(BLUEPRINTS, key=lambda k: (k[0].value, k[1].value))


def test_registry_covers_every_blueprint_of_every_topology() -> None:
    for topology in Topology:
        registered = {bp for (t, bp) in BLUEPRINTS if t is topology}
        assert_covers(
            BlueprintAction,
            registered | (set(BlueprintAction) - TOPOLOGY_BLUEPRINTS[topology]),
            consumer=f"kasmina blueprint registry ({topology.value})",
        )
        assert registered == TOPOLOGY_BLUEPRINTS[topology]


def test_every_internal_kind_has_a_seed_family() -> None:
    assert_covers(
        SeedInternalKind, set(INTERNAL_FAMILIES) | {SeedInternalKind.NONE}, consumer="kasmina INTERNAL_FAMILIES"
    )
    for kind, blueprint in INTERNAL_FAMILIES.items():
        assert BLUEPRINT_INTERNAL_KIND[blueprint] is kind
        topologies = [t for (t, bp) in BLUEPRINTS if bp is blueprint]
        assert topologies, f"no topology offers {blueprint.name}"
        for topology in topologies:
            seed = build_seed(topology, blueprint, 8)
            assert isinstance(seed, MicrostructuredSeed) and seed.internal_kind is kind
    # every other registered blueprint has no internal structure
    for (topology, blueprint), spec in BLUEPRINTS.items():
        if blueprint not in INTERNAL_FAMILIES.values():
            assert not isinstance(spec.factory(8, 8), MicrostructuredSeed), (topology, blueprint)


@pytest.mark.parametrize(("topology", "blueprint"), CASES, ids=[f"{t.value}-{b.name.lower()}" for t, b in CASES])
@pytest.mark.parametrize("width", [8, 16, 32])
def test_seed_preserves_shape_and_counts_real_params(
    topology: Topology, blueprint: BlueprintAction, width: int
) -> None:
    seed = build_seed(topology, blueprint, width)
    x = torch.randn(2, width, 6, 6) if topology is Topology.CNN else torch.randn(2, 5, width)
    assert seed(x).shape == x.shape
    assert count_trainable(seed) == sum(p.numel() for p in seed.parameters() if p.requires_grad)
    if blueprint is BP.NOOP:
        assert count_trainable(seed) == 0


EXPECTED_CNN_PARAMS = {  # worked out by hand from the layer definitions, C = 16
    BP.NORM: 2 * 16 + 1,
    BP.ATTENTION: 16 * 4 + 4 * 16 + 16,
    BP.DEPTHWISE: 9 * 16 + 2 * 16 + 16 * 16,
    BP.BOTTLENECK: 16 * 8 + 2 * 8 + 9 * 64 + 2 * 8 + 8 * 16,
    BP.CONV_SMALL: 16 * 16 + 2 * 16,
    BP.CONV_LIGHT: (9 * 256 + 32) + 256,
    BP.CONV_HEAVY: 2 * (9 * 256 + 32) + 256,
    BP.CONV_LADDER: (9 * 256 + 32) + 256,  # level 1 of 4 is active at birth
}


def test_cnn_param_counts_match_the_layer_arithmetic() -> None:
    for blueprint, expected in EXPECTED_CNN_PARAMS.items():
        assert count_trainable(build_seed(Topology.CNN, blueprint, 16)) == expected, blueprint.name


def test_transformer_param_counts_match_the_layer_arithmetic() -> None:
    d = 16
    expected = {
        BP.NORM: 2 * d + 1,
        BP.LORA: 2 * d * 8,
        BP.LORA_LARGE: 2 * d * 32,
        BP.ATTENTION: 4 * d * d + 4 * d,
        BP.FLEX_ATTENTION: 4 * d * d + 4 * d,
        BP.MLP_SMALL: 4 * d * d + 3 * d,
        BP.MLP: 8 * d * d + 5 * d,
        BP.LORA_LADDER: 2 * d * 4,  # level 1 of 4 rank-4 blocks is active at birth
    }
    for blueprint, count in expected.items():
        assert count_trainable(build_seed(Topology.TRANSFORMER, blueprint, d)) == count, blueprint.name


def test_both_attention_seeds_compute_the_same_function() -> None:
    torch.manual_seed(0)
    sdpa = build_seed(Topology.TRANSFORMER, BP.ATTENTION, 16)
    masked = build_seed(Topology.TRANSFORMER, BP.FLEX_ATTENTION, 16)
    masked.load_state_dict(sdpa.state_dict())
    for module in (sdpa, masked):
        torch.nn.init.normal_(module.proj.weight)
    masked.proj.weight.data.copy_(sdpa.proj.weight.data)
    x = torch.randn(3, 7, 16)
    assert torch.allclose(sdpa(x), masked(x), atol=1e-5)
    # causal: the first position ignores the future
    y = x.clone()
    y[:, 1:] = torch.randn(3, 6, 16)
    assert torch.allclose(sdpa(x)[:, 0], sdpa(y)[:, 0], atol=1e-6)


def test_unknown_pairs_fail_with_the_allowed_list() -> None:
    with pytest.raises(ValueError, match="'lora' does not apply to cnn; allowed: noop, conv_light"):
        build_seed(Topology.CNN, BP.LORA, 8)


# ---------------------------------------------------------------- conv_ladder
def test_ladder_level_zero_is_exact_identity() -> None:
    ladder = ConvLadderSeed(8, level=0)
    x = torch.randn(2, 8, 5, 5)
    assert ladder(x) is x
    assert ladder.active_param_count() == 0 and count_trainable(ladder) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-1, +1]), max_size=25), st.booleans())
def test_ladder_invariants_over_random_level_walks(steps: list[int], freeze: bool) -> None:
    ladder = ConvLadderSeed(8, max_level=4, level=1)
    level, previous_params = 1, ladder.active_param_count()
    for step in steps:
        target = min(max(level + step, 0), 4)
        ladder.set_internal_level(target)
        level = target
        assert ladder.internal_level == level
        trainable = [i for i, block in enumerate(ladder.blocks) if all(p.requires_grad for p in block.parameters())]
        assert trainable == list(range(level))
        assert count_trainable(ladder) == ladder.active_param_count()
        # active parameters are monotone in the level
        if step > 0 and level > 0:
            assert ladder.active_param_count() >= previous_params
        previous_params = ladder.active_param_count()
    ladder.set_frozen(freeze)
    assert count_trainable(ladder) == (0 if freeze else ladder.active_param_count())
    # structure is a pure function of the level: a fresh ladder with the same weights and level agrees exactly
    twin = ConvLadderSeed(8, max_level=4, level=level)
    twin.load_state_dict(ladder.state_dict())
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(twin(x), ladder(x))


def test_ladder_levels_are_bounded() -> None:
    with pytest.raises(ValueError, match="outside 0..4"):
        ConvLadderSeed(8).set_internal_level(5)
    with pytest.raises(ValueError, match="max_level must be >= 1"):
        ConvLadderSeed(8, max_level=0)


def test_seed_width_gives_conv_seeds_capacity_beyond_the_slot() -> None:
    """A 2-channel slot with seed width 8: a 1x1 expansion, blocks at 8 channels, a projection back (by hand)."""
    block = 9 * 8 * 8 + 2 * 8  # 3x3 conv 8 -> 8 and its GroupNorm affine
    ends = 2 * 8 + 8 * 2  # expansion 2 -> 8 and projection 8 -> 2
    expected = {BP.CONV_LIGHT: ends + block, BP.CONV_HEAVY: ends + 2 * block, BP.CONV_LADDER: ends + block}
    x = torch.randn(3, 2, 6, 6)
    for blueprint, params in expected.items():
        seed = build_seed(Topology.CNN, blueprint, 2, width=8)
        assert count_trainable(seed) == params, blueprint.name
        assert torch.equal(seed(x), x)  # still an exact identity at birth
    ladder = build_seed(Topology.CNN, BP.CONV_LADDER, 2, width=8)
    assert isinstance(ladder, ConvLadderSeed)
    ladder.set_internal_level(3)
    assert ladder.active_param_count() == count_trainable(ladder) == ends + 3 * block
    ladder.set_internal_level(0)
    assert ladder.active_param_count() == count_trainable(ladder) == 0
    # Seeds without an internal width ignore it; transformer tasks may not set it.
    assert count_trainable(build_seed(Topology.CNN, BP.NORM, 2, width=8)) == count_trainable(
        build_seed(Topology.CNN, BP.NORM, 2)
    )
    with pytest.raises(ValueError, match="seed_width applies to CNN conv seeds only"):
        build_seed(Topology.TRANSFORMER, BP.LORA, 16, width=8)


# ---------------------------------------------------------------- lora_ladder
def randomise(ladder: LoraLadderSeed, blocks: range) -> None:
    """Give blocks `blocks` trained-looking weights (up non-zero)."""
    with torch.no_grad():
        for k in blocks:
            torch.nn.init.normal_(ladder.down[k].weight)
            torch.nn.init.normal_(ladder.up[k].weight)


def test_lora_ladder_level_zero_is_exact_identity_whatever_its_weights() -> None:
    torch.manual_seed(0)
    ladder = LoraLadderSeed(8, level=0)
    randomise(ladder, range(4))
    x = torch.randn(2, 5, 8)
    assert ladder(x) is x
    assert ladder.active_param_count() == 0 and count_trainable(ladder) == 0
    ladder.set_internal_level(1)
    assert not torch.equal(ladder(x), x)  # the same weights do act once a block is on


def test_lora_ladder_is_an_identity_at_birth_and_a_microstructured_seed() -> None:
    seed = build_seed(Topology.TRANSFORMER, BP.LORA_LADDER, 12)
    assert isinstance(seed, LoraLadderSeed) and isinstance(seed, MicrostructuredSeed)
    assert seed.internal_kind is SeedInternalKind.LORA_LADDER
    assert (seed.internal_level, seed.internal_max_level) == (1, 4)
    assert all(int(torch.count_nonzero(up.weight)) == 0 for up in seed.up)
    assert all(int(torch.count_nonzero(down.weight)) > 0 for down in seed.down)  # down is trainable from step one
    x = torch.randn(3, 4, 12)
    assert torch.equal(seed(x), x)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([4, 8, 12]), st.integers(1, 6), st.integers(1, 5))
def test_lora_ladder_trainable_params_grow_strictly_with_the_level(dim: int, rank: int, blocks: int) -> None:
    ladder = LoraLadderSeed(dim, blocks=blocks, rank=rank, level=0)
    counts = []
    for level in range(blocks + 1):
        ladder.set_internal_level(level)
        assert count_trainable(ladder) == ladder.active_param_count() == level * 2 * dim * rank
        trainable = [
            k for k in range(blocks) if ladder.down[k].weight.requires_grad and ladder.up[k].weight.requires_grad
        ]
        assert trainable == list(range(level))
        assert not any(
            ladder.down[k].weight.requires_grad or ladder.up[k].weight.requires_grad for k in range(level, blocks)
        )
        counts.append(count_trainable(ladder))
    assert all(a < b for a, b in zip(counts, counts[1:], strict=False))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=12), st.integers(0, 4))
def test_lora_ladder_frozen_stays_frozen_at_every_level(levels: list[int], start: int) -> None:
    ladder = LoraLadderSeed(8, level=start)
    ladder.set_frozen(True)
    assert count_trainable(ladder) == 0
    for level in levels:
        ladder.set_internal_level(level)  # a level change during a frozen ramp must not unfreeze anything
        assert count_trainable(ladder) == 0
        assert ladder.active_param_count() == level * 2 * 8 * 4  # rent still follows the structure
    ladder.set_frozen(False)
    assert count_trainable(ladder) == ladder.active_param_count()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**16))
def test_lora_ladder_grows_continuously_onto_a_fresh_block(level: int, seed: int) -> None:
    """Blocks below `level` trained, block `level` fresh (random down, zero up): one more level changes nothing
    bit for bit; a block whose up is not zero does change the output (so the check can fail)."""
    torch.manual_seed(seed)
    ladder = LoraLadderSeed(8, level=level)
    randomise(ladder, range(level))
    with torch.no_grad():
        torch.nn.init.normal_(ladder.down[level].weight)
    x = torch.randn(2, 6, 8)
    before = ladder(x)
    ladder.set_internal_level(level + 1)
    assert torch.equal(ladder(x), before)
    with torch.no_grad():
        torch.nn.init.normal_(ladder.up[level].weight)
    assert not torch.equal(ladder(x), before)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**16))
def test_lora_ladder_is_a_rank_r_times_level_update(level: int, seed: int) -> None:
    """Level L computes x + x (U D)^T with D the stacked downs and U the stacked ups of the first L blocks."""
    torch.manual_seed(seed)
    ladder = LoraLadderSeed(16, rank=3, level=level).double()
    randomise(ladder, range(4))
    with torch.no_grad():
        down = torch.cat([ladder.down[k].weight for k in range(level)], dim=0)  # [3L, 16]
        up = torch.cat([ladder.up[k].weight for k in range(level)], dim=1)  # [16, 3L]
        update = up @ down
        x = torch.randn(2, 5, 16, dtype=torch.float64)
        torch.testing.assert_close(ladder(x), x + x @ update.T)
    assert int(torch.linalg.matrix_rank(update)) == 3 * level


def test_lora_ladder_levels_are_bounded() -> None:
    ladder = LoraLadderSeed(8)
    for bad in (-1, 5):
        with pytest.raises(ValueError, match="outside 0..4"):
            ladder.set_internal_level(bad)
    assert ladder.internal_level == 1  # a refused change leaves the level alone
    with pytest.raises(ValueError, match="outside 0..2"):
        LoraLadderSeed(8, blocks=2, level=3)
    with pytest.raises(ValueError, match="blocks and rank must be >= 1"):
        LoraLadderSeed(8, blocks=0)
    with pytest.raises(ValueError, match="blocks and rank must be >= 1"):
        LoraLadderSeed(8, rank=0)


def test_lora_ladder_state_dict_restores_the_level() -> None:
    torch.manual_seed(0)
    ladder = LoraLadderSeed(8, level=3)
    randomise(ladder, range(4))
    state = ladder.state_dict()
    assert state["_extra_state"] == {"level": 3, "max_level": 4}
    twin = LoraLadderSeed(8, level=1)
    twin.load_state_dict(state)
    assert twin.internal_level == 3 and count_trainable(twin) == twin.active_param_count() == 3 * 2 * 8 * 4
    x = torch.randn(2, 5, 8)
    assert torch.equal(twin(x), ladder(x))
    with pytest.raises(ValueError, match="checkpoint max_level 4 != 3"):
        LoraLadderSeed(8, blocks=3).load_state_dict(state, strict=False)
