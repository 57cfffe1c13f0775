"""channel_ladder (Phase 2): channel_groups, the seed's level semantics, its registry entry and its budget against
conv_ladder's."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.kasmina import (
    BLUEPRINTS,
    ChannelLadderSeed,
    ConvLadderSeed,
    MicrostructuredSeed,
    build_seed,
    channel_groups,
    count_trainable,
    seed_group_size,
)
from esper.leyline import BlueprintAction, SeedInternalKind, Topology

BP = BlueprintAction
CNN = Topology.CNN


def params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def randomise(ladder: ChannelLadderSeed, groups: range) -> None:
    """Give groups `groups` trained-looking weights: conv and proj random (proj non-zero), GroupNorm's affine off
    its init with a bias >= 0, so that ReLU lets some of every group through (the normalised group has both signs;
    a negative bias could switch a whole 2-channel group off and make its delta an exact 0 by chance)."""
    with torch.no_grad():
        for g in groups:
            conv, norm, _ = ladder.blocks[g]
            torch.nn.init.normal_(conv.weight)
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.uniform_(norm.bias, 0.0, 1.0)
            torch.nn.init.normal_(ladder.proj[g].weight)


def expected_active(channels: int, width: int, group_size: int, level: int) -> int:
    """By hand: the 1x1 expansion (none when width == channels), then per group a 3x3 conv width -> group_size,
    GroupNorm's affine (2 * group_size) and the 1x1 projection group_size -> channels."""
    if level == 0:
        return 0
    expand = 0 if width == channels else channels * width
    return expand + level * (9 * width * group_size + 2 * group_size + group_size * channels)


# ---------------------------------------------------------------- channel_groups
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 256), st.integers(1, 64))
def test_channel_groups_is_deterministic_and_exact(width: int, group_size: int) -> None:
    if width % group_size == 0:
        first, second = channel_groups(width, group_size), channel_groups(width, group_size)
        assert first == second == width // group_size  # same inputs, same answer
        return
    messages = []
    for _ in range(2):  # an indivisible width fails the same way every time, naming both numbers
        with pytest.raises(ValueError) as caught:
            channel_groups(width, group_size)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert f"width {width}" in messages[0] and f"groups of {group_size}" in messages[0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 32), st.integers(1, 16))
def test_channel_groups_inverts_the_product(groups: int, group_size: int) -> None:
    assert channel_groups(groups * group_size, group_size) == groups


def test_channel_groups_names_both_numbers_when_it_fails() -> None:
    with pytest.raises(ValueError, match=r"width 6 is not divisible into groups of 4 channels"):
        channel_groups(6, 4)
    with pytest.raises(ValueError, match=r"width 0 and group size 2"):
        channel_groups(0, 2)
    with pytest.raises(ValueError, match=r"width 8 and group size 0"):
        channel_groups(8, 0)
    with pytest.raises(ValueError, match=r"width 6 is not divisible into groups of 4 channels"):
        ChannelLadderSeed(4, width=6, group_size=4)


# ---------------------------------------------------------------- registry
def test_registry_builds_four_groups_at_twice_the_seed_width() -> None:
    spec = BLUEPRINTS[(CNN, BP.CHANNEL_LADDER)]
    assert spec.description == (
        "ladder of 4 channel groups at twice the seed width; the internal level is the number of active groups"
    )
    for channels, width, group_size in [(4, 4, 2), (8, None, 4), (2, 6, 3), (16, 2, 1)]:
        seed = build_seed(CNN, BP.CHANNEL_LADDER, channels, width)
        assert isinstance(seed, ChannelLadderSeed) and isinstance(seed, MicrostructuredSeed)
        assert seed.internal_kind is SeedInternalKind.CHANNEL_LADDER
        assert (seed.internal_level, seed.internal_max_level, seed.group_size) == (1, 4, group_size)
        internal = 2 * (channels if width is None else width)
        assert seed.blocks[0][0].in_channels == internal and seed.blocks[0][0].out_channels == group_size
        assert count_trainable(seed) == expected_active(channels, internal, group_size, 1)
        x = torch.randn(2, channels, 5, 5)
        assert torch.equal(seed(x), x)  # an exact identity at birth (proj is zero)


@pytest.mark.parametrize(("channels", "width", "shown"), [(4, 3, 6), (3, None, 6), (8, 5, 10)])
def test_registry_fails_on_a_width_not_divisible_into_four_groups(channels: int, width: int | None, shown: int) -> None:
    with pytest.raises(ValueError, match=rf"^channel_ladder: width {shown} is not divisible into 4 groups$"):
        build_seed(CNN, BP.CHANNEL_LADDER, channels, width)


def test_group_size_is_zero_for_every_seed_without_channel_groups() -> None:
    assert seed_group_size(build_seed(CNN, BP.CHANNEL_LADDER, 4, 4)) == 2
    for (topology, blueprint), spec in BLUEPRINTS.items():
        if blueprint is not BP.CHANNEL_LADDER:
            assert seed_group_size(spec.factory(8, 8)) == 0, (topology, blueprint)


# ---------------------------------------------------------------- inactive groups are an exact identity
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16))
def test_level_zero_returns_x_itself_whatever_the_weights(seed: int) -> None:
    torch.manual_seed(seed)
    ladder = ChannelLadderSeed(4, width=8, group_size=2, level=0)
    randomise(ladder, range(4))
    x = torch.randn(2, 4, 6, 6)
    assert ladder(x) is x
    assert ladder.active_param_count() == 0 and count_trainable(ladder) == 0
    ladder.set_internal_level(1)
    assert not torch.equal(ladder(x), x)  # the same weights do act once a group is on


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 4), st.integers(0, 2**16))
def test_groups_at_or_above_the_level_change_nothing(level: int, seed: int) -> None:
    torch.manual_seed(seed)
    ladder = ChannelLadderSeed(4, width=8, group_size=2, level=level)
    randomise(ladder, range(4))
    x = torch.randn(2, 4, 6, 6)
    before = ladder(x)
    randomise(ladder, range(level, 4))  # new weights for every inactive group
    assert torch.equal(ladder(x), before)
    if level > 0:
        randomise(ladder, range(level - 1, level))  # an active group's weights do matter
        assert not torch.equal(ladder(x), before)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**16))
def test_growing_onto_a_fresh_group_adds_an_exact_zero(level: int, seed: int) -> None:
    """Groups below `level` trained, group `level` fresh (random block, zero proj): one more level changes nothing
    bit for bit; a group whose proj is not zero does change the output (so the check can fail)."""
    torch.manual_seed(seed)
    ladder = ChannelLadderSeed(4, width=8, group_size=2, level=level)
    randomise(ladder, range(level))
    with torch.no_grad():
        torch.nn.init.normal_(ladder.blocks[level][0].weight)
    assert int(torch.count_nonzero(ladder.proj[level].weight)) == 0
    x = torch.randn(2, 4, 6, 6)
    before = ladder(x)
    ladder.set_internal_level(level + 1)
    assert torch.equal(ladder(x), before)
    with torch.no_grad():
        torch.nn.init.normal_(ladder.proj[level].weight)
    assert not torch.equal(ladder(x), before)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**16))
def test_level_l_is_x_plus_the_sum_of_the_first_l_groups(level: int, seed: int) -> None:
    """The forward against the formula x + sum_{g<L} proj_g(relu(GN(conv_g(expand(x))))) spelled out in float64."""
    torch.manual_seed(seed)
    ladder = ChannelLadderSeed(3, width=8, group_size=2, level=level).double()
    randomise(ladder, range(4))
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    h = torch.nn.functional.conv2d(x, ladder.expand.weight)
    delta = torch.zeros_like(x)
    for g in range(level):
        conv, norm, _ = ladder.blocks[g]
        z = torch.nn.functional.group_norm(
            torch.nn.functional.conv2d(h, conv.weight, padding=1), 1, norm.weight, norm.bias
        )
        delta = delta + torch.nn.functional.conv2d(torch.relu(z), ladder.proj[g].weight)
    torch.testing.assert_close(ladder(x), x + delta)


# ---------------------------------------------------------------- trainability, state, bounds
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(1, 5))
def test_trainable_params_grow_strictly_with_the_level(channels: int, group_size: int, groups: int) -> None:
    width = group_size * groups
    ladder = ChannelLadderSeed(channels, width=width, group_size=group_size, level=0)
    assert ladder.internal_max_level == groups
    counts = []
    for level in range(groups + 1):
        ladder.set_internal_level(level)
        assert (
            count_trainable(ladder)
            == ladder.active_param_count()
            == expected_active(channels, width, group_size, level)
        )
        active = [
            g
            for g in range(groups)
            if all(p.requires_grad for p in (*ladder.blocks[g].parameters(), *ladder.proj[g].parameters()))
        ]
        inactive = [
            g
            for g in range(groups)
            if not any(p.requires_grad for p in (*ladder.blocks[g].parameters(), *ladder.proj[g].parameters()))
        ]
        assert active == list(range(level)) and inactive == list(range(level, groups))
        assert all(p.requires_grad == (level > 0) for p in ladder.expand.parameters())
        counts.append(count_trainable(ladder))
    assert all(a < b for a, b in zip(counts, counts[1:], strict=False))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=12), st.integers(0, 4))
def test_frozen_stays_frozen_at_every_level(levels: list[int], start: int) -> None:
    ladder = ChannelLadderSeed(4, width=8, group_size=2, level=start)
    ladder.set_frozen(True)
    assert count_trainable(ladder) == 0
    for level in levels:
        ladder.set_internal_level(level)  # a level change during a frozen ramp must not unfreeze anything
        assert count_trainable(ladder) == 0
        assert ladder.active_param_count() == expected_active(4, 8, 2, level)  # rent still follows the structure
    ladder.set_frozen(False)
    assert count_trainable(ladder) == ladder.active_param_count()


def test_state_dict_restores_the_level() -> None:
    torch.manual_seed(0)
    ladder = ChannelLadderSeed(4, width=8, group_size=2, level=3)
    randomise(ladder, range(4))
    state = ladder.state_dict()
    assert state["_extra_state"] == {"level": 3, "max_level": 4}
    twin = ChannelLadderSeed(4, width=8, group_size=2, level=1)
    twin.load_state_dict(state)
    assert twin.internal_level == 3 and count_trainable(twin) == twin.active_param_count() == expected_active(
        4, 8, 2, 3
    )
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(twin(x), ladder(x))
    with pytest.raises(ValueError, match="checkpoint max_level 4 != 2"):
        ChannelLadderSeed(4, width=8, group_size=4).load_state_dict(state, strict=False)


def test_levels_are_bounded() -> None:
    ladder = ChannelLadderSeed(4, width=8, group_size=2)
    for bad in (-1, 5):
        with pytest.raises(ValueError, match="outside 0..4"):
            ladder.set_internal_level(bad)
    assert ladder.internal_level == 1  # a refused change leaves the level alone
    with pytest.raises(ValueError, match="outside 0..2"):
        ChannelLadderSeed(4, width=8, group_size=4, level=3)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        ChannelLadderSeed(0, width=8, group_size=2)


# ---------------------------------------------------------------- matched budgets (plan §3)
def test_max_budgets_match_conv_ladder_at_digits_narrows_width() -> None:
    """digits_narrow's setting (slot channels 4, seed width 4), both ladders at their top level, counted from the
    built modules: conv_ladder's four 4-wide blocks hold 4 * (4*4*9 + 8) = 608 weights, channel_ladder's four
    2-channel groups over width 8 hold 4 * (8*2*9 + 4) = 592; with their 1x1 ends 624 and 656."""
    conv = build_seed(CNN, BP.CONV_LADDER, 4, width=4)
    channel = build_seed(CNN, BP.CHANNEL_LADDER, 4, width=4)
    assert isinstance(conv, ConvLadderSeed) and isinstance(channel, ChannelLadderSeed)
    conv.set_internal_level(conv.internal_max_level)
    channel.set_internal_level(channel.internal_max_level)
    assert (conv.internal_max_level, channel.internal_max_level, channel.group_size) == (4, 4, 2)
    conv_blocks, channel_blocks = params(*conv.blocks), params(*channel.blocks)
    conv_ends, channel_ends = params(conv.expand, conv.proj), params(channel.expand, *channel.proj)
    assert (conv_blocks, channel_blocks) == (608, 592)
    assert (conv_ends, channel_ends) == (16, 64)  # proj 4 -> 4 (no expansion); expansion 4 -> 8 and 4 projs 2 -> 4
    assert abs(channel_blocks - conv_blocks) <= 0.10 * conv_blocks
    conv_total, channel_total = conv.active_param_count(), channel.active_param_count()
    assert (conv_total, channel_total) == (624, 656) == (count_trainable(conv), count_trainable(channel))
    assert abs(channel_total - conv_total) <= 0.10 * conv_total
