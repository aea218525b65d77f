"""Search space, genotypes and their JSON; `search_space.builder` holds the torch modules."""

from auxnas.search_space.genotype import (
    Cell,
    Genotype,
    GenotypeError,
    basic_genotype,
    load_genotype_file,
    parse_genotype,
)
from auxnas.search_space.sampling import sample_genotype, sample_tokens
from auxnas.search_space.space import ADAPTOR_OPS, AGGREGATORS, CELL_FIELDS, SearchSpace, SpaceError

__all__ = [
    "ADAPTOR_OPS",
    "AGGREGATORS",
    "CELL_FIELDS",
    "Cell",
    "Genotype",
    "GenotypeError",
    "SearchSpace",
    "SpaceError",
    "basic_genotype",
    "load_genotype_file",
    "parse_genotype",
    "sample_genotype",
    "sample_tokens",
]
