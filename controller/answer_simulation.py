"""A whole search on fakes: racing, finalists and confirmation over a benchmark with known truth.

Fake benchmark (common random numbers): the reward of module g at training seed s is

    joint_mean + gain_g * noise_std + seed_effect(s) + e_g(s),   e_g(s) ~ N(0, noise_std / sqrt(2))

with Joint's gain 0. seed_effect(s) is shared by every module at seed s and cancels in a paired
gain; e_g and e_Joint are independent, so a per-seed paired gain has standard deviation exactly
`noise_std`: "noise-std", the unit the true gains are given in (on the real benchmark basic's
paired gain is about 1.1 noise-std).

The search: candidates arrive one at a time in a random order (the budget is the number of
candidates); each is trained on the first search seed; after each result the ASHA promotions are
trained at once (one worker, so results come back in order). When the budget is spent the final
sweep runs, then the finalists, and confirmation on the fresh seeds (or the unconfirmed answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from auxnas.controller.answer import DEFAULT_CONFIRM_SEEDS, Answer, decide, training_seeds, unconfirmed
from auxnas.controller.confirmation import BASIC, DEFAULT_CONFIDENCE, DEFAULT_CORRECTION, JOINT, confirm
from auxnas.controller.racing import (
    DEFAULT_FINALISTS,
    DEFAULT_PROMOTE_FRACTION,
    DEFAULT_RUNGS,
    all_paired_gains,
    final_promotions,
    finalists,
    promotions,
)


@dataclass(frozen=True)
class Scenario:
    """True paired gains over Joint, in noise-std units, of the candidates and of basic."""

    gains: tuple[float, ...]
    basic: float = 0.0
    noise_std: float = 0.01
    seed_std: float = 0.02
    joint_mean: float = 0.6

    @classmethod
    def one_helps(cls, n: int, effect: float, rest: float = 0.0, basic: float = 0.0) -> Scenario:
        """Candidate 0 helps by `effect`; the n - 1 others have gain `rest`."""
        return cls((effect,) + (rest,) * (n - 1), basic)

    @classmethod
    def none_helps(cls, n: int, gain: float = 0.0, basic: float = 0.0) -> Scenario:
        """Every candidate has gain `gain` (0: no effect; < 0: all slightly harmful)."""
        return cls((gain,) * n, basic)


def candidate_key(i: int) -> str:
    """A stable hash-like 8-hex key for scenario candidate i."""
    return f"{(i * 2654435761 + 0x9E3779B9) % 2**32:08x}"


class FakeBench:
    """Rewards on demand; each (module, seed) is drawn once, so Joint at s is shared by all."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator):
        self.s, self.rng = scenario, rng
        self.truth = {candidate_key(i): g for i, g in enumerate(scenario.gains)}
        self.truth[BASIC] = scenario.basic
        self.truth[JOINT] = 0.0
        self._seed_effect: dict[int, float] = {}
        self._rewards: dict[tuple[str, int], float] = {}

    def reward(self, key: str, seed: int) -> float:
        if (key, seed) not in self._rewards:
            if seed not in self._seed_effect:
                self._seed_effect[seed] = self.rng.normal(0.0, self.s.seed_std)
            noise = self.rng.normal(0.0, self.s.noise_std / math.sqrt(2.0))
            mu = self.s.joint_mean + self.truth[key] * self.s.noise_std
            self._rewards[key, seed] = mu + self._seed_effect[seed] + noise
        return self._rewards[key, seed]

    def seeds_of(self, key: str) -> set[int]:
        return {s for k, s in self._rewards if k == key}


@dataclass
class SimResult:
    answer: Answer
    truth: dict[str, float]
    finalists: list[str]
    search_seeds: set[int] = field(default_factory=set)  # every seed trained during racing
    confirm_seeds: set[int] = field(default_factory=set)  # the fresh seeds of confirmation

    @property
    def best_key(self) -> str | None:
        """The module with the (unique) highest true gain, if it is above 0."""
        mods = {k: g for k, g in self.truth.items() if k != JOINT}
        top = max(mods.values())
        keys = [k for k, g in mods.items() if g == top]
        return keys[0] if top > 0 and len(keys) == 1 else None


def run_racing(
    bench: FakeBench, arrival: Sequence[str], search_seeds: Sequence[int], rungs, promote_fraction
) -> dict[str, list[float]]:
    """Racing on the fake bench: returns key -> per-seed paired gains over Joint."""
    rewards: dict[str, dict[int, float]] = {}
    joint: dict[int, float] = {}
    promoted: dict[int, set[str]] = {r: set() for r in range(len(rungs) - 1)}

    def train(key: str, n: int) -> None:
        for s in search_seeds[len(rewards[key]) : n]:
            joint[s] = bench.reward(JOINT, s)
            rewards[key][s] = bench.reward(key, s)

    def race(rule) -> None:
        while due := rule(all_paired_gains(rewards, joint), promoted, rungs, promote_fraction):
            for p in due:
                promoted[p.rung - 1].add(p.key)
                train(p.key, p.seeds)

    for key in arrival:
        rewards[key] = {}
        train(key, rungs[0])
        race(promotions)
    race(final_promotions)
    return all_paired_gains(rewards, joint)


def simulate_search(
    scenario: Scenario,
    rng: np.random.Generator,
    rungs: Sequence[int] = DEFAULT_RUNGS,
    promote_fraction: float = DEFAULT_PROMOTE_FRACTION,
    k: int = DEFAULT_FINALISTS,
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS,
    confidence: float = DEFAULT_CONFIDENCE,
    correction: str = DEFAULT_CORRECTION,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> SimResult:
    """One whole search on the fake bench, as the product would run it."""
    bench = FakeBench(scenario, rng)
    seeds = training_seeds(seed, rungs, confirm_seeds)
    arrival = [candidate_key(int(i)) for i in rng.permutation(len(scenario.gains))]
    gains = run_racing(bench, arrival, seeds.search, rungs, promote_fraction)
    search_used = set().union(*(bench.seeds_of(key) for key in [*arrival, JOINT]))
    fin = finalists(gains, k, rungs)
    if confirm_seeds == 0:
        ans = unconfirmed(gains, rungs, seeds.search, confidence)
    else:
        joint = {s: bench.reward(JOINT, s) for s in seeds.confirm}
        rewards = {m: {s: bench.reward(m, s) for s in seeds.confirm} for m in fin + [BASIC]}
        comps = confirm(rewards, joint, fin, BASIC, confidence, correction, weights)
        ans = decide(comps, confirm_seeds, correction, confidence)
    return SimResult(ans, dict(bench.truth), fin, search_used, set(seeds.confirm))


@dataclass(frozen=True)
class Rates:
    sims: int
    recommend: float  # any module recommended
    find: float  # the truly best module recommended (0 when there is none)
    finalist: float  # the truly best candidate among the finalists


def rates(scenario: Scenario, sims: int = 200, seed: int = 0, **kwargs) -> Rates:
    """Rates over `sims` simulated searches, each with its own child RNG of `seed`."""
    rec = found = fin = 0
    for child in np.random.SeedSequence(seed).spawn(sims):
        r = simulate_search(scenario, np.random.default_rng(child), **kwargs)
        rec += r.answer.recommended
        found += r.best_key is not None and r.answer.module == r.best_key
        fin += r.best_key is not None and r.best_key in r.finalists
    return Rates(sims, rec / sims, found / sims, fin / sims)


def power_table(
    effects: Sequence[float] = (0.5, 1, 1.5, 2, 3),
    confirm_seeds: Sequence[int] = (3, 5, 8, 10),
    n_candidates: int = 12,
    sims: int = 200,
    seed: int = 0,
    **kwargs,
) -> list[dict]:
    """Recommend / find rates by effect (one candidate helps, the rest and basic at 0) and by
    confirm_seeds; effect 0 (nothing helps) is the false-positive row."""
    rows = []
    for n in confirm_seeds:
        for effect in (0.0, *effects):
            sc = Scenario.one_helps(n_candidates, effect) if effect else Scenario.none_helps(n_candidates)
            r = rates(sc, sims, seed, confirm_seeds=n, **kwargs)
            rows.append(
                {
                    "effect": effect,
                    "confirm_seeds": n,
                    "candidates": n_candidates,
                    "sims": sims,
                    "recommend": r.recommend,
                    "find": r.find,
                    "finalist": r.finalist,
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    """The power table as markdown: one row per effect, find rate (recommend rate) per column."""
    ns = sorted({r["confirm_seeds"] for r in rows})
    effects = sorted({r["effect"] for r in rows})
    cell = {(r["effect"], r["confirm_seeds"]): r for r in rows}
    head = "| true gain (noise-std) | " + " | ".join(f"confirm_seeds={n}" for n in ns) + " |"
    lines = [head, "|" + "---|" * (len(ns) + 1)]
    for e in effects:
        cells = []
        for n in ns:
            r = cell[e, n]
            cells.append(
                f"{r['recommend']:.0%} recommend" if e == 0 else f"{r['find']:.0%} ({r['recommend']:.0%})"
            )
        label = "0 (nothing helps: false positives)" if e == 0 else f"{e:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
