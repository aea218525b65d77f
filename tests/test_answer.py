"""Tests of the trustworthy answer: hand-worked racing, seeds, statistics, and whole searches on fakes.

Run: .venv/bin/python -m pytest -q tests/test_answer.py
(-s shows the measured rates the simulation tests print.)
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from auxnas.controller.answer import (
    CONFIRM_OFFSET,
    Answer,
    check_disjoint,
    decide,
    training_seeds,
    unconfirmed,
)
from auxnas.controller.answer_simulation import Scenario, candidate_key, rates, simulate_search
from auxnas.controller.confirmation import (
    BASIC,
    confirm,
    fallback,
    family_order,
    fixed_sequence,
    holm,
    p_greater,
    t_interval,
)
from auxnas.controller.racing import (
    Promotion,
    final_promotions,
    finalists,
    paired_gains,
    promotions,
    rung_ranking,
    summarize,
)

SIMS = 200

# ---------------------------------------------------------------- paired gains


def test_paired_gains_pair_by_seed_and_need_joint_everywhere():
    g = paired_gains({3: 0.70, 1: 0.62}, {1: 0.60, 2: 0.5, 3: 0.65}, "abc")
    assert g.seeds == (1, 3)
    assert g.gains == pytest.approx((0.02, 0.05))
    assert g.mean == pytest.approx(0.035)
    assert g.se == pytest.approx(0.015)  # sd of (0.02, 0.05) is 0.0212..., / sqrt(2)
    assert summarize("x", [0.1]).se is None
    with pytest.raises(ValueError, match="seed"):
        paired_gains({1: 0.6, 4: 0.6}, {1: 0.5}, "abc")


# ---------------------------------------------------------------- racing (hand-worked)

# Eight candidates a..h arrive in that order; rungs (1, 3) seeds, promote the top quarter.
# First-seed paired gains:  a .010  b .030  c -.005  d .020  e .025  f .040  g .015  h .035
FIRST = {"a": 0.010, "b": 0.030, "c": -0.005, "d": 0.020, "e": 0.025, "f": 0.040, "g": 0.015, "h": 0.035}
# b's, f's and h's 2nd and 3rd seeds once promoted:
MORE = {"b": [0.000, 0.010], "f": [0.020, 0.015], "h": [-0.010, 0.005]}


def test_racing_promotes_by_the_asha_rule_hand_worked():
    # After a, b, c, d: n0 = 4 completed rung 0, quota floor(4 * 0.25) = 1.
    #   rank by first gain: b .030 > d .020 > a .010 > c -.005  -> top 1 = {b}: promote b to 3 seeds.
    gains = {k: [FIRST[k]] for k in "abcd"}
    promoted = {0: set()}
    assert promotions(gains, promoted) == [Promotion("b", 1, 3)]
    promoted[0].add("b")
    gains["b"] += MORE["b"]  # b trained on seeds 2 and 3
    # After e: n0 = 5, quota floor(1.25) = 1; top 1 is still b (.030 > e .025), already promoted.
    gains["e"] = [FIRST["e"]]
    assert promotions(gains, promoted) == []
    # After f, g, h: n0 = 8, quota floor(2) = 2. Ranking at rung 0 uses each one's FIRST gain,
    #   b included (its rung-0 result): f .040 > h .035 > b .030 > e .025 > d > g > a > c.
    #   Top 2 = {f, h}, neither promoted -> promote f then h. b, now 3rd, stays promoted (never undone).
    for k in "fgh":
        gains[k] = [FIRST[k]]
    assert rung_ranking(gains, 1)[:3] == ["f", "h", "b"]
    assert promotions(gains, promoted) == [Promotion("f", 1, 3), Promotion("h", 1, 3)]
    promoted[0] |= {"f", "h"}
    gains["f"] += MORE["f"]
    gains["h"] += MORE["h"]
    assert promotions(gains, promoted) == [] and final_promotions(gains, promoted) == []
    # Finalists (k = 3): rung 1 first, by mean: f .025 > b .01333 > h .010. e has .025 on ONE seed
    #   and stays out: a one-seed mean does not outrank three-seed survivors.
    assert finalists(gains, 3) == ["f", "b", "h"]


def test_racing_three_rungs_ties_and_the_final_sweep():
    # rungs (1, 2, 4), promote half. p, q already promoted from rung 0 and have 2 seeds.
    gains = {"p": [0.1, 0.3], "q": [0.2, -0.2], "r": [0.05], "s": [0.0]}
    # Rung 0: n0 = 4, quota 2, by first gain q .2 > p .1 > r > s: top 2 = {q, p}, both promoted.
    # Rung 1: n1 = 2 (p, q), quota floor(1) = 1, by mean of 2 seeds p .2 > q .0: promote p to 4 seeds.
    assert promotions(gains, {0: {"p", "q"}}, (1, 2, 4), 0.5) == [Promotion("p", 2, 4)]
    # Ties go to the earlier candidate: u and v tie at .02, u came first.
    tie = {"u": [0.02], "v": [0.02], "w": [0.0], "x": [-0.1]}
    assert promotions(tie, {}, (1, 3), 0.25) == [Promotion("u", 1, 3)]
    # Final sweep: 3 candidates, quota floor(0.75) = 0 under ASHA; the final sweep promotes the best.
    few = {"a": [0.01], "b": [0.03], "c": [0.02]}
    assert promotions(few, {}) == []
    assert final_promotions(few, {}) == [Promotion("b", 1, 3)]
    assert final_promotions({**few, "b": [0.03, 0.0, 0.0]}, {0: {"b"}}) == []
    # Finalists: equal means at the same rung -> more seeds first.
    assert finalists({"y": [0.02], "x": [0.02, 0.02]}, 2) == ["x", "y"]


# ---------------------------------------------------------------- seeds


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(-(10**6), 10**9),
    top=st.integers(1, 60),
    confirm_n=st.integers(0, 60),
    stride=st.integers(1, 8),
)
def test_confirmation_never_reuses_a_search_seed(seed, top, confirm_n, stride):
    rungs = tuple(sorted({1, max(1, top // 3), top}))
    seeds = training_seeds(seed, rungs, confirm_n, stride)
    search_span = {s + j for s in seeds.search for j in range(stride)}
    confirm_span = {s + j for s in seeds.confirm for j in range(stride)}
    assert len(seeds.search) == max(rungs) and len(seeds.confirm) == confirm_n
    assert not search_span & confirm_span
    assert seeds.search[0] == seed and (not seeds.confirm or seeds.confirm[0] == seed + CONFIRM_OFFSET)


def test_seed_overlap_raises():
    with pytest.raises(ValueError, match="reuse"):
        training_seeds(0, (1, 3, CONFIRM_OFFSET + 1), 5)
    with pytest.raises(ValueError, match="reuse"):
        training_seeds(0, (1, 3), 5, stride=4000)  # 3 evaluations x 4000 seeds reach 10_000
    with pytest.raises(ValueError, match="reuse"):
        check_disjoint([0, 1, 2], [7], reserved=[7])  # e.g. a calibration replicate's seed


def test_simulated_searches_never_confirm_on_a_search_seed():
    for i in range(20):
        r = simulate_search(Scenario.one_helps(12, 2.0), np.random.default_rng(i), seed=i * 7)
        assert r.search_seeds and len(r.confirm_seeds) == 5
        assert not r.search_seeds & r.confirm_seeds


# ---------------------------------------------------------------- statistics


def test_t_interval_and_p_value_match_a_hand_computation():
    g = summarize("m", [0.01, 0.03, 0.02, 0.00, 0.04])  # mean .02, sd .0158114, se .0070711
    lo, hi = t_interval(g, 0.05)
    t95 = 2.131847  # t quantile 0.95, 4 degrees of freedom
    assert (lo, hi) == pytest.approx((0.02 - t95 * 0.0070711, 0.02 + t95 * 0.0070711), abs=1e-6)
    assert p_greater(g) == pytest.approx(stats.t.sf(0.02 / 0.0070711, 4), rel=1e-4)
    assert t_interval(g, 0.0) == (-math.inf, math.inf)
    assert p_greater(summarize("z", [0.01, 0.01])) == 0.0


def test_corrections_give_levels_by_their_rule():
    always, never = (lambda i, a: True), (lambda i, a: False)
    # Holm, p = (.03, .001, .2, .01), alpha .05: order 1, 3, 0, 2 at .05/4, .05/3, .05/2, .05/1.
    p = [0.03, 0.001, 0.2, 0.01]
    by_p = lambda i, a: p[i] < a  # noqa: E731
    assert holm(p, 0.05, by_p) == pytest.approx(
        [0.025, 0.0125, 0.025, 0.05 / 3]
    )  # 0 fails at .025: 2 keeps .025
    assert holm(p, 0.05, always) == pytest.approx([0.025, 0.0125, 0.05, 0.05 / 3])
    # Fallback (.8, .2, 0, 0): a rejection passes its whole level on to the next.
    assert fallback([0.8, 0.2, 0, 0], 0.05, always) == pytest.approx([0.04, 0.05, 0.05, 0.05])
    assert fallback([0.8, 0.2, 0, 0], 0.05, never) == pytest.approx([0.04, 0.01, 0, 0])
    assert fixed_sequence(3, 0.05, lambda i, a: i == 0) == pytest.approx([0.05, 0.05, 0])
    assert family_order(["k1", "k2", "k3"]) == ["k1", BASIC, "k2", "k3"]


JOINT_R = {10_000 + i: r for i, r in enumerate([0.60, 0.61, 0.59, 0.62, 0.60])}


def _rewards(deltas: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    return {m: {s: JOINT_R[s] + d for s, d in zip(JOINT_R, ds, strict=True)} for m, ds in deltas.items()}


def test_verdict_use_a_candidate_with_intervals_that_agree():
    deltas = {
        "97294ac0": [0.020, 0.025, 0.018, 0.022, 0.021],
        "5c1f00aa": [0.0, -0.01, 0.01, 0.0, 0.0],
        "0b3e2d11": [0.0] * 5,
        BASIC: [0.01, 0.03, -0.01, 0.02, 0.0],
    }
    comps = confirm(_rewards(deltas), JOINT_R, ["97294ac0", "5c1f00aa", "0b3e2d11"])
    a = decide(comps, 5)
    assert a.recommended and a.module == "97294ac0" and a.confirmed
    line = a.verdict_line()
    num = r"[+-]\d\.\d{3}"
    assert re.fullmatch(
        rf"use 97294ac0: {num} \[{num}, {num}\] over Joint on 5 fresh seeds; "
        rf"{num} \[{num}, {num}\] over basic",
        line,
    ), line
    # printed over-Joint interval = the level the correction tested it at (0.8 * 0.05, racing winner)
    g = summarize("m", deltas["97294ac0"])
    half = stats.t.ppf(1 - 0.04, 4) * g.se
    assert line.startswith(f"use 97294ac0: {g.mean:+.3f} [{g.mean - half:+.3f}, {g.mean + half:+.3f}]")
    assert a.over_joint.adj_lower > 0
    d = a.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["verdict"] == line and d["module"] == "97294ac0"


def test_verdict_use_basic_and_no_module():
    deltas = {"aa": [0.0, 0.01, -0.01, 0.0, 0.0], "bb": [0.0] * 5, BASIC: [0.05, 0.052, 0.049, 0.051, 0.05]}
    a = decide(confirm(_rewards(deltas), JOINT_R, ["aa", "bb"]), 5)
    num = r"[+-]\d\.\d{3}"
    assert a.module == BASIC
    assert re.fullmatch(rf"use basic: {num} \[{num}, {num}\] over Joint on 5 fresh seeds", a.verdict_line())
    deltas[BASIC] = [0.01, -0.01, 0.0, 0.005, -0.003]
    a = decide(confirm(_rewards(deltas), JOINT_R, ["aa", "bb"]), 5)
    assert not a.recommended and a.module is None
    assert re.fullmatch(
        rf"no module beats Joint on 5 fresh seeds \({num} \[-\d\.\d{{3}}, {num}\]\): "
        "auxiliary learning is not recommended here",
        a.verdict_line(),
    ), a.verdict_line()
    json.dumps(a.to_dict(), allow_nan=False)


def test_unconfirmed_answer_is_never_a_recommendation():
    gains = {"97294ac0": [0.03, 0.01, 0.02], "11111111": [0.05]}
    a = unconfirmed(gains, search_seeds=[0, 1, 2])
    assert not a.recommended and not a.confirmed and a.module is None
    assert a.verdict_line() == (
        "unconfirmed (confirm_seeds: 0): best candidate 97294ac0 +0.020 over Joint "
        "on its 3 search seeds; not a recommendation"
    )
    r = simulate_search(Scenario.one_helps(12, 2.0), np.random.default_rng(0), confirm_seeds=0)
    assert not r.answer.recommended and r.answer.verdict_line().startswith("unconfirmed (confirm_seeds: 0)")
    assert isinstance(r.answer, Answer) and json.dumps(r.answer.to_dict(), allow_nan=False)


# ---------------------------------------------------------------- whole searches on fakes


@pytest.mark.parametrize(
    "name, scenario",
    [
        ("12 candidates, nothing helps", Scenario.none_helps(12)),
        ("40 candidates, nothing helps", Scenario.none_helps(40)),
        ("12 candidates, all -0.3 noise-std (harmful), basic 0", Scenario.none_helps(12, gain=-0.3)),
    ],
)
def test_no_module_helps_recommends_rarely(name, scenario):
    r = rates(scenario, SIMS, seed=11)
    print(f"\n{name}: recommends a module in {r.recommend:.1%} of {SIMS} searches")
    assert r.recommend <= 0.10


@pytest.mark.parametrize("n", [12, 40])
def test_one_module_at_two_noise_std_is_found(n):
    r = rates(Scenario.one_helps(n, 2.0), SIMS, seed=12)
    print(
        f"\n{n} candidates, one at +2 noise-std: recommended {r.find:.1%} (any module {r.recommend:.1%}, "
        f"among finalists {r.finalist:.1%})"
    )
    assert r.find >= 0.80


def test_the_correction_controls_the_family_not_each_comparison():
    # Same simulated data (same RNG seeds) decided with and without the correction.
    corrected = rates(Scenario.none_helps(12), SIMS, seed=13)
    uncorrected = rates(Scenario.none_helps(12), SIMS, seed=13, correction="none")
    print(
        f"\nnothing helps, 4 comparisons vs Joint: corrected {corrected.recommend:.1%}, "
        f"uncorrected per-comparison {uncorrected.recommend:.1%}"
    )
    assert corrected.recommend <= 0.10 < uncorrected.recommend


def test_candidate_keys_are_distinct():
    assert len({candidate_key(i) for i in range(1000)}) == 1000
