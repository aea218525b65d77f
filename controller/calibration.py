"""Calibration: does the search's reward rank architectures? Trials and figures of the phase.

Joint, `basic` and `genotypes` random genotypes (sampled from the search's seed, distinct) are
scored under `replicates` independent replicates, each with its own training seeds
(`evaluator.seeds`: replicates never share a training seed, replicate 0 is the search's own
seed); the data split is the same for all. The trials are ordinary trial rows
of the search with `phase: calibration` and their `replicate`: they spend no budget, resume like
any trial, and are never the search's best or its cache. `controller.fidelity` turns their
rewards into the figures and the verdict.
"""

from __future__ import annotations

import random
from typing import Any

from auxnas.controller.config import CalibrateSection, SearchConfig
from auxnas.controller.fidelity import FidelityReport, fidelity_report
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import TrialRecord
from auxnas.evaluator.seeds import replicate_config  # noqa: F401 - the driver runs replicates by it
from auxnas.search_space import Genotype, SearchSpace, basic_genotype, sample_genotype

PHASE = "calibration"
JOINT = "joint"
BASIC = "basic"
# sampling stops after this many draws per wanted genotype (tiny spaces have few genotypes)
_MAX_DRAWS_PER_GENOTYPE = 50


def calibration_genotypes(space: SearchSpace, n: int, seed: int) -> list[tuple[str, Genotype | None]]:
    """(kind, genotype) of the calibration set: Joint, basic, then `n` distinct random genotypes."""
    rng = random.Random(f"auxnas-calibrate-{seed}")
    basic = basic_genotype(space)
    seen = {basic.canonical_hash()}
    chosen: list[Genotype] = []
    for _ in range(n * _MAX_DRAWS_PER_GENOTYPE):
        if len(chosen) == n:
            break
        g = sample_genotype(space, rng)
        if g.canonical_hash() not in seen:
            seen.add(g.canonical_hash())
            chosen.append(g)
    if len(chosen) < n:
        raise ValueError(
            f"search.calibrate.genotypes: the space holds fewer than {n} genotypes besides basic"
        )
    return [("joint", None), ("basic", basic), *(("candidate", g) for g in chosen)]


def calibration_trials(
    config: SearchConfig, space: SearchSpace, calibrate: CalibrateSection, first_index: int
) -> list[TrialRecord]:
    """Waiting rows for the whole phase, replicate by replicate."""
    genotypes = calibration_genotypes(space, calibrate.genotypes, config.seed)
    rows = []
    for r in range(calibrate.replicates):
        for kind, g in genotypes:
            rows.append(
                TrialRecord(
                    index=first_index + len(rows),
                    kind=kind,
                    status=TrialStatus.WAITING,
                    tokens=list(g.tokens) if g is not None else None,
                    genotype=g.to_json() if g is not None else None,
                    genotype_hash=g.canonical_hash() if g is not None else None,
                    phase=PHASE,
                    replicate=r,
                )
            )
    return rows


def _label(t: TrialRecord) -> str:
    return BASIC if t.kind == "basic" else (t.genotype_hash or JOINT)


def calibration_report(
    trials: list[TrialRecord], replicates: int, reward_seeds: int, threshold: float = 0.5
) -> FidelityReport:
    """The fidelity figures from the finished calibration trials (failed ones are left out)."""
    rewards: dict[str, list[float | None]] = {}
    joint: list[float | None] = [None] * replicates
    for t in trials:
        if t.phase != PHASE or t.replicate is None:
            continue
        reward = t.reward if t.status == TrialStatus.SUCCEEDED else None
        if t.kind == "joint":
            joint[t.replicate] = reward
        else:
            rewards.setdefault(_label(t), [None] * replicates)[t.replicate] = reward
    return fidelity_report(rewards, joint, threshold=threshold, reward_seeds=reward_seeds)


def fidelity_document(
    report: FidelityReport, calibrate: CalibrateSection, trials: list[TrialRecord]
) -> dict[str, Any]:
    """What a search stores and shows as its `fidelity`: the figures, the threshold, and the
    median wall and CPU seconds per calibration candidate."""
    done = [t for t in trials if t.phase == PHASE and t.status == TrialStatus.SUCCEEDED]
    return {
        **report.to_dict(),
        "min_spearman": calibrate.min_spearman,
        "seconds_per_candidate": {
            "wall": _median([t.seconds for t in done]),
            "cpu": _median([t.cpu_seconds for t in done]),
        },
    }


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    return values[len(values) // 2] if values else None


def below_minimum(report: FidelityReport, calibrate: CalibrateSection) -> str | None:
    """Why the search must stop after calibrating, or None."""
    if calibrate.min_spearman is None:
        return None
    rho = report.spearman
    if rho is not None and rho == rho and rho >= calibrate.min_spearman:  # rho == rho: not NaN
        return None
    return (
        f"calibration: replicate spearman {rho:.2f} is below search.calibrate.min_spearman="
        f"{calibrate.min_spearman:g}: {report.verdict}"
    )
