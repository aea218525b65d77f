"""The trial state machine, in both storages, and what the driver does with it: resume without
replays, system failures re-run, searches that cannot succeed end failed."""

from __future__ import annotations

import functools
import itertools

import pytest

from auxnas.controller.driver import SearchDriver
from auxnas.controller.status import TRANSITIONS, TrialStatus
from auxnas.controller.storage import InMemoryStorage, InvalidTransition, TrialRecord
from auxnas.evaluator import testing as fakes
from tests.service_support import db_url, storage, tiny_search_config  # noqa: F401

ALLOWED = [(a, b) for a, nexts in TRANSITIONS.items() for b in nexts]
FORBIDDEN = [(a, b) for a, b in itertools.product(TrialStatus, TrialStatus) if (a, b) not in ALLOWED]


def _new_search(store) -> int:
    if isinstance(store, InMemoryStorage):
        return 1
    return store.create_search(tiny_search_config())


def _reach(store, sid: int, status: str) -> None:
    """Trial 0 of `sid`, brought to `status` through allowed transitions."""
    path = {"waiting": [], "running": ["running"], "cached": ["cached"]}.get(status, ["running", status])
    store.add_trials(sid, [TrialRecord(index=0, kind="candidate", status="waiting", tokens=[0])])
    for step in path:
        store.move_trial(sid, 0, step)


@pytest.fixture(params=["memory", "sqlite"])
def any_storage(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStorage()
        return
    from auxnas.db.migrate import migrate
    from auxnas.db.storage import SqlStorage

    st = SqlStorage(f"sqlite:///{tmp_path / 'auxnas.db'}")
    migrate(engine=st.engine)
    yield st
    st.dispose()


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_allowed_transition_moves_and_stamps(any_storage, old, new):
    sid = _new_search(any_storage)
    _reach(any_storage, sid, old)
    before = any_storage.trials(sid)[0]
    after = any_storage.move_trial(sid, 0, new, reward=0.5 if new == "succeeded" else None)
    assert after.status == new == any_storage.trials(sid)[0].status
    assert after.attempts == before.attempts + (new == "running")
    assert (after.started_at is not None) == (new == "running" or (old == "running" and new != "waiting"))
    assert (after.finished_at is not None) == after.final


@pytest.mark.parametrize(("old", "new"), FORBIDDEN, ids=[f"{a}->{b}" for a, b in FORBIDDEN])
def test_forbidden_transition_is_refused_and_changes_nothing(old, new):
    store = InMemoryStorage()
    _reach(store, 1, old)
    before = store.trials(1)[0]
    with pytest.raises(InvalidTransition, match=f"from '{old}' to '{new}'"):
        store.move_trial(1, 0, new)
    assert store.trials(1)[0] == before


def test_sql_storage_refuses_a_forbidden_transition(storage):  # noqa: F811
    sid = _new_search(storage)
    _reach(storage, sid, "succeeded")
    with pytest.raises(InvalidTransition):
        storage.move_trial(sid, 0, "running")
    assert storage.trials(sid)[0].status == "succeeded"


class Killed(BaseException):
    pass


class KillingStorage(InMemoryStorage):
    """Raises Killed at the n-th call of one method, before (or after) it takes effect."""

    def __init__(self, method: str, nth: int, after: bool = False) -> None:
        super().__init__()
        self.method, self.nth, self.after, self.calls = method, nth, after, 0

    def add_trials(self, search_id, trials):
        if self.method == "add_trials" and not self.after:
            self.calls += 1
            if self.calls == self.nth:
                self.method = ""
                raise Killed()
        super().add_trials(search_id, trials)

    def move_trial(self, search_id, index, status, **result):
        out = super().move_trial(search_id, index, status, **result)
        if self.method == "move_trial" and status != "running":
            self.calls += 1
            if self.calls == self.nth:
                self.method = ""
                raise Killed()
        return out

    def add_iteration(self, search_id, it):
        super().add_iteration(search_id, it)
        if self.method == "add_iteration":
            self.calls += 1
            if self.calls == self.nth:
                self.method = ""
                raise Killed()


def _rows(store: InMemoryStorage) -> list[tuple]:
    return [(t.index, t.kind, t.status, t.tokens, t.reward, t.iteration) for t in store.trials(1)]


def _iterations(store: InMemoryStorage) -> list[tuple]:
    return [(it.index, it.num_episodes, it.reward_mean, it.reward_max) for it in store.iterations(1)]


@functools.cache
def _uninterrupted(strategy: str, root: str) -> InMemoryStorage:
    """One uninterrupted run per strategy, shared by the kill points."""
    whole = InMemoryStorage()
    config = _resume_config(strategy)
    outcome = SearchDriver(
        config, whole, 1, f"{root}/whole-{strategy}", evaluate_fn=fakes.hashed_reward
    ).run()
    assert outcome.status == "succeeded", outcome.error
    return whole


def _resume_config(strategy: str):
    return tiny_search_config(
        search={"strategy": strategy, "budget": 8, "parallel_trials": 1},
        controller={"episodes_per_update": 2, "hidden_size": 8, "embedding_size": 8},
    )


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("strategy", ["ppo", "random", "evolution"])
@pytest.mark.parametrize(
    ("method", "nth"),
    [("add_trials", 3), ("move_trial", 5), ("add_iteration", 2)],
    ids=["before-the-trial-writes", "during-the-trial-writes", "after-the-trial-writes"],
)
def test_resumed_search_has_the_rows_of_an_uninterrupted_one(tmp_path_factory, strategy, method, nth):
    config = _resume_config(strategy)
    whole = _uninterrupted(strategy, str(tmp_path_factory.getbasetemp()))
    tmp_path = tmp_path_factory.mktemp(f"cut-{strategy}")

    store = KillingStorage(method, nth)
    with pytest.raises(Killed):
        SearchDriver(config, store, 1, tmp_path / "cut", evaluate_fn=fakes.hashed_reward).run()
    resumed = SearchDriver(config, store, 1, tmp_path / "cut", evaluate_fn=fakes.hashed_reward).run(
        resume=True
    )
    assert resumed.status == "succeeded", resumed.error
    assert _rows(store) == _rows(whole)
    assert _iterations(store) == _iterations(whole)


@pytest.mark.usefixtures("ray_session")
def test_a_worker_killed_mid_trial_costs_no_trial(tmp_path):
    config = tiny_search_config(search={"budget": 4, "parallel_trials": 2, "max_failed_trials": 0})
    store = InMemoryStorage()
    fn = functools.partial(fakes.crashing_once, marker_dir=str(tmp_path))
    outcome = SearchDriver(config, store, 1, tmp_path / "ck", evaluate_fn=fn).run()
    assert outcome.status == "succeeded", outcome.error
    candidates = [t for t in store.trials(1) if t.kind == "candidate" and t.status != "cached"]
    assert len(candidates) == 4 and outcome.evaluated == 4 and outcome.failed == 0
    assert {t.status for t in candidates} <= {"succeeded", "pruned"}
    assert {t.attempts for t in candidates} == {2}  # first attempt lost its worker, second ran
    assert all(t.error is None and t.node and t.node["id"] for t in candidates)


@pytest.mark.usefixtures("ray_session")
def test_a_search_whose_joint_fails_ends_failed_with_the_reason(tmp_path):
    store = InMemoryStorage()
    outcome = SearchDriver(tiny_search_config(), store, 1, tmp_path, evaluate_fn=fakes.failing_joint).run()
    assert outcome.status == "failed"
    assert outcome.error.startswith("the Joint baseline failed (ValueError: dataset returned no images)")
    assert store.status[1] == ("failed", outcome.error)
    assert not [t for t in store.trials(1) if t.kind == "candidate"]


@pytest.mark.usefixtures("ray_session")
def test_a_search_in_which_no_candidate_succeeded_ends_failed(tmp_path):
    config = tiny_search_config(search={"budget": 4, "max_failed_trials": 10})
    store = InMemoryStorage()
    outcome = SearchDriver(config, store, 1, tmp_path, evaluate_fn=fakes.failing_candidates).run()
    assert outcome.status == "failed"
    assert outcome.error.startswith("no candidate succeeded (4 failed; last error: RuntimeError: loss is NaN")
