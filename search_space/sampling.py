"""Uniform sampling of valid genotypes (the `random` strategy and tests)."""

from __future__ import annotations

import random

from auxnas.search_space.genotype import Genotype
from auxnas.search_space.space import SearchSpace


def sample_tokens(space: SearchSpace, rng: random.Random) -> list[int]:
    """Each position uniformly over its valid choices: uniform over all valid genotypes."""
    return [rng.randrange(n) for n in space.choice_counts()]


def sample_genotype(space: SearchSpace, rng: random.Random) -> Genotype:
    return Genotype(space, tuple(sample_tokens(space, rng)))
