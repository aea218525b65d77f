"""The search space of Liu et al. (2019), section 3.2: cells, tokens and their valid choices.

Pure Python: importable without torch, Ray or a database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

ADAPTOR_OPS: tuple[str, ...] = (
    "sep_conv_3x3",
    "conv_1x1",
    "sep_conv_3x3_dil3",
    "sep_conv_3x3_dil6",
    "skip_connect",
    "deform_conv_3x3",
)
AGGREGATORS: tuple[str, ...] = ("sum", "concat")
CELL_FIELDS: tuple[str, ...] = ("input_1", "input_2", "adaptor_1", "adaptor_2", "aggregator")
TOKENS_PER_CELL = len(CELL_FIELDS)
FEATURE_PREFIX = "feature"


class SpaceError(ValueError):
    """An invalid search-space definition (one line naming the field)."""


@dataclass(frozen=True)
class TokenSlot:
    """One controller step: which cell and field it fills and how many choices it has."""

    position: int
    p: int
    task: str
    field: str
    num_choices: int


@dataclass(frozen=True)
class SearchSpace:
    num_inputs: int
    tasks: tuple[str, ...]
    adaptor_ops: tuple[str, ...] = ADAPTOR_OPS
    aggregators: tuple[str, ...] = AGGREGATORS
    _slots: tuple[TokenSlot, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "adaptor_ops", tuple(self.adaptor_ops))
        object.__setattr__(self, "aggregators", tuple(self.aggregators))
        if not isinstance(self.num_inputs, int) or isinstance(self.num_inputs, bool) or self.num_inputs < 1:
            raise SpaceError(f"num_inputs: must be a positive integer, got {self.num_inputs!r}")
        if not self.tasks:
            raise SpaceError("tasks: at least one task is needed")
        for name in self.tasks:
            if not isinstance(name, str) or not name or ":" in name or name == FEATURE_PREFIX:
                raise SpaceError(f"tasks: invalid task name {name!r} (non-empty, no ':', not 'feature')")
        if len(set(self.tasks)) != len(self.tasks):
            raise SpaceError("tasks: task names must be unique")
        if self.adaptor_ops != ADAPTOR_OPS:
            raise SpaceError(f"adaptor_ops: must be {list(ADAPTOR_OPS)} in this order")
        if self.aggregators != AGGREGATORS:
            raise SpaceError(f"aggregators: must be {list(AGGREGATORS)} in this order")
        object.__setattr__(self, "_slots", tuple(self._build_slots()))

    # --- cells -------------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def num_cells(self) -> int:
        return self.num_inputs * self.num_tasks

    @property
    def num_tokens(self) -> int:
        return TOKENS_PER_CELL * self.num_cells

    def cells(self) -> list[tuple[int, int]]:
        """(p, t) of every cell in generation order (p-major)."""
        return [(p, t) for p in range(self.num_inputs) for t in range(self.num_tasks)]

    def cell_ref(self, p: int, t: int) -> str:
        return f"{self.tasks[t]}:{p}"

    def visible_inputs(self, p: int, t: int) -> list[str]:
        """Input refs cell (p, t) may read, in choice-index order."""
        refs = [f"{FEATURE_PREFIX}:{q}" for q in range(self.num_inputs)]
        refs += [self.cell_ref(pp, tt) for pp in range(p) for tt in range(t + 1)]
        return refs

    # --- tokens ------------------------------------------------------------------------------
    def _build_slots(self) -> list[TokenSlot]:
        slots = []
        for p, t in self.cells():
            n_in = self.num_inputs + p * (t + 1)
            counts = (n_in, n_in, len(self.adaptor_ops), len(self.adaptor_ops), len(self.aggregators))
            for name, n in zip(CELL_FIELDS, counts, strict=True):
                slots.append(TokenSlot(len(slots), p, self.tasks[t], name, n))
        return slots

    @property
    def slots(self) -> tuple[TokenSlot, ...]:
        return self._slots

    def choice_counts(self) -> list[int]:
        return [s.num_choices for s in self._slots]

    @property
    def max_choices(self) -> int:
        return max(self.choice_counts())

    def action_mask(self, position: int) -> list[bool]:
        """Valid choices at a token position, padded to `max_choices`."""
        n = self._slots[position].num_choices
        return [i < n for i in range(self.max_choices)]

    def action_masks(self) -> list[list[bool]]:
        return [self.action_mask(i) for i in range(self.num_tokens)]

    def invalid_token(self, tokens: Sequence[int]) -> str | None:
        """None when `tokens` is a valid sequence, else a message naming the first bad position."""
        if len(tokens) != self.num_tokens:
            return f"expected {self.num_tokens} tokens, got {len(tokens)}"
        for slot, tok in zip(self._slots, tokens, strict=True):
            if isinstance(tok, bool) or not isinstance(tok, int) or not 0 <= tok < slot.num_choices:
                return (
                    f"token {slot.position} ({slot.task}:{slot.p}.{slot.field}) = {tok!r} "
                    f"is not in [0, {slot.num_choices})"
                )
        return None

    # --- counting ----------------------------------------------------------------------------
    def num_genotypes(self) -> int:
        """Exact number of valid token sequences (distinct genotype documents)."""
        return math.prod(s.num_choices for s in self._slots)

    def num_genotypes_up_to_branch_order(self) -> int:
        """Genotypes counted once when they differ only by swapping a cell's two branches.

        A cell's branches (input, adaptor) form an unordered pair with repetition: m(m+1)/2.
        """
        total = 1
        n_ops, n_agg = len(self.adaptor_ops), len(self.aggregators)
        for p, t in self.cells():
            m = (self.num_inputs + p * (t + 1)) * n_ops
            total *= m * (m + 1) // 2 * n_agg
        return total

    def to_dict(self) -> dict:
        return {
            "num_inputs": self.num_inputs,
            "tasks": list(self.tasks),
            "adaptor_ops": list(self.adaptor_ops),
            "aggregators": list(self.aggregators),
        }

    def describe(self) -> dict:
        """Everything a client needs to drive or inspect the space (CLI and REST)."""
        return {
            "space": self.to_dict(),
            "tokens_per_cell": TOKENS_PER_CELL,
            "cell_fields": list(CELL_FIELDS),
            "num_cells": self.num_cells,
            "num_tokens": self.num_tokens,
            "max_choices": self.max_choices,
            "num_genotypes": self.num_genotypes(),
            "num_genotypes_up_to_branch_order": self.num_genotypes_up_to_branch_order(),
            "token_layout": [
                {
                    "position": s.position,
                    "cell": f"{s.task}:{s.p}",
                    "field": s.field,
                    "num_choices": s.num_choices,
                    "choices": self.choice_names(s),
                }
                for s in self._slots
            ],
        }

    def choice_names(self, slot: TokenSlot) -> list[str]:
        if slot.field.startswith("input"):
            return self.visible_inputs(slot.p, self.tasks.index(slot.task))
        if slot.field.startswith("adaptor"):
            return list(self.adaptor_ops)
        return list(self.aggregators)

    @classmethod
    def from_dict(cls, d: dict) -> SearchSpace:
        if not isinstance(d, dict):
            raise SpaceError("space: must be an object")
        unknown = set(d) - {"num_inputs", "tasks", "adaptor_ops", "aggregators"}
        if unknown:
            raise SpaceError(f"space.{sorted(unknown)[0]}: unknown field")
        if "num_inputs" not in d or "tasks" not in d:
            raise SpaceError(f"space.{'num_inputs' if 'num_inputs' not in d else 'tasks'}: missing")
        if not isinstance(d["tasks"], list):
            raise SpaceError("space.tasks: must be a list of task names")
        for key in ("adaptor_ops", "aggregators"):
            if key in d and not isinstance(d[key], list):
                raise SpaceError(f"space.{key}: must be a list")
        try:
            return cls(
                num_inputs=d["num_inputs"],
                tasks=tuple(d["tasks"]),
                adaptor_ops=tuple(d.get("adaptor_ops", ADAPTOR_OPS)),
                aggregators=tuple(d.get("aggregators", AGGREGATORS)),
            )
        except SpaceError as e:
            raise SpaceError(f"space.{e}") from None
