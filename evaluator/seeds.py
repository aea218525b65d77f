"""Which seeds an evaluation trains, and which seed each replicate is evaluated at: the one rule
for the search, `auxnas calibrate`, `auxnas diagnose` and `auxnas retrain`.

An evaluation at seed s trains `train.reward_seeds` = k models, under seeds s .. s+k-1
(`evaluator.evaluate`). Replicate r of a config whose `seed` is s0 is evaluated at s0 + r*k, so
its k training seeds start where replicate r-1's end: replicates never share a training seed,
and replicate 0 is the config's own seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auxnas.evaluator.config import EvalConfig


def trained_seeds(seed: int, reward_seeds: int) -> list[int]:
    """The seeds one evaluation at `seed` trains with."""
    return [seed + i for i in range(reward_seeds)]


def replicate_seed(seed: int, replicate: int, reward_seeds: int) -> int:
    """The seed replicate `replicate` is evaluated at, for a config whose seed is `seed`."""
    return seed + replicate * reward_seeds


def replicate_seeds(config: EvalConfig, replicates: int) -> list[int]:
    """The evaluation seeds of replicates 0 .. replicates-1 of `config`."""
    return [replicate_seed(config.seed, r, config.train.reward_seeds) for r in range(replicates)]


def replicate_config(config: EvalConfig, replicate: int) -> EvalConfig:
    """`config` as replicate `replicate` evaluates it."""
    return config.model_copy(
        update={"seed": replicate_seed(config.seed, replicate, config.train.reward_seeds)}
    )
