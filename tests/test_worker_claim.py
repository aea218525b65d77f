"""Claims and leases: oldest first, expired leases resumed, never two owners, heartbeats."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from auxnas.db.engine import transaction
from auxnas.db.leases import claim_next, renew_lease
from auxnas.db.models import Search, utcnow
from auxnas.db.storage import SqlStorage
from auxnas.worker.loop import Heartbeat
from tests import service_support as support

db_url = support.db_url
storage = support.storage


def expire(storage: SqlStorage, sid: int, seconds_ago: float = 5) -> None:
    with transaction(storage.sessions, write=True) as s:
        s.execute(
            update(Search)
            .where(Search.id == sid)
            .values(lease_expires_at=utcnow() - timedelta(seconds=seconds_ago))
        )


def test_claims_take_the_oldest_queued_search_once(storage):
    a = storage.create_search(support.tiny_search_config(name="a"))
    b = storage.create_search(support.tiny_search_config(name="b"))
    first = claim_next(storage, "w1", 30)
    second = claim_next(storage, "w2", 30)
    assert (first.search_id, second.search_id) == (a, b)
    assert not first.resume and first.attempts == 1
    assert claim_next(storage, "w3", 30) is None
    row = storage.search_row(a)
    assert row.status == "running" and row.worker_id == "w1" and row.started_at is not None
    assert row.lease_expires_at > utcnow() + timedelta(seconds=25)


def test_a_live_lease_is_never_taken_an_expired_one_is_resumed(storage):
    sid = storage.create_search(support.tiny_search_config())
    assert claim_next(storage, "w1", 30).search_id == sid
    assert claim_next(storage, "w2", 30) is None
    expire(storage, sid)
    again = claim_next(storage, "w2", 30)
    assert again.search_id == sid and again.resume and again.attempts == 2
    assert storage.search_row(sid).worker_id == "w2"
    # the first worker's heartbeat now fails, and its fenced storage refuses to write
    assert renew_lease(storage, sid, "w1", 30) is None
    assert renew_lease(storage, sid, "w2", 30) is not None
    assert storage.fenced("w1").cancel_requested(sid)


def test_a_cli_search_is_claimed_only_once_its_lease_expired(storage):
    sid = storage.create_search(support.tiny_search_config(), launched_by="cli", owner="cli:host:1")
    assert claim_next(storage, "w1", 30) is None  # its `auxnas search` holds a live lease
    expire(storage, sid)  # that process died: a worker resumes the search
    claim = claim_next(storage, "w1", 30)
    assert claim is not None and claim.search_id == sid and claim.resume


def test_a_cancelled_search_whose_worker_died_is_ended_not_resumed(storage):
    sid = storage.create_search(support.tiny_search_config())
    claim_next(storage, "w1", 30)
    with transaction(storage.sessions, write=True) as s:
        s.execute(update(Search).where(Search.id == sid).values(cancel_requested=True))
    expire(storage, sid)
    assert claim_next(storage, "w2", 30) is None
    row = storage.search_row(sid)
    assert row.status == "cancelled" and row.finished_at is not None


def race_for_claims(stores: list[SqlStorage]) -> list[tuple[str, object]]:
    """Every store claims at the same moment from its own thread; returns the winners."""
    barrier = threading.Barrier(len(stores))
    wins: list[tuple[str, object]] = []

    def race(k: int, st: SqlStorage) -> None:
        barrier.wait()
        c = claim_next(st, f"w{k}", 30)
        if c is not None:
            wins.append((f"w{k}", c))

    threads = [threading.Thread(target=race, args=(k, st)) for k, st in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


def test_concurrent_claimers_on_one_search_have_exactly_one_winner(db_url):
    """Eight workers, each with its own engine (as separate processes would), race for one search."""
    from auxnas.db.migrate import migrate

    migrate(db_url)
    stores = [SqlStorage(db_url) for _ in range(8)]
    try:
        for round_ in range(3):
            sid = stores[0].create_search(support.tiny_search_config(name=f"r{round_}"))
            wins = race_for_claims(stores)
            assert [c.search_id for _, c in wins] == [sid]
            assert stores[0].search_row(sid).worker_id == wins[0][0]
            assert stores[0].search_row(sid).attempts == 1
    finally:
        for st in stores:
            st.dispose()


def test_heartbeat_renews_and_notices_a_lost_lease(storage):
    sid = storage.create_search(support.tiny_search_config())
    claim = claim_next(storage, "w1", 3)
    fenced = storage.fenced("w1")
    hb = Heartbeat(fenced, sid, 3, claim.lease_expires_at)
    hb.start()
    try:
        support.wait_until(
            lambda: storage.search_row(sid).lease_expires_at > claim.lease_expires_at,
            15,
            what="the heartbeat to extend the lease",
        )
        assert storage.search_row(sid).heartbeat_at > claim.lease_expires_at - timedelta(seconds=3)
        assert not fenced.lease_lost.is_set()
        expire(storage, sid, seconds_ago=1)
        taken = claim_next(storage, "w2", 30)  # as if w1 had stalled past its lease
        assert taken is not None and taken.search_id == sid
        support.wait_until(fenced.lease_lost.is_set, 15, what="the heartbeat to notice")
        assert fenced.cancel_requested(sid)
        assert storage.search_row(sid).worker_id == "w2"
    finally:
        hb.stop()
