"""One home per rule: where a rule is applied in two places (Python and SQL, the storage and the
API schema), these tests fail as soon as the two drift apart."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from auxnas.controller.progress import COUNTS, count
from auxnas.controller.status import TRANSITIONS, SearchStatus, TrialStatus
from auxnas.controller.storage import TRIAL_KINDS, TRIAL_PHASES, InMemoryStorage, TrialRecord
from auxnas.db.models import Search, lease_expired, utcnow
from tests.service_support import db_url, storage, tiny_search_config  # noqa: F401

# --- statuses ----------------------------------------------------------------------------------


def _enum_of(doc: dict, ref_or_schema: dict) -> list[str]:
    schema = ref_or_schema
    while "$ref" in schema or "anyOf" in schema:
        if "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema["enum"]


def test_the_api_schema_lists_the_statuses_of_the_enums(tmp_path):
    from auxnas.api.app import create_app

    doc = create_app(f"sqlite:///{tmp_path / 'a.db'}").openapi()
    schemas = doc["components"]["schemas"]
    assert _enum_of(doc, schemas["SearchOut"]["properties"]["status"]) == [s.value for s in SearchStatus]
    assert _enum_of(doc, schemas["TrialOut"]["properties"]["status"]) == [s.value for s in TrialStatus]
    params = {
        (path, p["name"]): p["schema"]
        for path, item in doc["paths"].items()
        for op in item.values()
        for p in op.get("parameters", [])
    }
    assert _enum_of(doc, params[("/searches", "status")]) == [s.value for s in SearchStatus]
    assert _enum_of(doc, params[("/searches/{search_id}/trials", "status")]) == [s.value for s in TrialStatus]


def test_every_trial_status_is_in_the_lifecycle_and_every_search_status_is_stored(storage):  # noqa: F811
    assert set(TRANSITIONS) == set(TrialStatus)
    assert all(nexts <= set(TrialStatus) for nexts in TRANSITIONS.values())
    assert {s for s in TrialStatus if s.final} == {s for s, nexts in TRANSITIONS.items() if not nexts}
    sid = storage.create_search(tiny_search_config(), launched_by="cli", owner=None)
    for status in SearchStatus:
        storage.set_status(sid, status)
        assert storage.search_row(sid).status == status.value
    with pytest.raises(ValueError, match="unknown search status 'done'"):
        storage.set_status(sid, "done")
    with pytest.raises(ValueError, match="unknown search status 'done'"):
        InMemoryStorage().set_status(sid, "done")


# --- progress: the driver's counts and the SQL view's, over the same rows ------------------------


def _every_kind_of_row() -> list[TrialRecord]:
    combos = itertools.product(TrialStatus, TRIAL_KINDS, TRIAL_PHASES)
    return [
        TrialRecord(index=i, kind=kind, status=status, phase=phase, tokens=None if kind == "joint" else [0])
        for i, (status, kind, phase) in enumerate(combos)
    ]


def test_progress_counts_the_same_rows_in_python_and_in_sql(storage, tmp_path):  # noqa: F811
    from auxnas.controller.driver import SearchDriver

    rows = _every_kind_of_row()
    sid = storage.create_search(tiny_search_config())
    storage.add_trials(sid, rows)
    sql = storage.summary(sid).progress
    driver = SearchDriver(tiny_search_config(), InMemoryStorage(), 1, tmp_path)
    driver.trials = {t.index: t for t in rows}
    python = {"evaluated": driver.evaluated, "cached": driver.cached, "failed": driver.failed}
    assert python == {name: getattr(sql, name) for name in python}
    assert {name: count(name, rows) for name in COUNTS} == {name: getattr(sql, name) for name in COUNTS}
    # a failed calibration trial is not a failure of the search phase (the failure limit's count)
    assert sql.failed == len(TRIAL_KINDS) and count("failed", rows) == len(TRIAL_KINDS)


# --- lease expiry: the Python rule and its SQL form, over the same rows --------------------------


def test_lease_expiry_is_one_rule_in_python_and_in_sql(storage):  # noqa: F811
    now = utcnow()
    leases = [None, now - timedelta(seconds=5), now + timedelta(seconds=5)]
    expected = {}
    for status, lease in itertools.product(SearchStatus, leases):
        sid = storage.create_search(tiny_search_config())
        with storage.engine.begin() as conn:
            conn.execute(update(Search).where(Search.id == sid).values(status=status, lease_expires_at=lease))
        expected[sid] = lease_expired(status, lease, now)
    with storage.engine.connect() as conn:
        in_sql = set(conn.execute(select(Search.id).where(Search.lease_expired(now))).scalars())
    assert in_sql == {sid for sid, dead in expected.items() if dead}
    assert len(in_sql) == 1  # running with a lease in the past, and nothing else
    with storage.sessions() as s:
        assert {row.id for row in s.scalars(select(Search)) if row.lease_expired(now)} == in_sql
