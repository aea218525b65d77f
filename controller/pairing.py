"""Paired gains read from trial rows (common random numbers).

One trial row is one evaluation at one training seed. A module's *paired gain* at seed s is its
reward at s minus Joint's reward at s: the seed's shared luck (initialisation, data order)
cancels. Rows pair within a *group* of phases: the search group (`search` and `racing` rows:
what racing ranks) and the `confirmation` group (the fresh seeds). The driver, the REST API, the
CLI and the plots all read gains through these functions.

Rows are anything with the attributes of `controller.storage.TrialRecord` that are used here
(kind, status, phase, seed, reward, genotype_hash, index), e.g. a TrialRecord or a database row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auxnas.controller.racing import GainSummary, summarize
from auxnas.controller.status import TrialStatus

SEARCH_GROUP = ("search", "racing")
CONFIRM_GROUP = ("confirmation",)
GROUPS = {"search": SEARCH_GROUP, "racing": SEARCH_GROUP, "confirmation": CONFIRM_GROUP}
BASIC_KEY = "basic"


def seed_of(row: Any, default_seed: int) -> int:
    """The training seed of a row; rows stored before seeds were recorded trained at the search's."""
    return row.seed if row.seed is not None else default_seed


def module_key(row: Any) -> str | None:
    """Which module a row evaluates: "basic", a candidate's genotype hash, or None for Joint."""
    if row.kind == "joint":
        return None
    return BASIC_KEY if row.kind == "basic" else row.genotype_hash


def _scored(row: Any) -> bool:
    """A full reward (a pruned row's is a first-stage one); a cached row repeats its original's."""
    return row.status in (TrialStatus.SUCCEEDED, TrialStatus.CACHED) and row.reward is not None


@dataclass
class GroupRewards:
    """The succeeded rewards of one group of phases: Joint's and each module's, by seed."""

    joint: dict[int, float]
    modules: dict[str, dict[int, float]]  # in the order of each module's first row
    first_row: dict[str, int]  # module -> index of its first row in the group (any status)

    def gains(self, key: str) -> dict[int, float]:
        """The module's paired gains over Joint, by seed (seeds without a Joint reward left out)."""
        return {s: r - self.joint[s] for s, r in sorted(self.modules.get(key, {}).items()) if s in self.joint}

    def summary(self, key: str) -> GainSummary | None:
        gains = self.gains(key)
        return summarize(key, list(gains.values()), list(gains)) if gains else None


def group_rewards(rows: Iterable[Any], phases: tuple[str, ...], default_seed: int) -> GroupRewards:
    joint: dict[int, float] = {}
    modules: dict[str, dict[int, float]] = {}
    first_row: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: r.index):
        if row.phase not in phases:
            continue
        key = module_key(row)
        if key is not None and key not in first_row:
            first_row[key] = row.index
            modules[key] = {}
        if not _scored(row):
            continue
        seed = seed_of(row, default_seed)
        target = joint if key is None else modules[key]
        target.setdefault(seed, float(row.reward))  # a cached copy repeats its original: first wins
    return GroupRewards(joint, modules, first_row)


@dataclass
class RowGains:
    """What the API and the CLI show beside a row: its own paired gain, and its module's summary
    over the row's group (the racing seeds, or the confirmation seeds)."""

    gain: float | None
    seeds: list[int] | None
    mean_gain: float | None
    gain_se: float | None


class Pairing:
    """Paired gains of every row of a search, from all its rows."""

    def __init__(self, rows: Iterable[Any], default_seed: int) -> None:
        rows = list(rows)
        self.default_seed = default_seed
        self.groups = {
            SEARCH_GROUP: group_rewards(rows, SEARCH_GROUP, default_seed),
            CONFIRM_GROUP: group_rewards(rows, CONFIRM_GROUP, default_seed),
        }

    def of(self, row: Any) -> RowGains:
        phases = GROUPS.get(row.phase)
        key = module_key(row)
        if phases is None or key is None:
            return RowGains(None, None, None, None)
        group = self.groups[phases]
        seed = seed_of(row, self.default_seed)
        gain = None
        if _scored(row) and seed in group.joint:
            gain = float(row.reward) - group.joint[seed]
        summary = group.summary(key)
        if summary is None:
            return RowGains(gain, None, None, None)
        return RowGains(gain, list(summary.seeds), summary.mean, summary.se)
