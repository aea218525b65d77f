"""The calibration phase: trials per replicate with disjoint seeds, the fidelity figures stored
and shown, and a search stopped below `search.calibrate.min_spearman`."""

from __future__ import annotations

import functools

import pytest

from auxnas.controller.calibration import calibration_genotypes
from auxnas.controller.driver import SearchDriver
from auxnas.controller.storage import InMemoryStorage
from auxnas.evaluator import testing as fakes
from auxnas.evaluator.seeds import replicate_seeds, trained_seeds
from tests.service_support import tiny_search_config

pytestmark = pytest.mark.usefixtures("ray_session")


def _config(noise_free_budget: int = 2, **calibrate):
    return tiny_search_config(
        search={"budget": noise_free_budget, "calibrate": {"genotypes": 8, "replicates": 3, **calibrate}},
        train={"reward_seeds": 2},
    )


def test_calibration_genotypes_are_seeded_distinct_and_start_with_the_baselines():
    space = tiny_search_config().search_space()
    a, b = calibration_genotypes(space, 8, seed=0), calibration_genotypes(space, 8, seed=0)
    assert [k for k, _ in a[:2]] == ["joint", "basic"] and a[0][1] is None
    hashes = [g.canonical_hash() for _, g in a[1:]]
    assert len(set(hashes)) == 9 and hashes == [g.canonical_hash() for _, g in b[1:]]
    assert hashes != [g.canonical_hash() for _, g in calibration_genotypes(space, 8, seed=1)[1:]]


def test_replicates_train_with_disjoint_seeds():
    config = _config().eval_config()
    seeds = [set(trained_seeds(s, 2)) for s in replicate_seeds(config, 3)]
    assert seeds[0] == {0, 1} and all(not (seeds[i] & seeds[j]) for i in range(3) for j in range(i + 1, 3))


def test_a_low_noise_reward_ranks_and_the_search_goes_on_without_spending_budget(tmp_path):
    store = InMemoryStorage()
    fn = functools.partial(fakes.noisy, noise=0.001)
    outcome = SearchDriver(_config(min_spearman=0.6), store, 1, tmp_path, evaluate_fn=fn).run()
    assert outcome.status == "succeeded", outcome.error
    cal = [t for t in store.trials(1) if t.phase == "calibration"]
    assert len(cal) == 3 * (2 + 8) and {t.replicate for t in cal} == {0, 1, 2}
    assert outcome.evaluated == 2  # calibration spent none of the budget
    fid = store.fidelity[1]
    assert fid["spearman"] > 0.9 and fid["verdict"].startswith("reward ranks architectures (spearman")
    assert fid["min_spearman"] == 0.6 and len(fid["per_genotype"]) == 9
    assert outcome.best.phase == "search"


def test_a_noisy_reward_stops_the_search_with_the_figure(tmp_path):
    store = InMemoryStorage()
    fn = functools.partial(fakes.noisy, noise=10.0)  # noise far above the architecture spread
    outcome = SearchDriver(_config(min_spearman=0.9), store, 1, tmp_path, evaluate_fn=fn).run()
    assert outcome.status == "failed"
    assert outcome.error.startswith("calibration: replicate spearman ")
    assert "is below search.calibrate.min_spearman=0.9: reward is dominated by noise" in outcome.error
    assert not [t for t in store.trials(1) if t.phase == "search"]  # it never searched
    assert store.fidelity[1]["spearman"] < 0.9


def test_calibrate_only_scores_the_set_and_stops(tmp_path):
    store = InMemoryStorage()
    outcome = SearchDriver(_config(), store, 1, tmp_path, evaluate_fn=fakes.noisy, calibrate_only=True).run()
    assert outcome.status == "succeeded" and outcome.fidelity is not None
    assert {t.phase for t in store.trials(1)} == {"calibration"}
