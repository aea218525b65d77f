"""PPO learns a reward with a known optimum (share of tokens equal to a hidden target) quickly,
and clearly better than uniform random sampling."""

from __future__ import annotations

import statistics

import pytest

from auxnas.controller.config import SearchConfig
from auxnas.controller.strategies import make_strategy
from auxnas.evaluator.testing import hidden_target, target_share_reward

pytestmark = pytest.mark.usefixtures("ray_session")

ITERATIONS = 20  # 160 genotypes of 20 tokens: about 10 s on an idle 2-core CPU


def _run(strategy_name: str, seed: int) -> list[list[float]]:
    config = SearchConfig(seed=seed, tasks=["seg", "depth"], model={"num_aux_inputs": 2})
    strategy = make_strategy(strategy_name, config, config.search_space())
    batches = []
    try:
        for _ in range(ITERATIONS):
            genotypes = strategy.propose(config.controller.episodes_per_update)
            rewards = [target_share_reward(g, seed) for g in genotypes]
            strategy.observe(rewards)
            batches.append(rewards)
    finally:
        strategy.close()
    return batches


@pytest.mark.slow
def test_ppo_learns_the_known_optimum_and_beats_random():
    ppo = _run("ppo", seed=3)
    rnd = _run("random", seed=3)
    ppo_late = statistics.fmean(r for batch in ppo[-5:] for r in batch)
    rnd_late = statistics.fmean(r for batch in rnd[-5:] for r in batch)
    ppo_early = statistics.fmean(r for batch in ppo[:3] for r in batch)
    assert ppo_late >= 0.6, f"PPO mean reward over its last 5 iterations is {ppo_late:.3f}"
    assert ppo_late > ppo_early + 0.2
    assert ppo_late > rnd_late + 0.2, f"PPO {ppo_late:.3f} vs random {rnd_late:.3f}"
    assert max(max(b) for b in ppo) > max(max(b) for b in rnd)


def test_hidden_target_is_valid_and_scores_one():
    config = SearchConfig(seed=5, tasks=["seg", "depth"], model={"num_aux_inputs": 2})
    space = config.search_space()
    from auxnas.search_space import Genotype

    target = Genotype(space, tuple(hidden_target(space, 5)))
    assert target_share_reward(target, 5) == 1.0
