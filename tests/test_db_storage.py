"""SqlStorage against the controller's storage interface, migrations, and the derived views."""

from __future__ import annotations

import math
import threading
from datetime import timedelta

import pytest
from sqlalchemy import inspect, update

from auxnas.controller.storage import IterationRecord, SearchStorage, TrialRecord
from auxnas.db.engine import DatabaseError
from auxnas.db.migrate import current_revision, head_revision, migrate
from auxnas.db.models import Base, Search, utcnow
from auxnas.db.storage import LeaseLost, SqlStorage, UnknownSearch
from auxnas.search_space import SearchSpace, basic_genotype
from tests import service_support as support

db_url = support.db_url
storage = support.storage

SPACE = SearchSpace(num_inputs=2, tasks=("segmentation", "depth"))


def trial(index: int, kind: str = "candidate", status: str = "succeeded", reward: float | None = 0.5, **kw):
    g = basic_genotype(SPACE) if kind != "joint" else None
    return TrialRecord(
        index=index,
        kind=kind,
        status=status,
        tokens=list(g.tokens) if g else None,
        genotype=g.to_json() if g else None,
        genotype_hash=g.canonical_hash() if g else None,
        reward=reward,
        metrics={"segmentation": {"miou": 0.4}, "depth": {"delta1": 0.7}},
        **kw,
    )


def _without(t: TrialRecord, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in t.to_dict().items() if k not in keys}


def test_migrations_create_the_models_tables_and_are_idempotent(db_url):
    assert migrate(db_url) == head_revision()
    assert migrate(db_url) == head_revision()  # a second start changes nothing
    st = SqlStorage(db_url)
    try:
        assert current_revision(st.engine) == head_revision()
        tables = set(inspect(st.engine).get_table_names())
        assert {"searches", "trials", "iterations", "alembic_version"} <= tables
        # the migration and the models agree: autogenerate finds nothing to change
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with st.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        st.dispose()


def test_migrate_reports_an_unreachable_database_in_one_line():
    with pytest.raises(DatabaseError) as err:
        migrate("postgresql+psycopg2://nobody:secret@127.0.0.1:1/none")
    msg = str(err.value)
    assert "\n" not in msg and "127.0.0.1" in msg and "secret" not in msg


def test_trials_round_trip_every_field(storage):
    assert isinstance(storage, SearchStorage)
    sid = storage.create_search(support.tiny_search_config())
    t = trial(
        0,
        kind="basic",
        status="pruned",
        seconds=3.5,
        main_params=1000,
        aux_params=200,
        iteration=2,
        attempts=2,
        node={"id": "abc", "ip": "127.0.0.1"},
        per_seed=[{"seed": 0, "reward": 0.5}],
    )
    storage.add_trials(sid, [t])
    failed = trial(1, status="failed", reward=None, error={"type": "NaNLoss", "message": "loss is nan"})
    storage.add_trials(sid, [failed])
    got = storage.trials(sid)
    drop = ("created_at",)  # stamped by the storage
    assert [_without(g, drop) for g in got] == [_without(t, drop), _without(failed, drop)]
    assert all(g.created_at is not None for g in got)


def test_a_trial_index_is_stored_once_and_a_duplicate_changes_nothing(storage):
    sid = storage.create_search(support.tiny_search_config())
    storage.add_trials(sid, [trial(0, reward=0.4)])
    with pytest.raises(ValueError, match="trial 0 is already stored"):
        storage.add_trials(sid, [trial(0, reward=0.9)])
    assert [t.reward for t in storage.trials(sid)] == [0.4]


def test_non_finite_numbers_are_stored_as_null(storage):
    sid = storage.create_search(support.tiny_search_config())
    t = trial(0, reward=float("nan"))
    t.metrics = {"depth": {"abs_rel": float("inf"), "delta1": 0.5}}
    storage.add_trials(sid, [t])
    got = storage.trials(sid)[0]
    assert got.reward is None and got.metrics == {"depth": {"abs_rel": None, "delta1": 0.5}}


def test_iterations_status_and_checkpoint_dir(storage):
    sid = storage.create_search(support.tiny_search_config())
    it = IterationRecord(
        index=0, num_episodes=4, reward_mean=0.5, reward_max=0.7, stats={"entropy": 1.2}, seconds=2.0
    )
    storage.add_iteration(sid, it)
    assert storage.iterations(sid) == [it]
    storage.set_checkpoint_dir(sid, "/tmp/ckpt")
    storage.set_status(sid, "running")
    row = storage.search_row(sid)
    assert row.status == "running" and row.started_at is not None and row.checkpoint_dir == "/tmp/ckpt"
    storage.set_status(sid, "failed", "boom")
    row = storage.search_row(sid)
    assert (row.status, row.error) == ("failed", "boom") and row.finished_at >= row.started_at
    with pytest.raises(ValueError, match="unknown search status"):
        storage.set_status(sid, "paused")
    with pytest.raises(UnknownSearch):
        storage.set_status(sid + 100, "running")


def test_summary_progress_best_and_baselines_come_from_the_trial_rows(storage):
    sid = storage.create_search(support.tiny_search_config(search={"budget": 4}))
    storage.add_trials(sid, [trial(0, kind="joint", reward=0.9)])  # the joint baseline is never "best"
    storage.add_trials(sid, [trial(1, kind="basic", reward=0.4)])
    storage.add_trials(sid, [trial(2, reward=0.6)])
    storage.add_trials(sid, [trial(3, status="cached", reward=0.6)])
    storage.add_trials(sid, [trial(4, status="failed", reward=0.95, error={"type": "X", "message": "y"})])
    storage.add_trials(sid, [trial(5, status="pruned", reward=0.8)])  # a partial run's reward
    s = storage.summary(sid)
    assert (s.progress.evaluated, s.progress.cached, s.progress.failed, s.progress.trials) == (3, 1, 1, 6)
    assert s.progress.budget == 4 and s.progress.fraction == 0.75
    # not the cached copy, the failed trial or the early-stopped one
    assert s.best_reward == 0.6 and s.best_trial == 2
    assert s.baselines == {"joint": 0.9, "basic": 0.4}
    doc = storage.best_genotype_json(sid)
    assert doc["reward"] == 0.6 and doc["search"] == {"id": sid, "name": "tiny", "trial": 2}
    assert doc["tokens"] == list(basic_genotype(SPACE).tokens)
    assert storage.summary(sid + 1) is None


def test_best_is_none_without_a_scored_genotype(storage):
    sid = storage.create_search(support.tiny_search_config())
    storage.add_trials(sid, [trial(0, kind="joint", reward=0.5)])
    assert storage.best_genotype_json(sid) is None
    with pytest.raises(UnknownSearch):
        storage.best_genotype_json(sid + 1)


def test_list_is_newest_first_and_paginated(storage):
    ids = [storage.create_search(support.tiny_search_config(name=f"s{i}")) for i in range(5)]
    page, total = storage.list_searches(offset=1, limit=2)
    assert total == 5 and [s.id for s in page] == [ids[3], ids[2]]
    storage.request_cancel(ids[0])
    cancelled, total = storage.list_searches(status="cancelled")
    assert total == 1 and cancelled[0].id == ids[0]


def test_cancel_queued_at_once_running_by_flag_finished_unchanged(storage):
    queued = storage.create_search(support.tiny_search_config())
    assert storage.request_cancel(queued) == "cancelled"
    assert storage.search_row(queued).finished_at is not None

    running = storage.create_search(support.tiny_search_config(), owner="w1")
    assert not storage.cancel_requested(running)
    assert storage.request_cancel(running) == "running"
    assert storage.cancel_requested(running)

    done = storage.create_search(support.tiny_search_config(), owner="w1")
    storage.set_status(done, "succeeded")
    assert storage.request_cancel(done) == "succeeded"
    assert not storage.search_row(done).cancel_requested
    with pytest.raises(UnknownSearch):
        storage.request_cancel(10_000)


def test_cancel_of_a_search_whose_worker_died_ends_it_at_once(storage):
    sid = storage.create_search(support.tiny_search_config(), owner="dead-worker")
    with support_session(storage) as s:
        s.execute(
            update(Search).where(Search.id == sid).values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )
    assert storage.request_cancel(sid) == "cancelled"


def test_fenced_storage_writes_only_while_its_owner_holds_the_search(storage):
    sid = storage.create_search(support.tiny_search_config(), owner="w1")
    mine, theirs = storage.fenced("w1"), storage.fenced("w2")
    mine.add_trials(sid, [trial(0)])
    with pytest.raises(LeaseLost):
        theirs.add_trials(sid, [trial(1)])
    with pytest.raises(LeaseLost):
        theirs.set_status(sid, "failed", "not mine")
    assert theirs.cancel_requested(sid) and not mine.cancel_requested(sid)
    assert [t.index for t in storage.trials(sid)] == [0]
    assert storage.search_row(sid).status == "running"


def test_concurrent_writers_and_readers_lose_nothing(storage):
    sid = storage.create_search(support.tiny_search_config())
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            for i in range(start, 60, 4):
                storage.add_trials(sid, [trial(i, reward=i / 100)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def read() -> None:
        try:
            for _ in range(30):
                storage.summary(sid)
                storage.trial_page(sid, 0, 20)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)] + [
        threading.Thread(target=read) for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert [t.index for t in storage.trials(sid)] == list(range(60))
    assert math.isclose(storage.summary(sid).best_reward, 0.59)


def support_session(storage):
    from auxnas.db.engine import transaction

    return transaction(storage.sessions, write=True)


def test_a_plain_postgresql_url_uses_the_installed_driver_and_an_unknown_driver_is_one_line():
    from auxnas.db.engine import make_engine

    engine = make_engine("postgresql://auxnas@127.0.0.1:1/auxnas")  # no connection is made yet
    assert engine.url.drivername == "postgresql+psycopg2"
    engine.dispose()
    with pytest.raises(DatabaseError) as err:
        make_engine("postgresql+nosuchdriver://auxnas@127.0.0.1:1/auxnas")
    assert str(err.value).startswith("AUXNAS_DATABASE_URL: unsupported database") and "\n" not in str(
        err.value
    )
