"""Per-seed rewards to fit a surrogate on, and the seed-adjusted mean reward of each genotype.

    table = read_rewards("rewards.jsonl.gz")          # or .json, or a database URL
    summary = summarise(table)                         # means, seed offsets, replicate noise

A row is (key, kind, tokens, seed, reward): `kind` is "joint" (no modules, `tokens` None),
"basic" or "candidate"; `key` is the genotype's canonical hash (two genotypes that differ only
by a cell's branch order are one). Sources:

- JSON lines (`.jsonl`, `.jsonl.gz`), one object per evaluation with `tokens`, `seed`, `reward`
  and optionally `kind` and `ok` (what `bench/collect_rewards.py` writes);
- a JSON document: a list of such objects, or `{"space": ..., "records": [...]}`;
- a database URL (`sqlite:///...`, `postgresql://...`): every succeeded, not early-stopped trial
  of every stored search (search and calibration phases), at the training seed it ran under.

The reward model is additive: `reward(g, s) = mean(g) + offset(s) + noise`. A search's seed moves
every candidate together (common random numbers), so the offsets are fitted jointly with the
genotype means (alternating least squares) and the noise is what is left within a genotype.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auxnas.search_space import Genotype, GenotypeError, SearchSpace, SpaceError

KINDS = ("joint", "basic", "candidate")
_ALS_ROUNDS = 50


class RewardTableError(ValueError):
    """Unreadable or inconsistent reward data: `str(err)` is one line naming the source and field."""


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    tokens: tuple[int, ...] | None
    seed: int
    reward: float


@dataclass
class RewardTable:
    space: SearchSpace
    rows: list[Row]
    source: str = ""


@dataclass
class Summary:
    """Seed-adjusted genotype means, the seed offsets, and the replicate noise."""

    means: dict[str, float]  # key -> mean of (reward - offset[seed]) over its seeds
    counts: dict[str, int]  # key -> number of seeds
    tokens: dict[str, tuple[int, ...] | None]
    kinds: dict[str, str]
    offsets: dict[int, float]  # seed -> offset (mean 0 over the seeds)
    noise: float  # pooled within-genotype std of the residuals (genotypes with 2+ seeds)
    replicated: list[str] = field(default_factory=list)  # keys with 2+ seeds


def _is_url(source: str) -> bool:
    return "://" in source


def read_rewards(source: str | Path) -> RewardTable:
    """The rows of a JSON lines file, a JSON document or a database URL (module docstring)."""
    text = str(source)
    if _is_url(text):
        return _from_database(text)
    path = Path(source)
    if not path.is_file():
        raise RewardTableError(f"{path}: no such file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        body = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise RewardTableError(f"{path}: cannot read it ({type(e).__name__})") from None
    stem = path.name.removesuffix(".gz")
    if stem.endswith(".jsonl"):
        records, space_doc = _json_lines(path, body), None
    else:
        records, space_doc = _json_document(path, body)
    return _table(records, space_doc, str(path))


def _json_lines(path: Path, body: str) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise RewardTableError(f"{path}: line {n} is not JSON") from None
    return records


def _json_document(path: Path, body: str) -> tuple[list[Any], Any]:
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        raise RewardTableError(f"{path}: not JSON (and not named .jsonl)") from None
    if isinstance(doc, list):
        return doc, None
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        return doc["records"], doc.get("space")
    raise RewardTableError(f"{path}: expected a list of records or an object with 'records'")


def _table(records: list[Any], space_doc: Any, source: str) -> RewardTable:
    space = _space(space_doc, records, source)
    rows = []
    for n, rec in enumerate(records, start=1):
        row = _row(rec, space, f"{source}: record {n}")
        if row is not None:
            rows.append(row)
    if not rows:
        raise RewardTableError(f"{source}: no successful evaluations in it")
    return RewardTable(space, _one_per_seed(rows), source)


def _one_per_seed(rows: list[Row]) -> list[Row]:
    """One row per (genotype, training seed): a repeat of the same evaluation (on the CPU it
    reproduces the reward) is not another replicate, so repeats are averaged into one row."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.key, r.seed), []).append(r)
    return [
        Row(g[0].key, g[0].kind, g[0].tokens, g[0].seed, sum(r.reward for r in g) / len(g))
        for g in groups.values()
    ]


def _space(space_doc: Any, records: list[Any], source: str) -> SearchSpace:
    """The search space: given, or the one whose token count fits (tasks named in a record)."""
    doc = space_doc
    if doc is None:
        doc = next((r.get("space") for r in records if isinstance(r, dict) and r.get("space")), None)
    if doc is None:
        doc = {"num_inputs": 3, "tasks": ["segmentation", "depth"]}
    try:
        return SearchSpace(num_inputs=doc["num_inputs"], tasks=tuple(doc["tasks"]))
    except (KeyError, TypeError, SpaceError) as e:
        raise RewardTableError(f"{source}: space: {e}") from None


def _row(rec: Any, space: SearchSpace, where: str) -> Row | None:
    if not isinstance(rec, dict):
        raise RewardTableError(f"{where}: not an object")
    if rec.get("ok") is False or rec.get("early_stopped"):
        return None
    reward, seed = rec.get("reward"), rec.get("seed")
    if not isinstance(reward, (int, float)) or isinstance(reward, bool) or not math.isfinite(reward):
        raise RewardTableError(f"{where}: reward: a finite number is needed, got {reward!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RewardTableError(f"{where}: seed: an integer is needed, got {seed!r}")
    tokens = rec.get("tokens")
    kind = rec.get("kind") or ("joint" if tokens is None else "candidate")
    if kind not in KINDS:
        raise RewardTableError(f"{where}: kind: one of {list(KINDS)}, got {kind!r}")
    if tokens is None:
        if kind != "joint":
            raise RewardTableError(f"{where}: tokens: missing for a {kind} genotype")
        return Row("joint", "joint", None, seed, float(reward))
    try:
        g = Genotype(space, tuple(tokens))
    except (GenotypeError, TypeError) as e:
        raise RewardTableError(f"{where}: {e}") from None
    return Row(g.canonical_hash(), kind, g.tokens, seed, float(reward))


def _from_database(url: str) -> RewardTable:
    from sqlalchemy.exc import SQLAlchemyError

    from auxnas.db.storage import SqlStorage

    try:
        storage = SqlStorage(url)
        records, space_doc = _database_records(storage)
    except SQLAlchemyError as e:
        raise RewardTableError(f"database: {' '.join(str(e).split())[:300]}") from None
    finally:
        if "storage" in locals():
            storage.dispose()
    return _table(records, space_doc, "database")


def _database_records(storage: Any) -> tuple[list[dict[str, Any]], Any]:
    """Succeeded trials of every search, each at the seeds it trained under (its `seed`; rows
    stored without one: the replicate rule of `evaluator.seeds`)."""
    records: list[dict[str, Any]] = []
    space_doc = None
    offset = 0
    while True:
        page, total = storage.list_searches(offset=offset, limit=200)
        for summary in page:
            row = storage.search_row(summary.id)
            config = row.config
            doc = {"num_inputs": config["model"]["num_aux_inputs"], "tasks": config["tasks"]}
            if space_doc is not None and doc != space_doc:
                raise RewardTableError(
                    f"database: search {summary.id} has another search space than the first"
                )
            space_doc = doc
            records += _trial_records(storage.trials(summary.id), config)
        offset += len(page)
        if not page or offset >= total:
            return records, space_doc


def _trial_records(trials: list[Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    from auxnas.evaluator.seeds import replicate_seed, trained_seeds

    k = config["train"].get("reward_seeds", 1)
    out = []
    for t in trials:
        if t.status != "succeeded" or t.reward is None:
            continue
        first = t.seed if t.seed is not None else replicate_seed(config["seed"], t.replicate or 0, k)
        seeds = trained_seeds(first, k)
        per_seed = t.per_seed or [{"seed": seeds[0], "reward": t.reward}]
        for i, one in enumerate(per_seed):
            out.append(
                {
                    "kind": t.kind,
                    "tokens": t.tokens,
                    "seed": one.get("seed", seeds[i]),
                    "reward": one["reward"],
                }
            )
    return out


def summarise(table: RewardTable) -> Summary:
    """Genotype means and seed offsets by alternating least squares, and the replicate noise."""
    rows = table.rows
    seeds = sorted({r.seed for r in rows})
    offsets = dict.fromkeys(seeds, 0.0)
    means: dict[str, float] = {}
    for _ in range(_ALS_ROUNDS):
        means = _group_means([(r.key, r.reward - offsets[r.seed]) for r in rows])
        raw = _group_means([(r.seed, r.reward - means[r.key]) for r in rows])
        centre = sum(raw.values()) / len(raw)
        offsets = {s: v - centre for s, v in raw.items()}
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.key] = counts.get(r.key, 0) + 1
    ss = sum((r.reward - offsets[r.seed] - means[r.key]) ** 2 for r in rows if counts[r.key] > 1)
    dof = sum(c - 1 for c in counts.values() if c > 1)
    replicated = sorted(k for k, c in counts.items() if c > 1 and k != "joint")
    return Summary(
        means=means,
        counts=counts,
        tokens={r.key: r.tokens for r in rows},
        kinds={r.key: r.kind for r in rows},
        offsets=offsets,
        noise=math.sqrt(ss / dof) if dof else 0.0,
        replicated=replicated,
    )


def _group_means(pairs: list[tuple[Any, float]]) -> dict:
    sums: dict = {}
    for key, value in pairs:
        s, n = sums.get(key, (0.0, 0))
        sums[key] = (s + value, n + 1)
    return {k: s / n for k, (s, n) in sums.items()}


def replicate_pairs(table: RewardTable, offsets: dict[int, float]) -> list[tuple[float, float]]:
    """(reward at its first seed, reward at its second seed) of every replicated genotype
    (Joint left out), each seed's offset removed: two single-seed replicates."""
    by_key: dict[str, list[Row]] = {}
    for r in table.rows:
        if r.key != "joint":
            by_key.setdefault(r.key, []).append(r)
    pairs = []
    for rs in by_key.values():
        if len({r.seed for r in rs}) >= 2:
            a, b = sorted(rs, key=lambda r: r.seed)[:2]
            pairs.append((a.reward - offsets[a.seed], b.reward - offsets[b.seed]))
    return pairs
