"""Racing over training seeds: paired gains over Joint, asynchronous successive halving, finalists.

A candidate's *paired gain* at training seed s is reward(candidate, s) - reward(Joint, s): Joint
is evaluated at every seed any candidate uses (common random numbers), so the seed's shared luck
cancels and only the candidate's own noise is left.

Racing is successive halving where the resource is training seeds. `rungs` are seed counts
(default (1, 3)): every candidate starts on rungs[0] seeds; a candidate promoted to rung r + 1 is
trained on more seeds until it has rungs[r + 1]. Promotion is the asynchronous (ASHA) rule, see
`promotions`. Pure functions: the caller owns the evaluations and the record of promotions.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_RUNGS = (1, 3)
DEFAULT_PROMOTE_FRACTION = 0.25
DEFAULT_FINALISTS = 3


@dataclass(frozen=True)
class GainSummary:
    """One module's paired gains over a baseline: the seeds, the mean, its standard error.

    `se` is None with a single seed (no spread to estimate)."""

    key: str
    seeds: tuple[int, ...]
    gains: tuple[float, ...]
    mean: float
    se: float | None

    @property
    def n(self) -> int:
        return len(self.gains)


def paired_gains(
    rewards: Mapping[int, float], baseline: Mapping[int, float], key: str = "", baseline_name: str = "Joint"
) -> GainSummary:
    """The paired gains of one module at each of its seeds: reward(module, s) - reward(baseline, s).

    `rewards` and `baseline` map training seed -> reward. Every seed of the module must have a
    baseline reward (the protocol evaluates Joint at every seed any candidate uses): a missing one
    is a caller error and raises ValueError naming it. Seeds are reported in increasing order."""
    missing = sorted(s for s in rewards if s not in baseline)
    if missing:
        raise ValueError(f"{key or 'module'}: no {baseline_name} reward at seed(s) {missing}")
    seeds = tuple(sorted(rewards))
    return summarize(key, [rewards[s] - baseline[s] for s in seeds], seeds)


def summarize(key: str, gains: Sequence[float], seeds: Sequence[int] | None = None) -> GainSummary:
    """Mean and standard error (sample sd / sqrt(n); None for n < 2) of a list of gains."""
    values = [float(g) for g in gains]
    if not values:
        raise ValueError(f"{key or 'module'}: no gains to summarize")
    n = len(values)
    mean = math.fsum(values) / n
    se = None
    if n >= 2:
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
        se = math.sqrt(var / n)
    return GainSummary(key, tuple(seeds) if seeds is not None else tuple(range(n)), tuple(values), mean, se)


def all_paired_gains(
    rewards: Mapping[str, Mapping[int, float]], joint: Mapping[int, float]
) -> dict[str, list[float]]:
    """key -> per-seed paired gains over Joint (in seed order), keeping the candidates' order.

    This is the input `promotions` and `finalists` take."""
    return {key: list(paired_gains(r, joint, key).gains) for key, r in rewards.items()}


class Promotion(NamedTuple):
    """Promote `key` to rung `rung`: train it until it has `seeds` paired gains."""

    key: str
    rung: int
    seeds: int


def _check_rungs(rungs: Sequence[int], promote_fraction: float) -> None:
    if not rungs or rungs[0] < 1 or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
        raise ValueError(f"rungs: increasing seed counts starting at 1 or more, got {tuple(rungs)}")
    if not 0 < promote_fraction < 1:
        raise ValueError(f"promote_fraction: between 0 and 1 exclusive, got {promote_fraction}")


def _quota(n: int, promote_fraction: float) -> int:
    """floor(n * promote_fraction), robust to float error (0.29 * 100 is 28.999...)."""
    return math.floor(n * promote_fraction + 1e-9)


def rung_ranking(gains: Mapping[str, Sequence[float]], seeds: int) -> list[str]:
    """The candidates that completed a rung of `seeds` seeds, best first.

    Ranked by the mean of their first `seeds` gains (the rung's own result, even for a candidate
    that has since gone further), ties by candidate order (the mapping's order)."""
    done = [(i, k) for i, (k, g) in enumerate(gains.items()) if len(g) >= seeds]
    return [k for i, k in sorted(done, key=lambda ik: (-math.fsum(gains[ik[1]][:seeds]) / seeds, ik[0]))]


def promotions(
    gains: Mapping[str, Sequence[float]],
    promoted: Mapping[int, Collection[str]],
    rungs: Sequence[int] = DEFAULT_RUNGS,
    promote_fraction: float = DEFAULT_PROMOTE_FRACTION,
    minimum: int = 0,
) -> list[Promotion]:
    """The promotions due now under the asynchronous successive-halving (ASHA) rule.

    `gains`: key -> per-seed paired gains so far, in candidate order (the tie-break).
    `promoted`: rung r -> the keys already promoted *from* rung r (missing rung = none).
    Rule, for each rung r below the top: of the n_r candidates that have completed rung r
    (have at least rungs[r] gains), the top floor(n_r * promote_fraction) by mean gain at that
    rung (`rung_ranking`) that have not yet been promoted from rung r are promoted to r + 1.
    `minimum` raises the quota to at least that many (see `final_promotions`).
    Returns the promotions, rung by rung, best first; the caller trains each promoted candidate
    to `seeds` seeds, records the key in promoted[rung - 1], and calls again when results come in.
    """
    _check_rungs(rungs, promote_fraction)
    due: list[Promotion] = []
    for r in range(len(rungs) - 1):
        ranked = rung_ranking(gains, rungs[r])
        quota = max(_quota(len(ranked), promote_fraction), min(minimum, len(ranked)))
        already = set(promoted.get(r, ()))
        due += [Promotion(k, r + 1, rungs[r + 1]) for k in ranked[:quota] if k not in already]
    return due


def final_promotions(
    gains: Mapping[str, Sequence[float]],
    promoted: Mapping[int, Collection[str]],
    rungs: Sequence[int] = DEFAULT_RUNGS,
    promote_fraction: float = DEFAULT_PROMOTE_FRACTION,
) -> list[Promotion]:
    """The promotions of the final sweep, once the budget of new candidates is spent.

    Choice: the same ASHA rule, except that every rung with at least one completed candidate
    promotes at least its best one (quota max(1, floor(n_r * promote_fraction))). So even a tiny
    budget (fewer than 1 / promote_fraction candidates) ends with a candidate on the top rung, and
    nothing promotable is left behind when the search stops. A promotion already made is never
    undone. The caller repeats: train the promotions, call again, until it returns [] (a
    candidate promoted to rung r + 1 can only be ranked there once its seeds are in).
    """
    return promotions(gains, promoted, rungs, promote_fraction, minimum=1)


def rung_reached(n_seeds: int, rungs: Sequence[int] = DEFAULT_RUNGS) -> int:
    """The highest rung whose seed count `n_seeds` reaches (-1 below the first rung)."""
    return sum(1 for s in rungs if n_seeds >= s) - 1


def finalists(
    gains: Mapping[str, Sequence[float]],
    k: int = DEFAULT_FINALISTS,
    rungs: Sequence[int] = DEFAULT_RUNGS,
) -> list[str]:
    """The top k candidates by racing, best first (this order is the racing rank).

    Ranking rule: highest rung reached first, then mean paired gain, then more seeds, then
    candidate order. Why rung first and not the plain mean: a one-seed mean is the noisiest figure
    there is and the candidates left at rung 0 are many, so ranking them against three-seed means
    hands the places to whichever single seed was luckiest (the winner's curse racing exists to
    avoid); a higher-rung candidate survived a cut and is averaged over more seeds.
    """
    if k < 1:
        raise ValueError(f"k: at least 1 finalist, got {k}")
    order = {key: i for i, key in enumerate(gains)}

    def rank(key: str) -> tuple:
        g = gains[key]
        return (-rung_reached(len(g), rungs), -math.fsum(g) / len(g), -len(g), order[key])

    return sorted((key for key in gains if gains[key]), key=rank)[:k]
