"""Genotypes: tokens <-> cells <-> genotype JSON, validation, canonical hash, `basic`.

Genotype JSON version 1 is the genotype (space, cells, tokens) with an optional reward, metrics
and search. Version 2 is version 1 plus what a search's answer says of it: `recommended` (whether
the search recommends training with it) and `answer` (the confirmation figures and the verdict
line, or null when the search has no answer yet). Both versions are read; a plain genotype is
still written as version 1, a search's answer as version 2.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxnas.search_space.space import FEATURE_PREFIX, TOKENS_PER_CELL, SearchSpace, SpaceError

FORMAT = "auxnas-genotype"
VERSION = 1  # a plain genotype
ANSWER_VERSION = 2  # a genotype with a search's answer: `recommended` and `answer`
VERSIONS = (VERSION, ANSWER_VERSION)
_TOP_FIELDS = {"format", "version", "space", "cells", "tokens", "reward", "metrics", "search"}
_ANSWER_FIELDS = {"recommended", "answer"}
_CELL_FIELDS = {"task", "index", "inputs", "adaptors", "aggregator"}


class GenotypeError(ValueError):
    """An invalid genotype: `str(err)` is one line naming the offending cell and field."""


@dataclass(frozen=True)
class Cell:
    task: str
    index: int
    inputs: tuple[str, str]
    adaptors: tuple[str, str]
    aggregator: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "index": self.index,
            "inputs": list(self.inputs),
            "adaptors": list(self.adaptors),
            "aggregator": self.aggregator,
        }


@dataclass(frozen=True)
class Genotype:
    space: SearchSpace
    tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        problem = self.space.invalid_token(self.tokens)
        if problem:
            raise GenotypeError(f"tokens: {problem}")

    @property
    def cells(self) -> list[Cell]:
        sp = self.space
        cells = []
        for i, (p, t) in enumerate(sp.cells()):
            a, b, o1, o2, g = self.tokens[i * TOKENS_PER_CELL : (i + 1) * TOKENS_PER_CELL]
            refs = sp.visible_inputs(p, t)
            cells.append(
                Cell(
                    task=sp.tasks[t],
                    index=p,
                    inputs=(refs[a], refs[b]),
                    adaptors=(sp.adaptor_ops[o1], sp.adaptor_ops[o2]),
                    aggregator=sp.aggregators[g],
                )
            )
        return cells

    def cell(self, task: str, index: int) -> Cell:
        return self.cells[index * self.space.num_tasks + self.space.tasks.index(task)]

    def canonical_hash(self) -> str:
        """Same for genotypes that differ only by the order of a cell's two branches."""
        canon = []
        for i in range(self.space.num_cells):
            a, b, o1, o2, g = self.tokens[i * TOKENS_PER_CELL : (i + 1) * TOKENS_PER_CELL]
            first, second = sorted([(a, o1), (b, o2)])
            canon.append([first, second, g])
        payload = json.dumps({"space": self.space.to_dict(), "cells": canon}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(
        self,
        reward: float | None = None,
        metrics: dict[str, dict[str, float]] | None = None,
        search: dict[str, Any] | None = None,
        recommended: bool | None = None,
        answer: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Version 1, or version 2 when `recommended` is given (with `answer`, null if None)."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION if recommended is None else ANSWER_VERSION,
            "space": self.space.to_dict(),
            "cells": [c.to_dict() for c in self.cells],
            "tokens": list(self.tokens),
        }
        if reward is not None:
            doc["reward"] = reward
        if metrics is not None:
            doc["metrics"] = metrics
        if search is not None:
            doc["search"] = search
        if recommended is not None:
            doc["recommended"] = bool(recommended)
            doc["answer"] = answer
        return doc

    def summary(self) -> str:
        ops = sum(1 for c in self.cells for op in c.adaptors if op != "skip_connect")
        return (
            f"genotype {self.canonical_hash()}: {self.space.num_cells} cells, tasks "
            f"{','.join(self.space.tasks)}, P={self.space.num_inputs}, {ops} non-identity adaptors"
        )

    @classmethod
    def from_json(cls, doc: Any) -> Genotype:
        return parse_genotype(doc)


def parse_genotype(doc: Any) -> Genotype:
    """Check a genotype JSON document (version 1 or 2) completely; raise GenotypeError naming cell
    and field."""
    if not isinstance(doc, dict):
        raise GenotypeError("document: must be a JSON object")
    if doc.get("format") != FORMAT:
        raise GenotypeError(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
    version = doc.get("version")
    if isinstance(version, bool) or version not in VERSIONS:
        raise GenotypeError(f"version: unsupported version {version!r} (this reads 1 and 2)")
    unknown = set(doc) - _TOP_FIELDS - (_ANSWER_FIELDS if version == ANSWER_VERSION else set())
    if unknown:
        raise GenotypeError(f"{sorted(unknown)[0]}: unknown field" + _version_hint(unknown, version))
    if version == ANSWER_VERSION:
        _check_answer_fields(doc)
    unknown = set(doc) - _TOP_FIELDS - _ANSWER_FIELDS
    if unknown:
        raise GenotypeError(f"{sorted(unknown)[0]}: unknown field")
    if "space" not in doc:
        raise GenotypeError("space: missing")
    try:
        space = SearchSpace.from_dict(doc["space"])
    except SpaceError as e:
        raise GenotypeError(str(e)) from None
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise GenotypeError("cells: missing or not a list")
    if len(cells) != space.num_cells:
        raise GenotypeError(
            f"cells: expected {space.num_cells} cells (P={space.num_inputs} x {space.num_tasks} tasks), "
            f"got {len(cells)}"
        )
    tokens: list[int] = []
    for i, ((p, t), cell) in enumerate(zip(space.cells(), cells, strict=True)):
        tokens += _cell_tokens(space, i, p, t, cell)
    if "tokens" in doc:
        given = doc["tokens"]
        if not isinstance(given, list) or given != tokens:
            where = _first_difference(given, tokens)
            raise GenotypeError(f"tokens: disagree with cells{where}")
    _check_optional(doc)
    return Genotype(space, tuple(tokens))


def _cell_tokens(space: SearchSpace, i: int, p: int, t: int, cell: Any) -> list[int]:
    task = space.tasks[t]
    where = f"cells[{i}]"
    if not isinstance(cell, dict):
        raise GenotypeError(f"{where}: must be an object")
    unknown = set(cell) - _CELL_FIELDS
    if unknown:
        raise GenotypeError(f"{where}.{sorted(unknown)[0]}: unknown field")
    missing = [f for f in ("task", "index", "inputs", "adaptors", "aggregator") if f not in cell]
    if missing:
        raise GenotypeError(f"{where}.{missing[0]}: missing")
    if cell["task"] not in space.tasks:
        raise GenotypeError(f"{where}.task: unknown task {cell['task']!r} (space has {list(space.tasks)})")
    if cell["task"] != task or cell["index"] != p:
        raise GenotypeError(
            f"{where}: expected cell {task}:{p} here (p-major order), got {cell['task']}:{cell['index']}"
        )
    where = f"{where} ({task}:{p})"
    visible = space.visible_inputs(p, t)
    toks = []
    for key, choices, kind in (
        ("inputs", visible, "input"),
        ("adaptors", space.adaptor_ops, "adaptor op"),
    ):
        vals = cell[key]
        if not isinstance(vals, list) or len(vals) != 2:
            raise GenotypeError(f"{where}.{key}: must be a list of two names")
        for j, v in enumerate(vals):
            if v not in choices:
                raise GenotypeError(f"{where}.{key}[{j}]: {_why_not(space, kind, v, p, t)}")
        toks.append([choices.index(v) for v in vals])
    agg = cell["aggregator"]
    if agg not in space.aggregators:
        raise GenotypeError(
            f"{where}.aggregator: unknown aggregator {agg!r} (one of {list(space.aggregators)})"
        )
    return [*toks[0], *toks[1], space.aggregators.index(agg)]


def _why_not(space: SearchSpace, kind: str, value: Any, p: int, t: int) -> str:
    if kind == "adaptor op":
        return f"unknown adaptor op {value!r} (one of {list(space.adaptor_ops)})"
    if not isinstance(value, str) or value.count(":") != 1:
        return f"invalid input ref {value!r} (expected 'feature:<p>' or '<task>:<p>')"
    name, idx = value.split(":")
    if name == FEATURE_PREFIX:
        return f"{value!r} does not exist (features are feature:0..feature:{space.num_inputs - 1})"
    if name not in space.tasks:
        return f"input ref {value!r} names an unknown task"
    return (
        f"{value!r} is not visible to cell {space.tasks[t]}:{p} (it may read features and cells "
        f"<task>:<q> with q < {p} of tasks {list(space.tasks[: t + 1])})"
    )


def _first_difference(given: Any, expected: list[int]) -> str:
    if not isinstance(given, list):
        return " (tokens must be a list of integers)"
    if len(given) != len(expected):
        return f" ({len(given)} tokens, cells give {len(expected)})"
    for k, (a, b) in enumerate(zip(given, expected, strict=True)):
        if a != b:
            return f" at position {k} (tokens say {a!r}, cells give {b})"
    return ""


def _check_optional(doc: dict) -> None:
    if "reward" in doc:
        r = doc["reward"]
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r)):
            raise GenotypeError("reward: must be a finite number or null")
    if "metrics" in doc and doc["metrics"] is not None and not isinstance(doc["metrics"], dict):
        raise GenotypeError("metrics: must be an object of per-task metrics")
    if "search" in doc and doc["search"] is not None and not isinstance(doc["search"], dict):
        raise GenotypeError("search: must be an object")


def _version_hint(unknown: set[str], version: int) -> str:
    return " (version 2 documents carry it)" if version == VERSION and unknown & _ANSWER_FIELDS else ""


def _check_answer_fields(doc: dict) -> None:
    if "recommended" not in doc:
        raise GenotypeError("recommended: missing (version 2 documents say whether the search recommends it)")
    if not isinstance(doc["recommended"], bool):
        raise GenotypeError("recommended: must be true or false")
    if doc.get("answer") is not None and not isinstance(doc["answer"], dict):
        raise GenotypeError("answer: must be an object or null")
    if doc["recommended"] and not doc.get("answer"):
        raise GenotypeError("answer: a recommended genotype carries the answer that recommends it")


def load_genotype_file(path: str | Path) -> tuple[Genotype, dict[str, Any]]:
    """Read and check a genotype JSON file; returns the genotype and the raw document."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GenotypeError(f"{path}: cannot read file ({e.strerror or e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return parse_genotype(doc), doc


def basic_genotype(space: SearchSpace) -> Genotype:
    """The paper's hand-designed structure: (0,t) = f0,f0,conv_1x1,conv_1x1,sum;
    (p,t), p>0 = t:p-1, feature:p, skip_connect, conv_1x1, concat."""
    ops, aggs = space.adaptor_ops, space.aggregators
    tokens: list[int] = []
    for p, t in space.cells():
        refs = space.visible_inputs(p, t)
        if p == 0:
            tokens += [0, 0, ops.index("conv_1x1"), ops.index("conv_1x1"), aggs.index("sum")]
        else:
            prev = refs.index(space.cell_ref(p - 1, t))
            feat = refs.index(f"{FEATURE_PREFIX}:{p}")
            tokens += [prev, feat, ops.index("skip_connect"), ops.index("conv_1x1"), aggs.index("concat")]
    return Genotype(space, tuple(tokens))
