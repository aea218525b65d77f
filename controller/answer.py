"""The trustworthy answer of a search: which auxiliary module to use, if any, and how sure.

Protocol (pure functions; the caller owns training and storage):

1. `training_seeds` gives the search (rung) seeds and the confirmation seeds, disjoint by
   construction. Joint is trained at every seed any candidate uses.
2. During the search, `racing.promotions` (and `racing.final_promotions` when the budget is
   spent) say which candidates to train on more search seeds (racing over seeds).
3. `racing.finalists` picks the top k by racing.
4. With confirm_seeds > 0: the finalists, `basic` and Joint are trained on the confirmation
   seeds, `confirmation.confirm` compares them, `decide` gives the `Answer`. With
   confirm_seeds == 0: `unconfirmed` gives an explicitly unconfirmed `Answer`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from auxnas.controller.confirmation import BASIC, DEFAULT_CONFIDENCE, DEFAULT_CORRECTION, JOINT, Comparison
from auxnas.controller.racing import DEFAULT_FINALISTS, DEFAULT_RUNGS, GainSummary, finalists, summarize
from auxnas.evaluator.seeds import replicate_seed, trained_seeds

CONFIRM_OFFSET = 10_000  # confirmation seeds start at seed + CONFIRM_OFFSET
DEFAULT_CONFIRM_SEEDS = 5


@dataclass(frozen=True)
class TrainingSeeds:
    """search[i]: every candidate's (and Joint's) i-th racing seed; confirm: the fresh seeds."""

    search: tuple[int, ...]
    confirm: tuple[int, ...]
    stride: int = 1


def training_seeds(
    seed: int,
    rungs: Sequence[int] = DEFAULT_RUNGS,
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS,
    stride: int = 1,
    reserved: Iterable[int] = (),
) -> TrainingSeeds:
    """The training seeds of a search whose config seed is `seed`.

    Search seeds: seed + i * stride for i < rungs[-1] (the most seeds racing gives anyone).
    Confirmation seeds: seed + CONFIRM_OFFSET + i * stride for i < confirm_seeds, a separate
    range. `stride` is how many consecutive seeds one evaluation trains (train.reward_seeds: an
    evaluation at t trains t .. t + stride - 1). `reserved`: other seeds the search trains with
    (e.g. calibration replicates). Raises ValueError if a confirmation evaluation would train on
    any seed a search evaluation or `reserved` uses (only possible for huge rungs or strides)."""
    if stride < 1 or confirm_seeds < 0:
        raise ValueError(f"stride >= 1 and confirm_seeds >= 0, got {stride}, {confirm_seeds}")
    # the replicate rule of evaluator.seeds: seed i of a series trains stride seeds of its own
    search = tuple(replicate_seed(seed, i, stride) for i in range(max(rungs)))
    confirm = tuple(replicate_seed(seed + CONFIRM_OFFSET, i, stride) for i in range(confirm_seeds))
    check_disjoint(search, confirm, stride, reserved)
    return TrainingSeeds(search, confirm, stride)


def check_disjoint(
    search: Iterable[int], confirm: Iterable[int], stride: int = 1, reserved: Iterable[int] = ()
) -> None:
    """Raise ValueError if a confirmation evaluation trains on a seed that a search evaluation
    (or `reserved`) trains on; each evaluation at t trains t .. t + stride - 1."""
    used = {t for s in search for t in trained_seeds(s, stride)} | set(reserved)
    clash = sorted(used & {t for c in confirm for t in trained_seeds(c, stride)})
    if clash:
        raise ValueError(f"confirmation seeds reuse search seeds {clash[:5]}")


@dataclass(frozen=True)
class Answer:
    """What the search recommends, with the figures that back it.

    recommended: a module is recommended (only ever after confirmation); module: which (a
    candidate key or "basic"), None for Joint. confirmed: False when confirm_seeds was 0 (racing
    figures only, never a recommendation). quoted: the module whose figure verdict_line shows:
    the winner; with no winner the best (highest mean) module the correction tested; unconfirmed,
    the best racing candidate. over_joint / over_basic: its comparisons (over_joint's adjusted
    interval is the one printed); comparisons: every comparison made; racing: the racing gains of
    the quoted candidate when unconfirmed."""

    recommended: bool
    module: str | None
    confirmed: bool
    confirm_seeds: int
    correction: str | None
    confidence: float
    quoted: str | None
    over_joint: Comparison | None = None
    over_basic: Comparison | None = None
    comparisons: tuple[Comparison, ...] = ()
    racing: GainSummary | None = None

    def to_dict(self) -> dict:
        """JSON-safe: tuples become lists, infinite or NaN floats become None; adds `verdict`."""
        return {**_json_safe(asdict(self)), "verdict": self.verdict_line()}

    def verdict_line(self, digits: int = 3) -> str:
        """The one-line answer, one of (figures: mean [interval], `digits` decimals):
        "use KEY: +g [lo, hi] over Joint on N fresh seeds; +g [lo, hi] over basic"
        "use basic: +g [lo, hi] over Joint on N fresh seeds"
        "no module beats Joint on N fresh seeds (+g [lo, hi]): auxiliary learning is not recommended here"
        "unconfirmed (confirm_seeds: 0): best candidate KEY +g over Joint on its N search seeds; not a
        recommendation". Over Joint the interval is the correction-adjusted one (lower bound > 0 is
        the decision); over basic it is the plain `confidence` interval."""
        if not self.confirmed:
            if self.racing is None:
                return (
                    f"unconfirmed (confirm_seeds: {self.confirm_seeds}): no candidate was scored; "
                    "not a recommendation"
                )
            n = self.racing.n
            return (
                f"unconfirmed (confirm_seeds: {self.confirm_seeds}): best candidate {self.quoted} "
                f"{self.racing.mean:+.{digits}f} over Joint on its {n} search seed{'s' * (n != 1)}; "
                "not a recommendation"
            )
        fresh = f"on {self.confirm_seeds} fresh seed{'s' * (self.confirm_seeds != 1)}"
        if not self.recommended:
            figure = f" ({_figure(self.over_joint, digits, adjusted=True)})" if self.over_joint else ""
            return f"no module beats Joint {fresh}{figure}: auxiliary learning is not recommended here"
        line = f"use {self.module}: {_figure(self.over_joint, digits, adjusted=True)} over Joint {fresh}"
        if self.over_basic is not None:
            line += f"; {_figure(self.over_basic, digits, adjusted=False)} over basic"
        return line


def _figure(c: Comparison, digits: int, adjusted: bool) -> str:
    lo, hi = (c.adj_lower, c.adj_upper) if adjusted else (c.lower, c.upper)
    return f"{c.mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _json_safe(x):
    if type(x).__module__ == "numpy" and hasattr(x, "item"):  # a numpy scalar slipped in
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def decide(
    comparisons: Sequence[Comparison],
    confirm_seeds: int | None = None,
    correction: str = DEFAULT_CORRECTION,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Answer:
    """The confirmed answer from `confirmation.confirm`'s comparisons.

    Winner: the highest mean gain over Joint among the modules the correction declares above 0
    (adjusted lower bound > 0), ties to the earlier in the family order; it may be basic. None
    declared: Joint, no module recommended, quoting the best module the correction tested.
    `confirm_seeds` defaults to the comparisons' seed count; `correction` and `confidence` are
    recorded as given (pass the ones `confirm` used)."""
    family = [c for c in comparisons if c.baseline == JOINT]
    if confirm_seeds is None:
        confirm_seeds = family[0].n if family else 0
    winners = [c for c in family if c.above_zero]
    tested = [c for c in family if c.level] or family
    pool = winners or tested
    best = max(enumerate(pool), key=lambda ic: (ic[1].mean, -ic[0]))[1] if pool else None
    over_basic = None
    if best is not None and winners:
        over_basic = next((c for c in comparisons if c.baseline == BASIC and c.module == best.module), None)
    return Answer(
        recommended=bool(winners),
        module=best.module if winners else None,
        confirmed=True,
        confirm_seeds=confirm_seeds,
        correction=correction,
        confidence=confidence,
        quoted=best.module if best else None,
        over_joint=best,
        over_basic=over_basic,
        comparisons=tuple(comparisons),
    )


def unconfirmed(
    gains: Mapping[str, Sequence[float]],
    rungs: Sequence[int] = DEFAULT_RUNGS,
    search_seeds: Sequence[int] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Answer:
    """The answer when confirm_seeds is 0: the best racing candidate (`racing.finalists` rank),
    reported as such with its racing mean gain, never recommended."""
    top = finalists(gains, 1, rungs) if any(gains.values()) else []
    racing = None
    if top:
        g = gains[top[0]]
        racing = summarize(top[0], g, search_seeds[: len(g)] if search_seeds else None)
    return Answer(
        recommended=False,
        module=None,
        confirmed=False,
        confirm_seeds=0,
        correction=None,
        confidence=confidence,
        quoted=top[0] if top else None,
        racing=racing,
    )


__all__ = [
    "Answer",
    "TrainingSeeds",
    "training_seeds",
    "check_disjoint",
    "decide",
    "unconfirmed",
    "CONFIRM_OFFSET",
    "DEFAULT_CONFIRM_SEEDS",
    "DEFAULT_FINALISTS",
    "JOINT",
    "BASIC",
]
