"""Reward-fidelity statistics against hand cases and fakes with known reward + known noise."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from auxnas.controller.fidelity import (
    fidelity_report,
    kendall_tau_b,
    rankdata,
    spearman,
    spearman_brown_factor,
)


def test_ranks_average_ties():
    assert rankdata([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]
    assert rankdata([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]


def test_spearman_and_kendall_on_hand_cases():
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [9, 8, 7, 6, 5]) == pytest.approx(-1.0)
    # one swapped pair of 5: rho = 1 - 6*2/(5*24) = 0.9; tau = (9 - 1) / 10
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert kendall_tau_b([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_b([1, 2, 3], [4, 4, 4]))


def test_ties_follow_tau_b_and_midrank_spearman():
    x, y = [1, 2, 2, 3], [1, 2, 3, 3]
    # pairs: (0,1)+ (0,2)+ (0,3)+ (1,2) x-tie (1,3)+ (2,3) y-tie -> 4 concordant, 0 discordant
    assert kendall_tau_b(x, y) == pytest.approx(4 / math.sqrt(5 * 5))
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3.5, 3.5])
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_against_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12), rng.integers(0, 5, 12)  # many ties
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_spearman_brown():
    # k = R(1-r) / (r(1-R)): r=0.5, R=0.8 -> 0.8*0.5/(0.5*0.2) = 4
    assert spearman_brown_factor(0.5, 0.8) == pytest.approx(4.0)
    assert spearman_brown_factor(0.2, 0.8) == pytest.approx(16.0)
    r, k = 0.3, spearman_brown_factor(0.3, 0.8)
    assert k * r / (1 + (k - 1) * r) == pytest.approx(0.8)  # the forward formula gives the target back
    assert spearman_brown_factor(0.0) is None and spearman_brown_factor(-0.4) is None
    assert spearman_brown_factor(float("nan")) is None


def fake_rewards(n: int, replicates: int, noise: float, seed: int = 0, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, 1.0, n)
    table = quality[:, None] + rng.normal(0.0, noise, (n, replicates)) + offset
    return {f"g{i}": table[i].tolist() for i in range(n)}, quality


def test_bootstrap_interval_contains_the_true_correlation_on_a_large_case():
    noise = 0.7
    rewards, _ = fake_rewards(400, 2, noise, seed=11)
    rho = 1.0 / (1.0 + noise**2)  # correlation of two noisy readings of the same N(0,1) quality
    true_spearman = 6.0 / math.pi * math.asin(rho / 2.0)
    true_kendall = 2.0 / math.pi * math.asin(rho)
    r = fidelity_report(rewards, resamples=300, seed=1)
    assert r.spearman == pytest.approx(true_spearman, abs=0.06)
    assert r.kendall == pytest.approx(true_kendall, abs=0.06)
    lo, hi = r.spearman_ci
    assert lo <= true_spearman <= hi and hi - lo < 0.2
    lo, hi = r.kendall_ci
    assert lo <= true_kendall <= hi
    assert r.noise == pytest.approx(noise, rel=0.1)
    assert r.spread == pytest.approx(math.sqrt(1 + noise**2 / 2), rel=0.1)  # std of 2-replicate means
    # seeded: the same input gives the same interval
    assert fidelity_report(rewards, resamples=300, seed=1).spearman_ci == r.spearman_ci


def test_a_good_reward_ranks_and_a_noisy_one_is_named_with_what_to_raise():
    good, _ = fake_rewards(30, 3, 0.2, seed=2)
    r = fidelity_report(good, threshold=0.5, resamples=200)
    assert r.verdict.startswith("reward ranks architectures (spearman ")
    assert f"{r.spearman:.2f} [{r.spearman_ci[0]:.2f}, {r.spearman_ci[1]:.2f}]" in r.verdict
    assert len(r.pairs) == 3 and {p.replicates for p in r.pairs} == {(0, 1), (0, 2), (1, 2)}

    weak, _ = fake_rewards(30, 2, 1.5, seed=5)
    w = fidelity_report(weak, threshold=0.5, resamples=200, reward_seeds=2)
    assert 0 < w.spearman < 0.5
    assert w.verdict.startswith("reward is dominated by noise (spearman ")
    assert w.reward_seeds_needed == math.ceil(spearman_brown_factor(w.spearman) * 2)
    assert f"raise train.reward_seeds from 2 to {w.reward_seeds_needed}" in w.verdict

    anti = {"a": [0.1, 0.4], "b": [0.2, 0.3], "c": [0.3, 0.2], "d": [0.4, 0.1]}
    a = fidelity_report(anti, resamples=100)
    assert a.spearman == pytest.approx(-1.0) and a.seeds_factor is None and a.reward_seeds_needed is None
    assert "no architecture signal" in a.verdict and "train.reward_seeds" not in a.verdict


def test_gains_over_joint_beat_share_and_per_genotype_figures():
    rewards = {"a": [0.70, 0.72], "b": [0.60, 0.66], "c": [0.71, 0.62], "d": [0.50, 0.52]}
    r = fidelity_report(rewards, joint=[0.65, 0.64], resamples=100)
    by = {g["name"]: g for g in r.per_genotype}
    assert by["a"]["gain_over_joint"] == pytest.approx([0.05, 0.08])
    assert by["b"]["mean"] == pytest.approx(0.63) and by["b"]["std"] == pytest.approx(math.sqrt(0.0018))
    assert r.beat_joint_share == pytest.approx(0.25)  # only a beats Joint in both replicates
    stds = [np.std(v, ddof=1) for v in rewards.values()]
    assert r.noise == pytest.approx(math.sqrt(np.mean(np.square(stds))))
    assert r.spread == pytest.approx(np.std([np.mean(v) for v in rewards.values()], ddof=1))
    assert r.joint["mean"] == pytest.approx(0.645)


def test_failed_genotypes_are_left_out_and_to_dict_is_json():
    rewards = {"a": [0.1, 0.2], "b": [0.2, 0.1], "c": [0.3, 0.35], "x": [0.4, None], "y": [float("nan"), 0.1]}
    r = fidelity_report(rewards, resamples=50)
    assert r.genotypes == ["a", "b", "c"] and r.excluded == ["x", "y"]
    doc = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert doc["verdict"] == r.verdict and doc["pairs"][0]["replicates"] == [0, 1]
    assert doc["beat_joint_share"] is None and "spread_to_noise" in doc


@pytest.mark.parametrize(
    ("rewards", "kw", "field"),
    [
        ({"a": [0.1], "b": [0.2], "c": [0.3]}, {}, "rewards: at least 2 replicates"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3]}, {}, "rewards: at least 3 genotypes"),
        ({"a": [0.1, 0.2], "b": [0.2], "c": [0.3, 0.1]}, {}, "rewards: every genotype"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "c": [0.3, 0.1]}, {"joint": [0.1]}, "joint:"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "c": [0.3, 0.1]}, {"target": 1.0}, "target:"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "c": [0.3, 0.1]}, {"reward_seeds": 0}, "reward_seeds:"),
    ],
)
def test_bad_inputs_name_what_is_wrong(rewards, kw, field):
    with pytest.raises(ValueError, match=field):
        fidelity_report(rewards, **kw)


def test_centred_noise_ignores_a_shift_common_to_a_replicate():
    from auxnas.controller.fidelity import fidelity_report

    base = {f"g{i}": [0.1 * i, 0.1 * i + 0.05] for i in range(6)}  # replicate 2 is replicate 1 + 0.05
    report = fidelity_report(base, resamples=50)
    assert report.noise > 0.03 and report.centred_noise == pytest.approx(0.0, abs=1e-12)
    assert report.to_dict()["centred_noise"] == pytest.approx(0.0, abs=1e-12)
