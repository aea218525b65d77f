"""The trials endpoint writes its JSON directly from the stored JSON text; it must be exactly the
document the pydantic schema gives, for every kind of trial, on every backend."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from api.app import create_app
from api.schemas import TrialOut, TrialPage, trial_page_json
from controller.storage import TrialRecord
from search_space import SearchSpace, basic_genotype
from tests import service_support as support

db_url = support.db_url

SPACE = SearchSpace(num_inputs=2, tasks=("segmentation", "depth"))


def test_direct_trials_json_equals_the_schema(db_url):
    app = create_app(db_url, api_token="")
    storage = app.state.storage
    sid = storage.create_search(support.tiny_search_config())
    g = basic_genotype(SPACE)
    records = [
        TrialRecord(
            index=0, kind="joint", status="succeeded", reward=0.25, metrics={"depth": {"delta1": 0.5}}
        ),
        TrialRecord(
            index=1,
            kind="basic",
            status="succeeded",
            tokens=list(g.tokens),
            genotype=g.to_json(),
            genotype_hash=g.canonical_hash(),
            reward=1 / 3,
            metrics={"segmentation": {"miou": 0.1234567890123}, "depth": {"abs_err": float("nan")}},
            seconds=12.5,
            main_params=123456,
            aux_params=789,
        ),
        TrialRecord(
            index=2,
            kind="candidate",
            status="failed",
            tokens=list(g.tokens),
            genotype=g.to_json(),
            genotype_hash=g.canonical_hash(),
            error={"type": "NaNLoss", "message": 'loss is "nan" at step 3 \\ é'},
            iteration=0,
        ),
        TrialRecord(
            index=3,
            kind="candidate",
            status="cached",
            tokens=list(g.tokens),
            genotype=g.to_json(),
            genotype_hash=g.canonical_hash(),
            reward=1 / 3,
            cached=True,
            early_stopped=True,
            iteration=1,
        ),
    ]
    for r in records:
        storage.add_trial(sid, r)
    rows, total = storage.trial_page(sid, 0, 50)
    expected = TrialPage(items=[TrialOut.of(r) for r in rows], total=total, offset=0, limit=50)
    raw_rows, _ = storage.trial_page(sid, 0, 50, raw_json=True)
    direct = json.loads(trial_page_json(raw_rows, total, 0, 50))
    assert direct == json.loads(expected.model_dump_json())
    assert TrialPage.model_validate(direct) == expected
    with TestClient(app) as client:
        assert client.get(f"/searches/{sid}/trials").json() == direct
        page = client.get(f"/searches/{sid}/trials", params={"offset": 1, "limit": 2}).json()
        assert [t["index"] for t in page["items"]] == [1, 2] and page["total"] == 4
        assert client.get(f"/searches/{sid}/trials", params={"offset": 10}).json()["items"] == []
