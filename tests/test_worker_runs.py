"""The in-process worker around the driver: bad stored configs, searches whose workers keep
dying, and a worker that loses its lease mid-search stopping without touching the search."""

from __future__ import annotations

import threading

from sqlalchemy import update

from auxnas.db.engine import transaction
from auxnas.db.leases import claim_next
from auxnas.db.models import Search
from auxnas.db.storage import SqlStorage
from auxnas.worker.loop import Worker
from tests import service_support as support
from tests.test_worker_claim import expire

db_url = support.db_url
storage = support.storage


def make_worker(storage: SqlStorage, tmp_path, evaluate_fn=support.fast_evaluate, **kw) -> Worker:
    return Worker(
        storage, data_dir=tmp_path / "runs", lease_seconds=2, poll_seconds=0.1, evaluate_fn=evaluate_fn, **kw
    )


def test_a_stored_config_that_no_longer_validates_fails_the_search(ray_session, storage, tmp_path):
    sid = storage.create_search(support.tiny_search_config())
    with transaction(storage.sessions, write=True) as s:
        s.execute(update(Search).where(Search.id == sid).values(config={"train": {"steps": -1}}))
    assert make_worker(storage, tmp_path).run_forever(once=True) == 1
    row = storage.search_row(sid)
    assert row.status == "failed" and row.error.startswith("stored config is invalid: train.steps")


def test_a_search_whose_workers_keep_dying_is_given_up(ray_session, storage, tmp_path):
    sid = storage.create_search(support.tiny_search_config())
    for k in range(3):  # three workers claimed it and died
        assert claim_next(storage, f"dead{k}", 30).search_id == sid
        expire(storage, sid)
    make_worker(storage, tmp_path, max_attempts=3).run_forever(once=True)
    row = storage.search_row(sid)
    assert row.status == "failed" and "3 workers died" in row.error
    assert storage.trials(sid) == []


def test_a_worker_that_loses_its_lease_stops_and_writes_nothing_more(ray_session, storage, tmp_path):
    sid = storage.create_search(support.tiny_search_config(search={"parallel_trials": 1, "budget": 50}))
    worker = make_worker(storage, tmp_path, evaluate_fn=support.slow_evaluate, worker_id="w1")
    claim = claim_next(storage, "w1", 2)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(worker.run_claim(claim)))
    thread.start()
    support.wait_until(lambda: len(storage.trials(sid)) >= 2, 60, what="trials from the first worker")
    # another worker takes the search over, as if w1 had stalled past its lease
    expire(storage, sid, seconds_ago=1)
    taken = claim_next(storage, "w2", 60)
    assert taken is not None and taken.search_id == sid and taken.resume
    count_at_takeover = len(storage.trials(sid))
    thread.join(20)
    assert not thread.is_alive() and result == [None]  # None: stopped because the lease was lost
    row = storage.search_row(sid)
    assert (row.status, row.worker_id, row.error) == ("running", "w2", None)
    assert len(storage.trials(sid)) == count_at_takeover  # fenced: nothing written after the takeover
