"""The final training after a search (paper section 4): full schedule on the whole training
split, scored on the test split, for the searched genotype next to the Joint baseline and `basic`
(and optionally single-task baselines), with the same schedule and seeds.

    report = retrain(config, {"searched": genotype}, seeds=[0, 1, 2], single_task=True)
    report.to_markdown(); report.to_dict()
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.evaluate import train_and_score
from auxnas.evaluator.result import EvalResult
from auxnas.search_space import Genotype, basic_genotype


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


@dataclass
class RetrainRow:
    name: str  # "joint", "basic", "searched", "single:<task>"
    tasks: list[str]
    genotype_hash: str | None
    results: list[EvalResult] = field(default_factory=list)  # one per seed

    @property
    def failed(self) -> list[EvalResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> dict:
        ok = [r for r in self.results if r.ok]
        out: dict = {
            "name": self.name,
            "tasks": self.tasks,
            "genotype_hash": self.genotype_hash,
            "seeds_ok": len(ok),
            "seeds_failed": len(self.failed),
            "errors": [r.error for r in self.failed],
        }
        if not ok:
            return out
        out["train_params"] = ok[0].main_params + ok[0].aux_params
        out["inference_params"] = ok[0].main_params
        out["reward"] = _stats([r.reward for r in ok])
        out["metrics"] = {
            t: {m: _stats([r.metrics[t][m] for r in ok]) for m in ok[0].metrics[t]} for t in ok[0].metrics
        }
        out["train_seconds"] = _stats([r.train_seconds for r in ok])
        return out


@dataclass
class RetrainReport:
    config_name: str
    tasks: list[str]
    seeds: list[int]
    rows: list[RetrainRow]

    def to_dict(self) -> dict:
        return {
            "config": self.config_name,
            "tasks": self.tasks,
            "seeds": self.seeds,
            "split": "test (trained on the whole training split)",
            "rows": [r.summary() for r in self.rows],
        }

    def to_markdown(self) -> str:
        rows = [r.summary() for r in self.rows]
        metric_cols = [(t, m) for t in self.tasks for m in _metric_names(rows, t)]
        head = (
            ["model", "reward"]
            + [f"{t} {m}" for t, m in metric_cols]
            + ["params (train)", "params (inference)"]
        )
        lines = [
            f"Retrain on `{self.config_name}`: whole training split, scored on the test split; "
            f"mean ± std over seeds {self.seeds}.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for r in rows:
            if "reward" not in r:
                lines.append(f"| {r['name']} | failed: {r['errors'][0]['message'] if r['errors'] else '?'} |")
                continue
            cells = [r["name"], _fmt(r["reward"])]
            for t, m in metric_cols:
                cells.append(_fmt(r["metrics"][t][m]) if t in r["metrics"] else "")
            cells += [f"{r['train_params']:,}", f"{r['inference_params']:,}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _metric_names(rows: list[dict], task: str) -> list[str]:
    for r in rows:
        if task in r.get("metrics", {}):
            return list(r["metrics"][task])
    return []


def _fmt(s: Mapping[str, float]) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def retrain(
    config: EvalConfig,
    genotypes: Mapping[str, Genotype],
    seeds: Sequence[int],
    *,
    single_task: bool = False,
    on_result: Callable[[str, int, EvalResult], None] | None = None,
) -> RetrainReport:
    """Train Joint, `basic` and each named genotype (and single-task baselines) for every seed."""
    if not seeds:
        raise ValueError("seeds: at least one seed is needed")
    space = next(iter(genotypes.values())).space if genotypes else None
    plan: list[tuple[RetrainRow, EvalConfig, Genotype | None]] = [
        (RetrainRow("joint", list(config.tasks), None), config, None)
    ]
    if space is not None:
        basic = basic_genotype(space)
        plan.append((RetrainRow("basic", list(config.tasks), basic.canonical_hash()), config, basic))
    for name, g in genotypes.items():
        plan.append((RetrainRow(name, list(config.tasks), g.canonical_hash()), config, g))
    if single_task and len(config.tasks) > 1:
        for t in config.tasks:
            single = config.model_copy(update={"tasks": [t]})
            plan.append((RetrainRow(f"single:{t}", [t], None), single, None))
    for row, cfg, genotype in plan:
        for seed in seeds:
            result = train_and_score(cfg.model_copy(update={"seed": seed}), genotype, phase="final")
            row.results.append(result)
            if on_result is not None:
                on_result(row.name, seed, result)
    return RetrainReport(
        getattr(config, "name", "config"), list(config.tasks), list(seeds), [p[0] for p in plan]
    )
