"""The answer protocol over a search's trial rows: racing promotions, confirmation rows, the answer.

The statistical rules live in `controller.racing`, `controller.confirmation` and
`controller.answer`; this module applies them to stored rows, so everything it decides follows
from the rows alone (a resumed search decides the same again):

- seeds: `answer.training_seeds` from the config: the search (rung) seeds start at `seed`, one
  evaluation trains `train.reward_seeds` consecutive seeds, and the confirmation seeds are
  disjoint from every search and calibration seed by construction;
- racing: a candidate's racing gains are its paired gains over Joint on the search seeds, in
  seed order (`pairing`); `promoted` is read back from the seeds each candidate has rows at;
  a promotion becomes `racing` rows for its new seeds plus Joint rows at seeds Joint lacks;
- confirmation: the finalists (`racing.finalists`), `basic` and Joint, one `confirmation` row
  per module and fresh seed;
- the answer: `confirmation.confirm` + `answer.decide` on the confirmation rows (or
  `answer.unconfirmed` when `search.confirm.seeds` is 0), stored as one JSON document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from auxnas.controller import racing
from auxnas.controller.answer import Answer, decide, training_seeds, unconfirmed
from auxnas.controller.config import SearchConfig
from auxnas.controller.confirmation import BASIC, DEFAULT_CORRECTION, confirm
from auxnas.controller.pairing import (
    BASIC_KEY,
    CONFIRM_GROUP,
    SEARCH_GROUP,
    group_rewards,
    module_key,
    seed_of,
)
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import TrialRecord
from auxnas.evaluator.seeds import replicate_seeds, trained_seeds
from auxnas.search_space import SearchSpace, basic_genotype

SHORT_KEY = 8  # hex digits of a genotype hash shown as a module's name when they are unambiguous


class ProtocolError(ValueError):
    """The protocol cannot go on (e.g. no module scored on two confirmation seeds)."""


def reserved_seeds(config: SearchConfig) -> set[int]:
    """Training seeds of the optional calibration phase (confirmation never reuses them)."""
    cal = config.search.calibrate
    if cal is None:
        return set()
    stride = config.train.reward_seeds
    return {t for s in replicate_seeds(config, cal.replicates) for t in trained_seeds(s, stride)}


def short_keys(hashes: Sequence[str]) -> dict[str, str]:
    """Genotype hash -> the name the answer uses: its first 8 hex digits, unless two collide."""
    short = {h: h[:SHORT_KEY] for h in hashes}
    return short if len(set(short.values())) == len(short) else {h: h for h in hashes}


class AnswerProtocol:
    def __init__(self, config: SearchConfig, space: SearchSpace) -> None:
        s = config.search
        self.rungs = tuple(s.racing.rungs)
        self.promote_fraction = s.racing.promote_fraction
        self.finalists_k = s.confirm.finalists
        self.confirm_seeds = s.confirm.seeds
        self.confidence = s.confirm.confidence
        self.default_seed = config.seed
        # ValueError when a confirmation seed would reuse a search or calibration seed
        self.seeds = training_seeds(
            config.seed, self.rungs, self.confirm_seeds, config.train.reward_seeds, reserved_seeds(config)
        )
        self.basic_hash = basic_genotype(space).canonical_hash()

    # --- racing -------------------------------------------------------------------------------
    def racing_gains(self, rows: Iterable[TrialRecord]) -> dict[str, list[float]]:
        """Candidate hash -> paired gains over Joint at its search seeds, in seed order, for the
        candidates scored at their first seed, in the order they were proposed (basic is not a
        racing candidate: it is confirmed anyway)."""
        group = group_rewards(rows, SEARCH_GROUP, self.default_seed)
        first = self.seeds.search[0]
        out = {}
        for key in group.modules:
            gains = group.gains(key)
            if key in (BASIC_KEY, self.basic_hash) or first not in gains:
                continue
            out[key] = [gains[s] for s in self.seeds.search if s in gains]
        return out

    def _seeds_with_rows(self, rows: Iterable[TrialRecord]) -> dict[str | None, set[int]]:
        """Module key (None: Joint) -> the search seeds it has rows at, whatever their status."""
        have: dict[str | None, set[int]] = {}
        for t in rows:
            if t.phase in SEARCH_GROUP:
                have.setdefault(module_key(t), set()).add(seed_of(t, self.default_seed))
        return have

    def promoted(self, rows: Iterable[TrialRecord]) -> dict[int, set[str]]:
        """Rung r -> the candidates already promoted from it: those with rows at more than
        rungs[r] seeds (a promotion adds all its rows at once)."""
        have = self._seeds_with_rows(rows)
        return {
            r: {k for k, seeds in have.items() if k is not None and len(seeds) > self.rungs[r]}
            for r in range(len(self.rungs) - 1)
        }

    def due(self, rows: Sequence[TrialRecord], final: bool = False) -> list[racing.Promotion]:
        """The promotions due now: ASHA after an iteration, the final sweep once the budget is spent."""
        rule = racing.final_promotions if final else racing.promotions
        return rule(self.racing_gains(rows), self.promoted(rows), self.rungs, self.promote_fraction)

    def promotion_rows(
        self, due: Sequence[racing.Promotion], rows: Sequence[TrialRecord], next_index: int
    ) -> list[TrialRecord]:
        """Waiting `racing` rows: each promoted candidate's new seeds, then Joint's missing ones."""
        have = self._seeds_with_rows(rows)
        first_rows = {t.genotype_hash: t for t in rows if t.kind == "candidate" and t.phase == "search"}
        new: list[TrialRecord] = []
        joint_needs: list[int] = []
        for p in due:
            source = first_rows[p.key]
            for seed in self.seeds.search[: p.seeds]:
                if seed in have.get(p.key, set()):
                    continue
                new.append(_copy_row(source, next_index + len(new), "racing", seed))
                if seed not in have.get(None, set()) and seed not in joint_needs:
                    joint_needs.append(seed)
        for seed in joint_needs:
            new.append(
                TrialRecord(
                    index=next_index + len(new),
                    kind="joint",
                    status=TrialStatus.WAITING,
                    phase="racing",
                    seed=seed,
                )
            )
        return new

    # --- confirmation ---------------------------------------------------------------------------
    def finalists(self, rows: Sequence[TrialRecord]) -> list[str]:
        gains = self.racing_gains(rows)
        return racing.finalists(gains, self.finalists_k, self.rungs) if gains else []

    def confirmation_rows(self, rows: Sequence[TrialRecord], next_index: int) -> list[TrialRecord]:
        """Waiting `confirmation` rows, seed by seed: each finalist, basic, Joint."""
        first_rows = {t.genotype_hash: t for t in rows if t.kind == "candidate" and t.phase == "search"}
        basic = next(t for t in rows if t.kind == "basic" and t.phase == "search")
        sources = [first_rows[k] for k in self.finalists(rows)] + [basic, None]
        new: list[TrialRecord] = []
        for seed in self.seeds.confirm:
            for source in sources:
                index = next_index + len(new)
                if source is None:
                    new.append(
                        TrialRecord(
                            index=index,
                            kind="joint",
                            status=TrialStatus.WAITING,
                            phase="confirmation",
                            seed=seed,
                        )
                    )
                else:
                    new.append(_copy_row(source, index, "confirmation", seed))
        return new

    # --- the answer -----------------------------------------------------------------------------
    def answer_document(self, rows: Sequence[TrialRecord]) -> dict[str, Any]:
        """The answer of a search whose rows are all final, as stored and served."""
        rows = list(rows)
        if self.confirm_seeds == 0:
            return self._unconfirmed(rows)
        group = group_rewards(rows, CONFIRM_GROUP, self.default_seed)
        finalists = [k for k in group.modules if k != BASIC_KEY]
        names = short_keys(finalists)
        common = set(group.joint) & set(group.modules.get(BASIC_KEY, {}))
        basic_ok = len(common) >= 2
        seeds = common if basic_ok else set(group.joint)
        rewards = {names[k]: {s: r for s, r in group.modules[k].items() if s in seeds} for k in finalists}
        ranked = [names[k] for k in finalists if len(rewards[names[k]]) >= 2]
        if basic_ok:
            rewards[BASIC] = {s: r for s, r in group.modules[BASIC_KEY].items() if s in seeds}
        if not ranked and not basic_ok:
            raise ProtocolError("confirmation: no module was scored on two or more confirmation seeds")
        joint = {s: r for s, r in group.joint.items() if s in seeds}
        comparisons = confirm(
            rewards, joint, ranked, BASIC if basic_ok else None, self.confidence, DEFAULT_CORRECTION
        )
        answer = decide(comparisons, self.confirm_seeds, DEFAULT_CORRECTION, self.confidence)
        first = _search_rows(rows)
        modules = {names[k]: _module_entry(k, first[k]) for k in finalists}
        if BASIC_KEY in group.first_row:
            modules[BASIC] = _module_entry(self.basic_hash, first[self.basic_hash])
        return self._document(answer, modules, [names[k] for k in finalists], rows)

    def _unconfirmed(self, rows: list[TrialRecord]) -> dict[str, Any]:
        gains = self.racing_gains(rows)
        names = short_keys(list(gains))
        answer = unconfirmed(
            {names[k]: g for k, g in gains.items()}, self.rungs, self.seeds.search, self.confidence
        )
        first = _search_rows(rows)
        top = [names[k] for k in self.finalists(rows)]
        by_name = {v: k for k, v in names.items()}
        modules = {n: _module_entry(by_name[n], first[by_name[n]]) for n in top}
        return self._document(answer, modules, top, rows)

    def _document(
        self,
        answer: Answer,
        modules: dict[str, dict[str, Any]],
        finalists: list[str],
        rows: list[TrialRecord],
    ) -> dict[str, Any]:
        used = sorted({seed_of(t, self.default_seed) for t in rows if t.phase in SEARCH_GROUP})
        return {
            **answer.to_dict(),
            "finalists": finalists,
            "modules": modules,
            "seeds": {"search": used, "confirmation": list(self.seeds.confirm)},
            "racing_rule": {"rungs": list(self.rungs), "promote_fraction": self.promote_fraction},
        }


def _search_rows(rows: Sequence[TrialRecord]) -> dict[str, int]:
    """Genotype hash -> index of the module's search-phase row (its first seed; not a cached copy)."""
    first: dict[str, int] = {}
    for t in rows:
        if t.phase == "search" and t.kind in ("basic", "candidate") and t.status != TrialStatus.CACHED:
            first.setdefault(t.genotype_hash, t.index)
    return first


def _module_entry(genotype_hash: str, trial: int) -> dict[str, Any]:
    return {"genotype_hash": genotype_hash, "trial": trial}


def _copy_row(source: TrialRecord, index: int, phase: str, seed: int) -> TrialRecord:
    return TrialRecord(
        index=index,
        kind=source.kind,
        status=TrialStatus.WAITING,
        tokens=list(source.tokens) if source.tokens is not None else None,
        genotype=source.genotype,
        genotype_hash=source.genotype_hash,
        iteration=source.iteration,
        phase=phase,
        seed=seed,
    )


def answer_module(answer: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(name, {"genotype_hash", "trial"}) of the module a stored answer names: the recommended
    one, else the one its figures quote; None when it names none."""
    if not answer:
        return None
    name = answer.get("module") or answer.get("quoted")
    entry = (answer.get("modules") or {}).get(name) if name else None
    return (name, entry) if entry else None
