"""The live progress bar of `auxnas search` and `auxnas calibrate` (on stderr).

The bar counts the budget during the search phase, calibration trials while calibrating and
confirmation rows once the budget is spent; cached, failed, best reward, trainings and CPU time
ride along.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from auxnas.controller.config import SearchConfig
    from auxnas.controller.driver import SearchProgress


def progress_bar(
    config: SearchConfig, console: Console, calibrate_only: bool = False
) -> tuple[Progress, Callable[[SearchProgress], None]]:
    """The bar and the driver's `on_progress` callback that moves it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "cached {task.fields[cached]}  failed {task.fields[failed]}  best {task.fields[best]}  "
            "evaluations {task.fields[evaluations]}  cpu {task.fields[cpu]}"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task(
        "baselines", total=config.search.budget, cached=0, failed=0, best="-", evaluations=0, cpu="0 s"
    )

    def on_progress(p: SearchProgress) -> None:
        progress.update(task, **bar_fields(p, config.search.budget, calibrate_only))

    return progress, on_progress


def bar_fields(p: SearchProgress, budget: int, calibrate_only: bool = False) -> dict[str, Any]:
    """What the bar shows for the driver's progress `p`."""
    if p.phase == "calibration" or (calibrate_only and p.phase == "done"):  # spends no budget
        return {"completed": p.calibrated, "total": p.calibration_total, "description": "calibration"}
    counts = {"evaluations": p.evaluations, "cpu": f"{p.cpu_seconds:.0f} s", "cached": p.cached}
    if p.phase == "confirmation":  # the budget is spent: the bar counts confirmation rows
        return {
            "completed": p.confirmed,
            "total": p.confirmation_total,
            "description": "confirmation",
            **counts,
        }
    label = {"search": f"search it {p.iteration}", "racing": f"racing it {p.iteration}"}.get(p.phase, p.phase)
    return {
        "completed": p.evaluated,
        "total": budget,
        "description": label,
        "failed": p.failed,
        "best": f"{p.best_reward:.4f}" if p.best_reward is not None else "-",
        **counts,
    }
