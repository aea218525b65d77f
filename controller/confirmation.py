"""Confirmation on fresh seeds: paired t statistics and family-wise error control.

The finalists, `basic` and Joint are trained on `confirm_seeds` fresh training seeds (never a
search seed). For each module the paired gains over Joint give a mean, a t interval and a
one-sided paired t test of "gain <= 0". The k + 1 comparisons against Joint are one family whose
family-wise false-positive rate (FWER) is held at alpha = (1 - confidence) / 2, one-sided (0.05
for the default 90% intervals). The family's order is fixed by racing before any confirmation
data exists: [racing winner, basic, finalist 2, ..., finalist k] (`family_order`).

Corrections (all control the FWER at alpha):
- `fallback` (the default): Wiens' fallback procedure with weights (0.8, 0.2, 0, ...): the racing
  winner is tested at 0.8 alpha; basic at 0.2 alpha, or at the full alpha when the winner was
  confirmed; each later finalist at the full alpha only while every one before it was confirmed.
- `fixed_sequence`: the family order, each at the full alpha, stopping at the first failure.
- `holm`: Holm's step-down over the p-values (order-free).
- `none`: every comparison at alpha, uncorrected (for the simulations that show why not).
docs/results.md ("The answer's error rates") gives the simulation that chose the default.

Each procedure gives each hypothesis the one-sided level it was tested at, and the decision is
*defined* as "the lower bound of the t interval at that level is above 0": the printed (adjusted)
interval and the decision cannot disagree. A hypothesis never reached gets level 0, whose
interval is (-inf, +inf).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from scipy import stats

from auxnas.controller.racing import GainSummary, paired_gains

JOINT = "joint"
BASIC = "basic"
DEFAULT_CONFIDENCE = 0.90
CORRECTIONS = ("fallback", "fixed_sequence", "holm", "none")
DEFAULT_CORRECTION = "fallback"
# fallback weights along the family order: racing winner, basic, the other finalists (0)
DEFAULT_WEIGHTS = (0.8, 0.2)

# a test of hypothesis i at one-sided level a: does it reject?
Test = Callable[[int, float], bool]


def alpha_of(confidence: float) -> float:
    """The one-sided level whose lower bound is that of a two-sided `confidence` interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: between 0 and 1 exclusive, got {confidence}")
    return (1.0 - confidence) / 2.0


def t_interval(g: GainSummary, one_sided_level: float) -> tuple[float, float]:
    """Two-sided t interval of the mean gain with `one_sided_level` in each tail.

    Level 0.05 gives the 90% interval. Level 0 (untested) or a single seed gives (-inf, +inf);
    zero spread gives the point (mean, mean)."""
    if one_sided_level <= 0 or g.se is None:
        return (-math.inf, math.inf)
    half = float(stats.t.ppf(1.0 - one_sided_level, g.n - 1)) * g.se
    return (g.mean - half, g.mean + half)


def p_greater(g: GainSummary) -> float | None:
    """One-sided paired t test p-value of H0 "mean gain <= 0" against "> 0" (None with 1 seed)."""
    if g.se is None:
        return None
    if g.se == 0:
        return 0.0 if g.mean > 0 else 1.0
    return float(stats.t.sf(g.mean / g.se, g.n - 1))


def holm(pvalues: Sequence[float | None], alpha: float, test: Test) -> list[float]:
    """Holm's step-down: the one-sided level each hypothesis is tested at.

    Sorted by p-value (ties by position), the j-th (j = 0..m-1) is tested at alpha / (m - j)
    while every earlier one rejected; the first that does not reject stops it, and the rest keep
    that level (their p is no smaller, so they do not reject either)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (1.0 if pvalues[i] is None else pvalues[i], i))
    levels = [0.0] * m
    for j, i in enumerate(order):
        levels[i] = alpha / (m - j)
        if not test(i, levels[i]):
            for rest in order[j + 1 :]:
                levels[rest] = levels[i]
            break
    return levels


def fallback(weights: Sequence[float], alpha: float, test: Test) -> list[float]:
    """Wiens' fallback procedure in the given (pre-registered) order: the level of each.

    Hypothesis i gets weights[i] * alpha, plus the whole level of hypothesis i - 1 when that one
    rejected. Weights are >= 0 and sum to 1 (it is a Bonferroni split of alpha in which a
    rejection passes its level on, so the FWER stays at alpha). Weights (1, 0, ..., 0) are the
    fixed-sequence test: each at the full alpha until the first that fails, the rest at 0."""
    if any(w < 0 for w in weights) or abs(math.fsum(weights) - 1.0) > 1e-9:
        raise ValueError(f"fallback weights: non-negative and summing to 1, got {tuple(weights)}")
    levels: list[float] = []
    carried = 0.0
    for i, w in enumerate(weights):
        levels.append(w * alpha + carried)
        carried = levels[i] if levels[i] > 0 and test(i, levels[i]) else 0.0
    return levels


def fixed_sequence(m: int, alpha: float, test: Test) -> list[float]:
    """The fixed-sequence test of m ordered hypotheses: each at alpha until one fails."""
    return fallback([1.0] + [0.0] * (m - 1), alpha, test) if m else []


@dataclass(frozen=True)
class Comparison:
    """A module's paired gain over a baseline on the confirmation seeds.

    `lower`/`upper`: the plain two-sided `confidence` t interval. `level`: the one-sided level the
    FWER procedure tested it at (None for a comparison outside the family, i.e. over basic);
    `adj_lower`/`adj_upper`: the interval at that level; `above_zero`: adj_lower > 0, the decision
    (None outside the family)."""

    module: str
    baseline: str
    n: int
    mean: float
    se: float | None
    p: float | None
    lower: float
    upper: float
    level: float | None = None
    adj_lower: float | None = None
    adj_upper: float | None = None
    above_zero: bool | None = None


def _compare(g: GainSummary, baseline: str, alpha: float) -> Comparison:
    lo, hi = t_interval(g, alpha)
    return Comparison(g.key, baseline, g.n, g.mean, g.se, p_greater(g), lo, hi)


def _levels(summaries: Sequence[GainSummary], alpha: float, correction: str, weights) -> list[float]:
    def test(i: int, level: float) -> bool:
        return t_interval(summaries[i], level)[0] > 0

    if correction == "fixed_sequence":
        return fixed_sequence(len(summaries), alpha, test)
    if correction == "holm":
        return holm([p_greater(g) for g in summaries], alpha, test)
    if correction == "fallback":
        return fallback(fallback_weights(len(summaries), weights or DEFAULT_WEIGHTS), alpha, test)
    if correction == "none":  # per-comparison, uncorrected: for the simulations only
        return [alpha] * len(summaries)
    raise ValueError(f"correction: one of {CORRECTIONS}, got {correction!r}")


def fallback_weights(m: int, weights: Sequence[float] = DEFAULT_WEIGHTS) -> list[float]:
    """`weights` cut or padded with zeros to m hypotheses, renormalised to sum to 1."""
    w = list(weights[:m]) + [0.0] * max(0, m - len(weights))
    total = math.fsum(w)
    if total <= 0:
        raise ValueError(f"fallback weights: some weight on the first {m} hypotheses, got {tuple(weights)}")
    return [x / total for x in w]


def family_order(finalists: Sequence[str], basic: str | None = BASIC) -> list[str]:
    """The family's pre-registered order: racing winner, basic, then the other finalists."""
    family = [m for m in dict.fromkeys(finalists) if m != basic]
    if basic is not None:
        family.insert(1, basic)
    return family


def confirm(
    rewards: Mapping[str, Mapping[int, float]],
    joint: Mapping[int, float],
    finalists: Sequence[str],
    basic: str | None = BASIC,
    confidence: float = DEFAULT_CONFIDENCE,
    correction: str = DEFAULT_CORRECTION,
    weights: Sequence[float] | None = None,
) -> list[Comparison]:
    """The confirmation comparisons, from rewards on the fresh seeds.

    `rewards`: module -> seed -> reward for each finalist and for `basic` (None: no basic);
    `joint`: seed -> Joint's reward at the same seeds; `finalists`: in racing rank, best first.
    The family is `family_order` (each over Joint), tested by `correction` at
    alpha = (1 - confidence) / 2; `weights`: fallback weights along that order (default
    DEFAULT_WEIGHTS, padded with 0). Returned: the family's
    comparisons in that order, then each finalist over basic (outside the family: plain interval,
    no decision). Needs at least 2 seeds per module (a t interval needs a spread)."""
    family = family_order(finalists, basic)
    if not family:
        raise ValueError("confirm: no module to confirm")
    alpha = alpha_of(confidence)
    over_joint = [paired_gains(rewards[m], joint, m) for m in family]
    short = [g.key for g in over_joint if g.n < 2]
    if short:
        raise ValueError(f"confirm: fewer than 2 confirmation seeds for {short}")
    levels = _levels(over_joint, alpha, correction, weights)
    out = []
    for g, level in zip(over_joint, levels, strict=True):
        lo, hi = t_interval(g, level)
        c = _compare(g, JOINT, alpha)
        out.append(replace(c, level=level, adj_lower=lo, adj_upper=hi, above_zero=bool(lo > 0)))
    if basic is not None:
        out += [
            _compare(paired_gains(rewards[m], rewards[basic], m, basic), BASIC, alpha)
            for m in family
            if m != basic
        ]
    return out
