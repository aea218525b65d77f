"""Reward fidelity: does the reward rank architectures, or is it noise? (numpy only)

    report = fidelity_report({"g1": [0.61, 0.60], "g2": [...], ...}, joint=[0.62, 0.61])
    print(report.verdict); json.dumps(report.to_dict())

Input: `rewards[genotype][replicate]`, each replicate an independent scoring (its own training
seeds, the data split fixed), and optionally Joint's reward per replicate. Joint enters only
the gains over Joint; every other figure is over the auxiliary genotypes. A genotype with a
missing or non-finite reward in any replicate (a failed trial) is left out and listed.

Figures (definitions: docs/design.md, "Reward fidelity: definitions"): per-genotype mean and std over replicates and
gain over Joint per replicate; architecture spread (std over genotypes of their replicate
means); replicate noise (pooled within-genotype std); Spearman and Kendall tau-b between every
pair of replicates, each with a 90% bootstrap interval (genotypes resampled with replacement,
seeded); their means over pairs with an interval from the same resamples; the share of
genotypes above Joint in every replicate; and the Spearman-Brown count of reward seeds per
candidate for a target correlation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

MIN_GENOTYPES = 3
MIN_REPLICATES = 2


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get the mean of the ranks they span."""
    a = np.asarray(values, dtype=float)
    n = a.size
    order = np.argsort(a, kind="mergesort")
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.arange(n)
    ordered = a[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(first)[inverse]
    bounds = np.r_[np.flatnonzero(first), n]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson correlation of the mid-ranks); nan when either side is constant."""
    return _pearson(rankdata(x), rankdata(y))


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)); nan when
    either side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    upper = np.triu_indices(a.size, k=1)
    sx = np.sign(a[:, None] - a[None, :])[upper]
    sy = np.sign(b[:, None] - b[None, :])[upper]
    denom = math.sqrt(float(np.count_nonzero(sx)) * float(np.count_nonzero(sy)))
    return float(np.sum(sx * sy) / denom) if denom > 0 else math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else math.nan


def spearman_brown_factor(r: float, target: float = 0.8) -> float | None:
    """How many times more averaging lifts a reliability `r` to `target`:
    k = target (1 - r) / (r (1 - target)). None when r <= 0 (averaging cannot create spread)."""
    if not math.isfinite(r) or r <= 0.0:
        return None
    if r >= 1.0:
        return 1.0
    return target * (1.0 - r) / (r * (1.0 - target))


def bootstrap_interval(
    columns: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    *,
    resamples: int = 2000,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile interval of `statistic(columns[idx])` over genotype resamples (rows of
    `columns` drawn with replacement); resamples where it is undefined are skipped."""
    rng = np.random.default_rng(seed)
    n = columns.shape[0]
    values = []
    for _ in range(resamples):
        v = statistic(columns[rng.integers(0, n, size=n)])
        if math.isfinite(v):
            values.append(v)
    if not values:
        return None, None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclass
class PairFigures:
    replicates: tuple[int, int]
    spearman: float
    spearman_ci: tuple[float | None, float | None]
    kendall: float
    kendall_ci: tuple[float | None, float | None]


@dataclass
class FidelityReport:
    genotypes: list[str]
    replicates: int
    per_genotype: list[dict[str, Any]]  # name, rewards, mean, std, gain_over_joint (per replicate)
    joint: dict[str, Any] | None  # rewards, mean, std
    spread: float  # std over genotypes of their replicate means
    noise: float  # pooled within-genotype std over replicates
    centred_noise: float  # the same once each replicate's mean over genotypes is subtracted
    pairs: list[PairFigures]
    spearman: float  # mean over replicate pairs
    spearman_ci: tuple[float | None, float | None]
    kendall: float
    kendall_ci: tuple[float | None, float | None]
    beat_joint_share: float | None  # genotypes above Joint in every replicate
    target: float
    seeds_factor: float | None  # Spearman-Brown: times more reward seeds for `target`
    reward_seeds_needed: int | None  # per candidate, counting the seeds a replicate already used
    threshold: float
    verdict: str
    excluded: list[str] = field(default_factory=list)  # genotypes with a missing reward

    @property
    def spread_to_noise(self) -> float:
        return self.spread / self.noise if self.noise > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["spread_to_noise"] = self.spread_to_noise
        return _json_safe(doc)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def fidelity_report(
    rewards: Mapping[str, Sequence[float | None]],
    joint: Sequence[float | None] | None = None,
    *,
    threshold: float = 0.5,
    target: float = 0.8,
    reward_seeds: int = 1,
    resamples: int = 2000,
    level: float = 0.9,
    seed: int = 0,
) -> FidelityReport:
    """The fidelity figures and verdict; `reward_seeds` is how many seeds each replicate's
    reward already averaged (`train.reward_seeds`). ValueError names the bad input."""
    k = _check_inputs(rewards, joint, threshold, target, reward_seeds)
    names, excluded, table, joint_row = _reward_table(rewards, joint)
    boot = functools.partial(bootstrap_interval, resamples=resamples, level=level, seed=seed)
    pair_index = list(combinations(range(k), 2))

    def mean_over_pairs(stat: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray], float]:
        return lambda t: float(np.mean([stat(t[:, a], t[:, b]) for a, b in pair_index]))

    rho = mean_over_pairs(spearman)(table)
    factor = spearman_brown_factor(rho, target)
    needed = max(1, math.ceil(factor * reward_seeds - 1e-9)) if factor is not None else None
    rho_ci = boot(table, mean_over_pairs(spearman))
    return FidelityReport(
        genotypes=names,
        replicates=k,
        per_genotype=_per_genotype(names, table, joint_row),
        joint=_joint_figures(joint_row),
        **_noise_figures(table),
        pairs=[_pair_figures(table, a, b, boot) for a, b in pair_index],
        spearman=rho,
        spearman_ci=rho_ci,
        kendall=mean_over_pairs(kendall_tau_b)(table),
        kendall_ci=boot(table, mean_over_pairs(kendall_tau_b)),
        beat_joint_share=float(np.mean(np.all(table > joint_row, axis=1))) if joint_row is not None else None,
        target=target,
        seeds_factor=factor,
        reward_seeds_needed=needed,
        threshold=threshold,
        verdict=_verdict(rho, rho_ci, threshold, target, needed, reward_seeds, len(names)),
        excluded=excluded,
    )


def _check_inputs(
    rewards: Mapping[str, Sequence[float | None]],
    joint: Sequence[float | None] | None,
    threshold: float,
    target: float,
    reward_seeds: int,
) -> int:
    """The number of replicates; ValueError naming the first bad argument."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target: must be in (0, 1), got {target}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: must be in [-1, 1], got {threshold}")
    if reward_seeds < 1:
        raise ValueError(f"reward_seeds: must be at least 1, got {reward_seeds}")
    lengths = {len(v) for v in rewards.values()}
    if len(lengths) > 1:
        raise ValueError(
            f"rewards: every genotype needs the same number of replicates, got {sorted(lengths)}"
        )
    k = lengths.pop() if lengths else 0
    if k < MIN_REPLICATES:
        raise ValueError(f"rewards: at least {MIN_REPLICATES} replicates are needed, got {k}")
    if joint is not None and len(joint) != k:
        raise ValueError(f"joint: {len(joint)} rewards for {k} replicates")
    return k


def _reward_table(
    rewards: Mapping[str, Sequence[float | None]], joint: Sequence[float | None] | None
) -> tuple[list[str], list[str], np.ndarray, np.ndarray | None]:
    """The genotypes rewarded in every replicate, those excluded, their rewards (genotypes x
    replicates) and Joint's (None unless it has one in every replicate)."""
    names, excluded = [], []
    for name, values in rewards.items():
        (names if all(_finite(v) for v in values) else excluded).append(name)
    if len(names) < MIN_GENOTYPES:
        raise ValueError(
            f"rewards: at least {MIN_GENOTYPES} genotypes with a reward in every replicate are needed, "
            f"got {len(names)}"
        )
    table = np.array([[float(v) for v in rewards[n]] for n in names])
    joint_row = (
        np.array([float(v) for v in joint]) if joint is not None and all(map(_finite, joint)) else None
    )
    return names, excluded, table, joint_row


def _per_genotype(names: list[str], table: np.ndarray, joint_row: np.ndarray | None) -> list[dict[str, Any]]:
    means, stds = table.mean(axis=1), table.std(axis=1, ddof=1)
    return [
        {
            "name": n,
            "rewards": table[i].tolist(),
            "mean": float(means[i]),
            "std": float(stds[i]),
            "gain_over_joint": (table[i] - joint_row).tolist() if joint_row is not None else None,
        }
        for i, n in enumerate(names)
    ]


def _joint_figures(joint_row: np.ndarray | None) -> dict[str, Any] | None:
    if joint_row is None:
        return None
    return {
        "rewards": joint_row.tolist(),
        "mean": float(joint_row.mean()),
        "std": float(joint_row.std(ddof=1)),
    }


def _noise_figures(table: np.ndarray) -> dict[str, float]:
    """Spread of the genotypes' means, the pooled within-genotype noise, and that noise once each
    replicate's mean over the genotypes is taken out: a shift that moves every candidate of a
    replicate together (under common random numbers, most of the noise with few replicates)
    cannot reorder them; the centred noise is the part that can."""
    stds = table.std(axis=1, ddof=1)
    centred = table - table.mean(axis=0, keepdims=True)
    return {
        "spread": float(np.std(table.mean(axis=1), ddof=1)),
        "noise": float(math.sqrt(np.mean(stds**2))),
        "centred_noise": float(math.sqrt(np.mean(centred.std(axis=1, ddof=1) ** 2))),
    }


def _pair_figures(table: np.ndarray, a: int, b: int, boot: Callable[..., Any]) -> PairFigures:
    pair = table[:, [a, b]]
    return PairFigures(
        replicates=(a, b),
        spearman=spearman(table[:, a], table[:, b]),
        spearman_ci=boot(pair, lambda t: spearman(t[:, 0], t[:, 1])),
        kendall=kendall_tau_b(table[:, a], table[:, b]),
        kendall_ci=boot(pair, lambda t: kendall_tau_b(t[:, 0], t[:, 1])),
    )


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


def _fmt(v: float | None) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _verdict(
    rho: float,
    ci: tuple[float | None, float | None],
    threshold: float,
    target: float,
    needed: int | None,
    reward_seeds: int,
    n_genotypes: int,
) -> str:
    figure = f"spearman {_fmt(rho)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    if math.isfinite(rho) and rho >= threshold:
        return f"reward ranks architectures ({figure})"
    if needed is None:
        advice = (
            "no architecture signal for averaging to recover: raise train.steps, use model.pretrained: auto, "
            "train.reward_evals or train.ema_decay, or a benchmark where auxiliary modules matter"
        )
    else:
        advice = (
            f"raise train.reward_seeds from {reward_seeds} to {needed} "
            f"(Spearman-Brown for {target:g}), or lengthen training"
        )
    if ci[0] is not None and ci[1] is not None and ci[1] - ci[0] > 0.6:
        advice += f"; score more genotypes than {n_genotypes} to narrow the interval"
    return f"reward is dominated by noise ({figure}): {advice}"
