"""Main-loss weighting strategies: `equal` (default), `uncertainty` (Kendall et al.), `dwa` (Liu et al.)."""

from __future__ import annotations

from auxnas.evaluator.weighting.base import Weighting
from auxnas.evaluator.weighting.dwa import DWAWeighting
from auxnas.evaluator.weighting.equal import EqualWeighting
from auxnas.evaluator.weighting.uncertainty import UncertaintyWeighting


def make_weighting(name: str, tasks: list[str], steps_per_epoch: int) -> Weighting:
    if name == "equal":
        return EqualWeighting(tasks)
    if name == "uncertainty":
        return UncertaintyWeighting(tasks)
    if name == "dwa":
        return DWAWeighting(tasks, steps_per_epoch)
    raise ValueError(f"train.weighting: unknown weighting {name!r}")


__all__ = ["DWAWeighting", "EqualWeighting", "UncertaintyWeighting", "Weighting", "make_weighting"]
