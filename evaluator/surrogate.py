"""The surrogate evaluator: a benchmark's reward predicted in milliseconds instead of trained.

    auxnas surrogate fit rewards.jsonl.gz -o compete.surrogate.json   # fit, report, write
    AUXNAS_SURROGATE=compete.surrogate.json auxnas search CONFIG --evaluator surrogate

The file (`auxnas-surrogate` JSON, version 1) holds the search space, every genotype's
seed-adjusted mean reward and seed count, Joint's mean, the fitted seed offsets, the replicate
noise, the model settings, the held-out report and a check: the first predictions of the fit.
Loading fits the ensemble again from the stored table (the same seeds give the same ensemble; the
check catches a library that fits otherwise) once per process and file version.

A candidate's reward at training seed `s` (the config's `seed`):

    reward = member_m(g) + offset(s) + noise * z

- `member_m(g)`: the prediction of one ensemble member, `m` drawn per (genotype, seed): the
  ensemble's spread is the surrogate's own uncertainty (as NAS-Bench-301 samples its ensemble);
- `offset(s)`: the seed's shift of every candidate (common random numbers), drawn from
  N(0, std of the fitted offsets) by the seed alone;
- `z ~ N(0, 1)` drawn per (genotype, seed), scaled by the measured replicate noise.
Everything is drawn from `sha256(canonical hash, seed)`: the same seed gives the same reward, in
every process. The *true* mean of a genotype is the ensemble mean (`Surrogate.true_mean`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auxnas.evaluator.result import EvalResult
from auxnas.evaluator.surrogate_data import RewardTable, replicate_pairs, summarise
from auxnas.evaluator.surrogate_model import (
    MODEL_KINDS,
    Ensemble,
    feature_matrix,
    fit_ensemble,
    held_out,
    rank_agreement,
)
from auxnas.search_space import Genotype, SearchSpace, SpaceError

if TYPE_CHECKING:
    from auxnas.evaluator.config import EvalConfig

FORMAT = "auxnas-surrogate"
VERSION = 1
ENV = "AUXNAS_SURROGATE"
_CHECK_ROWS = 8
_CHECK_TOLERANCE = 1e-6


class SurrogateError(ValueError):
    """A missing, unreadable or inconsistent surrogate file: one line naming the file and field."""


# --- fitting ------------------------------------------------------------------------------------
def fit_document(
    table: RewardTable, *, kind: str = "gbt", members: int = 10, seed: int = 0
) -> dict[str, Any]:
    """The surrogate file's content: the table's summary, the settings and the held-out report."""
    s = summarise(table)
    keys = [k for k in s.means if k != "joint"]
    if len(keys) < 10:
        raise SurrogateError(f"{table.source}: {len(keys)} genotypes; a surrogate needs at least 10")
    x, y, w = _arrays(
        table.space, [s.tokens[k] for k in keys], [s.means[k] for k in keys], [s.counts[k] for k in keys]
    )
    pred = held_out(x, y, w, kind=kind, members=members, seed=seed)
    pairs = replicate_pairs(table, s.offsets)
    ceiling = rank_agreement([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) >= 3 else None
    model = fit_ensemble(x, y, w, kind=kind, members=members, seed=seed)
    offsets = list(s.offsets.values())
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": table.source,
        "space": table.space.to_dict(),
        "model": {"kind": kind, "members": members, "seed": seed},
        "genotypes": [{"tokens": list(s.tokens[k]), "mean": s.means[k], "seeds": s.counts[k]} for k in keys],
        "joint": {"mean": s.means["joint"], "seeds": s.counts["joint"]} if "joint" in s.means else None,
        "offsets": {str(k): v for k, v in s.offsets.items()},
        "offset_std": float(np.std(offsets, ddof=1)) if len(offsets) > 1 else 0.0,
        "noise": s.noise,
        "report": {
            "genotypes": len(keys),
            "evaluations": len(table.rows),
            "replicated_genotypes": len(pairs),
            "held_out": rank_agreement(pred, y),
            "held_out_rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
            "replicate_ceiling": ceiling,
            "spread": float(np.std(y, ddof=1)),
            "noise": s.noise,
        },
        "check": [float(v) for v in model.predict(x[:_CHECK_ROWS])[0]],
    }


def _arrays(space: SearchSpace, tokens: Sequence, means: Sequence[float], counts: Sequence[int]):  # noqa: ANN202
    return feature_matrix(space, tokens), np.asarray(means, dtype=float), np.asarray(counts, dtype=float)


# --- the fitted surrogate -----------------------------------------------------------------------
@dataclass
class Surrogate:
    space: SearchSpace
    ensemble: Ensemble
    joint_mean: float
    offset_std: float
    noise: float
    doc: dict[str, Any]

    def __post_init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def members(self, genotype: Genotype) -> np.ndarray:
        """Every member's prediction for `genotype` (cached by canonical hash)."""
        key = genotype.canonical_hash()
        if key not in self._cache:
            x = feature_matrix(self.space, [genotype.tokens])
            self._cache[key] = self.ensemble.member_predictions(x)[:, 0]
        return self._cache[key]

    def prefetch(self, genotypes: Sequence[Genotype]) -> None:
        """Predict a batch at once (one call per member instead of one per genotype)."""
        todo = {g.canonical_hash(): g for g in genotypes if g.canonical_hash() not in self._cache}
        if todo:
            preds = self.ensemble.member_predictions(
                feature_matrix(self.space, [g.tokens for g in todo.values()])
            )
            for i, key in enumerate(todo):
                self._cache[key] = preds[:, i]

    def true_mean(self, genotype: Genotype | None) -> float:
        """The ensemble's mean prediction (Joint: its measured mean)."""
        return self.joint_mean if genotype is None else float(self.members(genotype).mean())

    def reward(self, genotype: Genotype | None, seed: int) -> float:
        """One training seed's reward (module docstring), the same for the same seed."""
        offset = self.offset_std * _rng("offset", seed).standard_normal()
        if genotype is None:
            return self.joint_mean + offset + self.noise * _rng("joint", seed).standard_normal()
        preds = self.members(genotype)
        rng = _rng(genotype.canonical_hash(), seed)
        member = preds[rng.integers(len(preds))]
        return float(member + offset + self.noise * rng.standard_normal())


def _rng(key: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"auxnas-surrogate/{key}/{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def load_surrogate(path: str | Path) -> Surrogate:
    """The surrogate in `path` (fitted again from its table; cached per file version)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise SurrogateError(f"{p}: no such surrogate file (write one with `auxnas surrogate fit`)") from None
    return _load(str(p.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _load(path: str, _mtime: int, _size: int) -> Surrogate:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise SurrogateError(f"{path}: not a JSON file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SurrogateError(f"{path}: format: not an {FORMAT} file")
    if doc.get("version") != VERSION:
        raise SurrogateError(f"{path}: version: {doc.get('version')!r}, this auxnas reads {VERSION}")
    try:
        return _from_document(doc)
    except SurrogateError as e:
        raise SurrogateError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, SpaceError) as e:
        raise SurrogateError(
            f"{path}: malformed ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None


def _from_document(doc: dict[str, Any]) -> Surrogate:
    space = SearchSpace(num_inputs=doc["space"]["num_inputs"], tasks=tuple(doc["space"]["tasks"]))
    model = doc["model"]
    if model["kind"] not in MODEL_KINDS:
        raise SurrogateError(f"model.kind: one of {list(MODEL_KINDS)}, got {model['kind']!r}")
    rows = doc["genotypes"]
    for i, r in enumerate(rows):
        if problem := space.invalid_token(r["tokens"]):
            raise SurrogateError(f"genotypes[{i}].tokens: {problem}")
    x, y, w = _arrays(
        space, [r["tokens"] for r in rows], [r["mean"] for r in rows], [r["seeds"] for r in rows]
    )
    ensemble = fit_ensemble(
        x, y, w, kind=model["kind"], members=int(model["members"]), seed=int(model["seed"])
    )
    check = ensemble.predict(x[:_CHECK_ROWS])[0]
    if len(check) != len(doc["check"]) or np.max(np.abs(check - np.asarray(doc["check"]))) > _CHECK_TOLERANCE:
        raise SurrogateError(
            "check: the ensemble fitted again differs from the stored fit (another scikit-learn?)"
        )
    joint = doc["joint"]["mean"] if doc.get("joint") else float(np.mean(y))
    return Surrogate(space, ensemble, float(joint), float(doc["offset_std"]), float(doc["noise"]), doc)


def surrogate_path() -> str:
    path = os.environ.get(ENV)
    if not path:
        raise SurrogateError(f"{ENV}: set it to a file written by `auxnas surrogate fit`")
    return path


# --- the evaluator ------------------------------------------------------------------------------
def evaluate(
    config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None
) -> EvalResult:
    """`evaluator.evaluate.evaluate`'s contract, from the surrogate named by $AUXNAS_SURROGATE:
    the reward at `config.seed`. Raises SurrogateError (a ValueError, one line) for a missing or
    bad file or a genotype of another space."""
    t0 = time.perf_counter()
    surrogate = load_surrogate(surrogate_path())
    if genotype is not None and genotype.space != surrogate.space:
        raise SurrogateError(f"genotype: its space {genotype.space.to_dict()} is not the surrogate's")
    if (
        tuple(config.tasks) != surrogate.space.tasks
        or config.model.num_aux_inputs != surrogate.space.num_inputs
    ):
        raise SurrogateError(
            f"config: tasks/num_aux_inputs differ from the surrogate's space ({surrogate_path()})"
        )
    reward = surrogate.reward(genotype, config.seed)
    mean = surrogate.true_mean(genotype)
    return EvalResult(
        ok=True,
        reward=reward,
        metrics={"surrogate": {"reward": reward, "true_mean": mean}},
        train_seconds=time.perf_counter() - t0,
        steps=0,
        early_stopped=early_stop_below is not None and reward < early_stop_below and math.isfinite(reward),
        per_seed=[{"seed": config.seed, "reward": reward}],
    )
