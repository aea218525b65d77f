"""Which submitted trials Ray has started, so that a search can tell "running" from "waiting for
resources" (a task Ray holds back until a GPU is free).

    watch = StartWatch()                  # in the driver process, before submitting
    ref = submit(config, genotype)        # the task reports its start to the watch's board
    watch.poll([ref, ...])                # -> {ref: node} of the tasks that started since last poll
    watch.not_started([ref, ...])         # -> the refs still waiting for resources

The first thing a trial's Ray task does is a fire-and-forget call to a small actor (the board,
one per Ray job, on the driver's node, no CPU): under a millisecond in the task. The driver
asks the board only about refs it has not seen start yet, one actor round trip (about a
millisecond) per poll, none once every submitted trial is running. A board that cannot be
reached (its node died) counts as "everything started": the search then behaves as before.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("auxnas.evaluator")

BOARD_PREFIX = "auxnas-trial-starts-"
FORGET_AFTER_SECONDS = 3600.0  # a start nobody asked about (the trial finished first) is dropped

_board_name: str | None = None  # set in the driver process once a StartWatch exists
_boards: dict[str, Any] = {}  # in a Ray worker: board name -> actor handle
_keep: dict[str, Any] = {}  # in the driver process: the boards it created, alive while it lives


class _StartBoard:
    """The Ray actor: task id -> (node, when it started)."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[dict | None, float]] = {}
        self._pruned = time.monotonic()

    def started(self, task_id: str, node: dict | None) -> None:
        now = time.monotonic()
        self._started[task_id] = (node, now)
        if now - self._pruned > FORGET_AFTER_SECONDS:
            self._started = {k: v for k, v in self._started.items() if now - v[1] < FORGET_AFTER_SECONDS}
            self._pruned = now

    def take(self, task_ids: list[str]) -> dict[str, dict | None]:
        return {t: self._started.pop(t)[0] for t in task_ids if t in self._started}


class StartWatch:
    """The driver's side: creates (or joins) this Ray job's board and asks it about refs."""

    def __init__(self, timeout: float = 10.0) -> None:
        global _board_name
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.timeout = timeout
        self._seen: set[Any] = set()
        name = BOARD_PREFIX + ray.get_runtime_context().get_job_id()
        self._board = (
            ray.remote(num_cpus=0, max_restarts=0)(_StartBoard)
            .options(
                name=name,
                get_if_exists=True,
                # it lives and dies with the driver's node, never with a GPU node
                scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), soft=True
                ),
            )
            .remote()
        )
        ray.get(self._board.__ray_ready__.remote(), timeout=timeout)  # tasks find it from now on
        _board_name = name
        # Ray ends an actor once no handle refers to it; workers cache their handle by name, so
        # the board must outlive this watch and serve every later search of this process too
        kept = _keep.get(name)
        # keep the first handle (it owns the actor); one of another Ray session (Ray restarted in
        # this process, the job id reused) is dead: this handle, which just created the board, owns it
        if kept is None or kept._actor_id != self._board._actor_id:
            _keep[name] = self._board
        self.broken = False

    def poll(self, refs: list[Any]) -> dict[Any, dict | None]:
        """The refs among `refs` whose task started since the last poll, with its node."""
        import ray

        self._seen &= set(refs)
        unseen = [r for r in refs if r not in self._seen]
        if not unseen:
            return {}
        if self.broken:
            found = {r: None for r in unseen}
        else:
            by_task = {r.task_id().hex(): r for r in unseen}
            try:
                started = ray.get(self._board.take.remote(list(by_task)), timeout=self.timeout)
                found = {by_task[t]: node for t, node in started.items()}
            except Exception as e:  # noqa: BLE001 - no board: treat every trial as started
                log.warning("trial start board unreachable (%s): counting every trial as running", e)
                self.broken = True
                found = {r: None for r in unseen}
        self._seen.update(found)
        return found

    def not_started(self, refs: list[Any]) -> list[Any]:
        """The refs whose task Ray has not started: waiting for resources."""
        self.poll(refs)
        return [r for r in refs if r not in self._seen]


def board_name() -> str | None:
    """The board tasks submitted from this process report to (None: no watch, report nothing)."""
    return _board_name


def report_start(name: str | None) -> None:
    """In the Ray task, first thing: tell the board this task started (never raises)."""
    if name is None:
        return
    try:
        import ray

        board = _boards.get(name)
        if board is None:
            board = _boards[name] = ray.get_actor(name)
        ctx = ray.get_runtime_context()
        node = {"id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address()}
        board.started.remote(ctx.get_task_id(), node)
    except Exception:  # noqa: BLE001 - the start is information, never a reason to fail a trial
        _boards.pop(name, None)
