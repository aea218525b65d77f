"""`search.strategy: evolution` (regularized evolution): one-token mutations of tournament
winners, an aging population, a state that saves and restores, and a real search with it."""

from __future__ import annotations

import random
import statistics

import pytest

from auxnas.controller.config import SearchConfig
from auxnas.controller.driver import SearchDriver
from auxnas.controller.storage import InMemoryStorage
from auxnas.controller.strategies import EvolutionStrategy, RandomStrategy, make_strategy
from auxnas.evaluator import testing as fakes


def _config(seed: int = 0, **controller) -> SearchConfig:
    return SearchConfig(
        name="evo",
        seed=seed,
        tasks=["seg", "depth"],
        model={"num_aux_inputs": 2},
        search={"strategy": "evolution", "budget": 12, "racing": {"rungs": [1]}, "confirm": {"seeds": 0}},
        controller={"episodes_per_update": 4, "population": 8, "tournament": 3, **controller},
    )


def _best_share(strategy, seed: int, evaluations: int) -> float:
    best = 0.0
    for _ in range(evaluations // 4):
        genos = strategy.propose(4)
        rewards = [fakes.target_share_reward(g, seed) for g in genos]
        best = max(best, *rewards)
        strategy.observe(rewards)
    return best


def test_children_differ_from_their_parent_in_one_valid_token():
    config = _config()
    evo = make_strategy("evolution", config, config.search_space())
    assert isinstance(evo, EvolutionStrategy)
    first = evo.propose(8)  # the population fills with random genotypes first
    evo.observe([0.1 * i for i in range(8)])
    parents = {tuple(g.tokens) for g in first}
    for child in evo.propose(20):
        assert min(sum(a != b for a, b in zip(child.tokens, p, strict=True)) for p in parents) == 1


def test_the_oldest_member_dies():
    config = _config()
    evo = make_strategy("evolution", config, config.search_space())
    batches = []
    for i in range(4):
        batches.append(evo.propose(4))
        evo.observe([float(i)] * 4)
    assert len(evo.population) == 8
    assert [m[0] for m in evo.population] == [list(g.tokens) for g in batches[2] + batches[3]]


def test_evolution_beats_random_on_a_known_optimum():
    """Share of tokens equal to a hidden target: one-token steps climb it, uniform draws do not."""
    evo, rnd = [], []
    for seed in range(8):
        config = _config(seed)
        evo.append(_best_share(EvolutionStrategy(config, config.search_space()), seed, 200))
        rnd.append(_best_share(RandomStrategy(config, config.search_space()), seed, 200))
    assert statistics.fmean(evo) > statistics.fmean(rnd) + 0.1
    assert sum(e > r for e, r in zip(evo, rnd, strict=True)) >= 7


def test_a_restored_state_proposes_the_same_batch(tmp_path):
    config = _config()
    evo = EvolutionStrategy(config, config.search_space())
    for _ in range(3):
        genos = evo.propose(4)
        evo.observe([random.Random(str(g.tokens)).random() for g in genos])
    evo.save(tmp_path)
    batch = evo.propose(4)
    again = EvolutionStrategy(config, config.search_space())
    again.restore(tmp_path)
    assert again.restore_pending(evo.pending()) == batch
    assert again.population == evo.population
    with pytest.raises(ValueError, match="expected 4 rewards, got 1"):
        again.observe([0.5])


@pytest.mark.usefixtures("ray_session")
def test_a_search_with_evolution_spends_its_budget(tmp_path):
    config = _config()
    storage = InMemoryStorage()
    outcome = SearchDriver(config, storage, 1, tmp_path, evaluate_fn=fakes.target_share).run()
    assert outcome.status == "succeeded"
    assert outcome.evaluated == 12
