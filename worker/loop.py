"""The worker: claim a search from the database, hold its lease, run it, repeat.

One search at a time per worker. While it runs, a heartbeat thread renews the lease; if a
renewal finds the search taken by someone else (this worker stalled past its lease and another
one resumed the search), the worker stops at once: its storage is fenced, so it cannot write a
trial or a status to that search any more. A worker that dies simply stops renewing; once the
lease expires the next worker claims the search and resumes it from its trials and checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from auxnas.controller.status import SearchStatus
from auxnas.db.leases import Claim, claim_next, renew_lease
from auxnas.db.models import utcnow
from auxnas.db.storage import LeaseLost, SqlStorage, UnknownSearch
from auxnas.evaluator import defaults
from auxnas.evaluator.result import one_line

log = logging.getLogger("auxnas.worker")

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_POLL_SECONDS = 2.0
# a search whose workers keep dying (say, killed by the OS for memory) is not claimed forever
DEFAULT_MAX_ATTEMPTS = 5


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Heartbeat(threading.Thread):
    """Renews the lease every `lease_seconds / 3`; marks the storage's lease lost when it can't."""

    def __init__(self, storage: SqlStorage, search_id: int, lease_seconds: float, until: datetime) -> None:
        super().__init__(name=f"heartbeat-{search_id}", daemon=True)
        self.storage, self.search_id, self.lease_seconds = storage, search_id, lease_seconds
        self.until = until
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        while not self.stopped.wait(interval):
            try:
                until = renew_lease(self.storage, self.search_id, self.storage.owner, self.lease_seconds)
            except Exception as e:  # noqa: BLE001 - a database hiccup: try again next beat
                log.warning("search %s: lease renewal failed: %s", self.search_id, one_line(e))
                if utcnow() < self.until:
                    continue
                until = None  # the lease ran out while the database was unreachable
            if until is None:
                if self._ended_under_us():
                    return  # the driver recorded the final status; nothing left to guard
                log.error("search %s: lost the lease; stopping work on it", self.search_id)
                self.storage.lease_lost.set()
                return
            self.until = until

    def _ended_under_us(self) -> bool:
        try:
            row = self.storage.search_row(self.search_id)
        except Exception:  # noqa: BLE001 - cannot tell: treat the lease as lost
            return False
        return row is not None and row.worker_id == self.storage.owner and row.status != SearchStatus.RUNNING

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class Worker:
    def __init__(
        self,
        storage: SqlStorage,
        *,
        data_dir: str | Path | None = None,
        worker_id: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        evaluate_fn: Callable[..., Any] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.storage = storage
        self.max_attempts = max_attempts
        self.data_dir = Path(data_dir).resolve() if data_dir else defaults.data_dir()
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.evaluate_fn = evaluate_fn
        self.stop_requested = threading.Event()

    def run_forever(self, *, once: bool = False, max_searches: int | None = None) -> int:
        """Claim and run searches until stopped; `once`: return when nothing is queued.
        Returns how many searches this worker ran."""
        ran = 0
        log.info("worker %s polling for searches (lease %.0f s)", self.worker_id, self.lease_seconds)
        while not self.stop_requested.is_set():
            try:
                claim = claim_next(self.storage, self.worker_id, self.lease_seconds)
            except OperationalError as e:
                log.warning("cannot claim (database unavailable): %s", one_line(e))
                claim = None
            if claim is None:
                if once:
                    break
                self.stop_requested.wait(self.poll_seconds)
                continue
            self.run_claim(claim)
            ran += 1
            if max_searches is not None and ran >= max_searches:
                break
        return ran

    def run_claim(self, claim: Claim) -> str | None:
        """Run one claimed search to its end; returns its final status (None if the lease was lost)."""
        sid = claim.search_id
        fenced = self.storage.fenced(self.worker_id)
        heartbeat = Heartbeat(fenced, sid, self.lease_seconds, claim.lease_expires_at)
        heartbeat.start()
        verb = "resuming" if claim.resume else "starting"
        log.info("search %s: %s (attempt %d)", sid, verb, claim.attempts)
        try:
            status = self._run(fenced, claim)
            log.info("search %s: %s", sid, status)
            return status
        except LeaseLost as e:
            log.error("search %s: stopped, lease lost: %s", sid, e)
            return None
        except BaseException:
            # interrupted (SIGTERM, Ctrl-C): hand the search back so the next worker resumes it now
            try:
                self.storage.expire_lease_now(sid, self.worker_id)
                log.warning("search %s: handed back for another worker to resume", sid)
            except Exception as e:  # noqa: BLE001
                log.error("search %s: could not hand it back (%s); its lease will expire", sid, one_line(e))
            raise
        finally:
            heartbeat.stop()

    def _run(self, fenced: SqlStorage, claim: Claim) -> str:
        from auxnas.controller.config import SearchConfig

        sid = claim.search_id
        row = self.storage.search_row(sid)
        if row is None:
            raise UnknownSearch(sid)
        if claim.attempts > self.max_attempts:
            return self._fail(
                fenced, sid, f"gave up: {claim.attempts - 1} workers died while running this search"
            )
        try:
            config = SearchConfig.model_validate(row.config)
        except ValidationError as e:
            from auxnas.evaluator.config import describe_validation_error

            return self._fail(fenced, sid, f"stored config is invalid: {describe_validation_error(e)}")
        if row.launched_by == "api":
            # what a REST caller submitted runs only while the operator still allows it
            from auxnas.evaluator.policy import PolicyError, confine_paths

            try:
                config = confine_paths(config, self.data_dir)
            except PolicyError as e:
                return self._fail(fenced, sid, f"refused by this worker's policy: {e}")
        checkpoint_dir = (
            Path(row.checkpoint_dir) if row.checkpoint_dir else defaults.run_dir(self.data_dir, sid)
        )
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        try:
            from auxnas.controller.driver import SearchDriver

            driver = SearchDriver(config, fenced, sid, checkpoint_dir, evaluate_fn=self.evaluate_fn)
            outcome = driver.run(resume=claim.resume)
        except LeaseLost:
            raise
        except Exception as e:
            if fenced.lease_lost.is_set():
                raise LeaseLost(f"search {sid}: {type(e).__name__} after the lease was lost") from None
            log.exception("search %s: the search failed", sid)
            return self._fail(fenced, sid, f"{type(e).__name__}: {one_line(e)}")
        if fenced.lease_lost.is_set():
            raise LeaseLost(f"search {sid} was taken over while running")
        after = self.storage.search_row(sid)
        if after is not None and after.status == SearchStatus.RUNNING:
            # the driver ended without recording its final status: record what it returned
            fenced.set_status(sid, outcome.status, getattr(outcome, "error", None))
            return outcome.status
        return after.status if after is not None else outcome.status

    def _fail(self, fenced: SqlStorage, sid: int, error: str) -> str:
        fenced.set_status(sid, SearchStatus.FAILED, error)
        return SearchStatus.FAILED
