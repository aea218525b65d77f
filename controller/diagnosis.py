"""Is there something for auxiliary modules to fix? The statistics of `auxnas diagnose`.

The paper's premise (section 4.2, Table 1): hard-sharing Joint training scores below
Single-task training because the tasks compete for the shared weights, and auxiliary modules
close that gap. Given per-seed scores of Joint, Single-task baselines and `basic`, this module
reports, per task, the *task competition* (Joint minus Single) and the gain of `basic` over
Joint, each as a difference of means with its std and that difference in std units.

"std" of a difference is the std of ONE run of A minus one run of B:
`sqrt(std_A^2 + std_B^2)` (sample stds over seeds). A difference "by more than 2 std" therefore
separates single runs, not just means; the standard error of the difference of the means,
`sqrt(std_A^2/n_A + std_B^2/n_B)`, and its ratio `t` are given alongside.

Pure numpy: the CLI (`cli/diagnose.py`) gathers the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_SEEDS = 2
SIGNIFICANT_STD = 2.0  # "more than 2 std": the threshold for an effect


@dataclass(frozen=True)
class Runs:
    """Per-seed outcomes of one training strategy: rewards and each task's score metric."""

    rewards: Sequence[float]
    scores: Mapping[str, Sequence[float]]


def stats(values: Sequence[float]) -> dict[str, float | int]:
    x = np.asarray(values, dtype=float)
    if x.size < MIN_SEEDS:
        raise ValueError(f"need at least {MIN_SEEDS} values for a std, got {x.size}")
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)), "n": int(x.size)}


def effect(a: Sequence[float], b: Sequence[float]) -> dict[str, float | None]:
    """mean(a) - mean(b), the std of one run's difference, and the difference in those units."""
    sa, sb = stats(a), stats(b)
    diff = sa["mean"] - sb["mean"]
    std = float(np.hypot(sa["std"], sb["std"]))
    se = float(np.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"]))
    return {
        "diff": diff,
        "std": std,
        "in_std": _ratio(diff, std),
        "se": se,
        "t": _ratio(diff, se),
    }


def _ratio(diff: float, scale: float) -> float | None:
    """diff / scale; None when the scale is 0 (no noise measured: units are undefined)."""
    return diff / scale if scale > 0 else None


def diagnose(joint: Runs, basic: Runs, single: Mapping[str, Sequence[float]]) -> dict:
    """Task competition per task (Joint minus Single) and `basic` against Joint.

    `single[t]` holds the score metric of task t trained alone, one value per seed; the
    tasks of `joint.scores` missing from `single` are reported without a competition figure."""
    tasks: dict[str, dict] = {}
    for t, joint_scores in joint.scores.items():
        entry: dict = {"joint": stats(joint_scores), "basic": stats(basic.scores[t])}
        if t in single:
            entry["single"] = stats(single[t])
            entry["competition"] = effect(joint_scores, single[t])
        entry["basic_gain"] = effect(basic.scores[t], joint_scores)
        tasks[t] = entry
    competing = [
        t
        for t, e in tasks.items()
        if "competition" in e and _beyond(e["competition"]["in_std"], -SIGNIFICANT_STD)
    ]
    gain = effect(basic.rewards, joint.rewards)
    return {
        "tasks": tasks,
        "reward": {"joint": stats(joint.rewards), "basic": stats(basic.rewards), "basic_gain": gain},
        "competing_tasks": competing,
        "basic_beats_joint": _beyond(gain["in_std"], SIGNIFICANT_STD),
        "verdict": verdict(competing, gain),
    }


def _beyond(z: float | None, threshold: float) -> bool:
    """z past `threshold` in its direction (below a negative one, above a positive one)."""
    if z is None:
        return False
    return z < threshold if threshold < 0 else z > threshold


def verdict(competing: Sequence[str], gain: Mapping[str, float | None]) -> str:
    z = gain["in_std"]
    units = "no seed noise measured" if z is None else f"{z:+.1f} std"
    comp = (
        f"Joint below Single by more than {SIGNIFICANT_STD:g} std on {len(competing)} task(s) "
        f"({', '.join(competing)})"
        if competing
        else f"no task where Joint is below Single by more than {SIGNIFICANT_STD:g} std"
    )
    basic = "beats" if _beyond(z, SIGNIFICANT_STD) else "does not beat"
    return f"{comp}; basic {basic} Joint ({gain['diff']:+.4f} reward, {units})"
