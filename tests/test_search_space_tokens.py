"""Token layout, masks, tokens <-> genotype <-> JSON, counting and hashing."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auxnas.search_space import (
    Genotype,
    GenotypeError,
    SearchSpace,
    SpaceError,
    basic_genotype,
    parse_genotype,
    sample_genotype,
)

SPACES = [
    SearchSpace(1, ("a",)),
    SearchSpace(2, ("segmentation", "depth")),
    SearchSpace(3, ("segmentation", "depth", "normal")),
    SearchSpace(4, ("segmentation", "depth")),
]


@st.composite
def space_and_valid_tokens(draw):
    space = draw(st.sampled_from(SPACES))
    tokens = [draw(st.integers(0, n - 1)) for n in space.choice_counts()]
    return space, tokens


@st.composite
def space_and_masked_out_tokens(draw):
    space, tokens = draw(space_and_valid_tokens())
    pos = draw(st.integers(0, space.num_tokens - 1))
    n = space.choice_counts()[pos]
    tokens[pos] = draw(st.one_of(st.integers(n, space.max_choices + 3), st.integers(-5, -1)))
    return space, tokens, pos


@settings(max_examples=200, deadline=None)
@given(space_and_valid_tokens())
def test_tokens_drawn_through_masks_decode_and_round_trip(case):
    space, tokens = case
    for pos, tok in enumerate(tokens):
        assert space.action_mask(pos)[tok]
    g = Genotype(space, tokens)
    doc = json.loads(json.dumps(g.to_json(reward=0.5)))
    back = parse_genotype(doc)
    assert list(back.tokens) == tokens
    assert back == g
    for cell in g.cells:  # every input ref is visible to its cell
        t = space.tasks.index(cell.task)
        assert set(cell.inputs) <= set(space.visible_inputs(cell.index, t))


@settings(max_examples=200, deadline=None)
@given(space_and_masked_out_tokens())
def test_every_sequence_violating_a_mask_is_rejected(case):
    space, tokens, pos = case
    with pytest.raises(GenotypeError, match=f"token {pos} "):
        Genotype(space, tokens)


def test_wrong_length_and_non_int_tokens_rejected():
    space = SPACES[1]
    with pytest.raises(GenotypeError, match="expected 20 tokens, got 19"):
        Genotype(space, [0] * 19)
    with pytest.raises(GenotypeError, match="token 0"):
        Genotype(space, [True] + [0] * 19)


def test_layout_is_p_major_with_growing_input_choices():
    space = SearchSpace(4, ("segmentation", "depth"))
    assert space.num_tokens == 40
    cells = [(s.task, s.p) for s in space.slots[::5]]
    assert cells == [
        ("segmentation", 0),
        ("depth", 0),
        ("segmentation", 1),
        ("depth", 1),
        ("segmentation", 2),
        ("depth", 2),
        ("segmentation", 3),
        ("depth", 3),
    ]
    inputs = [space.slots[i].num_choices for i in range(0, 40, 5)]
    assert inputs == [4, 4, 5, 6, 6, 8, 7, 10]  # P + p*(t+1)
    assert space.visible_inputs(1, 1) == [
        "feature:0",
        "feature:1",
        "feature:2",
        "feature:3",
        "segmentation:0",
        "depth:0",
    ]
    assert space.visible_inputs(2, 0) == [
        "feature:0",
        "feature:1",
        "feature:2",
        "feature:3",
        "segmentation:0",
        "segmentation:1",
    ]
    assert all(
        space.slots[i + 2].num_choices == 6 and space.slots[i + 4].num_choices == 2 for i in range(0, 40, 5)
    )


def test_genotype_count_equals_brute_force_over_all_sequences():
    space = SearchSpace(1, ("a",))  # max_choices 6, 5 positions: 7776 sequences, valid or not
    sequences = itertools.product(range(space.max_choices), repeat=space.num_tokens)
    valid = [t for t in sequences if space.invalid_token(list(t)) is None]
    assert space.num_genotypes() == len(valid) == 72
    distinct = {Genotype(space, t).canonical_hash() for t in valid}
    assert space.num_genotypes_up_to_branch_order() == len(distinct)


@pytest.mark.parametrize("space", [SearchSpace(1, ("a", "b")), SearchSpace(2, ("a",))], ids=str)
def test_genotype_counts_equal_enumeration(space):
    sequences = list(itertools.product(*(range(n) for n in space.choice_counts())))
    assert space.num_genotypes() == len(sequences)
    if len(sequences) <= 10_000:
        distinct = {Genotype(space, t).canonical_hash() for t in sequences}
        assert space.num_genotypes_up_to_branch_order() == len(distinct)


def test_canonical_hash_ignores_branch_order_only():
    space = SPACES[1]
    g = basic_genotype(space)
    t = list(g.tokens)
    swapped = t[:]
    swapped[0:4] = [t[1], t[0], t[3], t[2]]
    t[5:9] = [0, 1, 0, 5]
    a, b = Genotype(space, t), Genotype(space, t[:5] + [1, 0, 5, 0] + t[9:])
    assert a.canonical_hash() == b.canonical_hash()
    assert Genotype(space, swapped).canonical_hash() == g.canonical_hash()
    changed = list(g.tokens)
    changed[4] = 1 - changed[4]
    assert Genotype(space, changed).canonical_hash() != g.canonical_hash()


def test_basic_genotype_matches_the_paper():
    space = SearchSpace(3, ("segmentation", "depth"))
    cells = basic_genotype(space).cells
    assert cells[0].inputs == ("feature:0", "feature:0")
    assert cells[0].adaptors == ("conv_1x1", "conv_1x1") and cells[0].aggregator == "sum"
    c = basic_genotype(space).cell("depth", 2)
    assert c.inputs == ("depth:1", "feature:2")
    assert c.adaptors == ("skip_connect", "conv_1x1") and c.aggregator == "concat"


def test_uniform_sampling_covers_every_choice_and_is_valid():
    space = SearchSpace(2, ("a", "b"))
    rng = random.Random(0)
    seen = [set() for _ in range(space.num_tokens)]
    for _ in range(400):
        g = sample_genotype(space, rng)
        for pos, tok in enumerate(g.tokens):
            seen[pos].add(tok)
    assert [len(s) for s in seen] == space.choice_counts()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_inputs": 0, "tasks": ("a",)}, "num_inputs"),
        ({"num_inputs": 2, "tasks": ()}, "tasks"),
        ({"num_inputs": 2, "tasks": ("a", "a")}, "tasks"),
        ({"num_inputs": 2, "tasks": ("feature",)}, "tasks"),
        ({"num_inputs": 2, "tasks": ("a:b",)}, "tasks"),
    ],
)
def test_invalid_space_names_field(kwargs, field):
    with pytest.raises(SpaceError, match=f"^{field}:"):
        SearchSpace(**kwargs)
