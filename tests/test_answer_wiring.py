"""The answer protocol wired into the search driver, on fake evaluators with known truth: paired
rewards at every seed, racing by its rule, confirmation on fresh seeds, the stored answer, resume
in the middle of confirmation, and data where no module helps."""

from __future__ import annotations

import functools
import statistics
from collections import Counter

import pytest

from auxnas.controller import racing
from auxnas.controller.config import SearchConfig
from auxnas.controller.driver import SearchDriver
from auxnas.controller.storage import InMemoryStorage
from auxnas.evaluator import testing as fakes
from auxnas.evaluator.config import ConfigError, parse_config
from auxnas.search_space import parse_genotype

pytestmark = pytest.mark.usefixtures("ray_session")

RUNGS = [1, 3]


def _config(budget: int = 12, seeds: int = 4, finalists: int = 2, **search) -> SearchConfig:
    return SearchConfig(
        name="answer",
        tasks=["seg", "depth"],
        model={"num_aux_inputs": 2},
        search={
            "strategy": "random",
            "parallel_trials": 2,
            "budget": budget,
            "racing": {"rungs": RUNGS, "promote_fraction": 0.25},
            "confirm": {"finalists": finalists, "seeds": seeds},
            **search,
        },
        controller={"episodes_per_update": 4},
    )


def _run(config, fn, storage=None, sid=1, tmp=None, resume=False):
    storage = storage or InMemoryStorage()
    outcome = SearchDriver(config, storage, sid, tmp / "ck", evaluate_fn=fn).run(resume=resume)
    return outcome, storage


def _seeds(trials, phases, kind=None):
    return {t.seed for t in trials if t.phase in phases and (kind is None or t.kind == kind)}


def _replayed_promotions(trials) -> set[str]:
    """The ASHA rule replayed iteration by iteration from the first-seed rows alone."""
    joint = next(t.reward for t in trials if t.kind == "joint" and t.phase == "search")
    first = [t for t in trials if t.kind == "candidate" and t.phase == "search" and t.status == "succeeded"]
    promoted: dict[int, set[str]] = {0: set()}
    for k in sorted({t.iteration for t in first}):
        gains = {t.genotype_hash: [t.reward - joint] for t in first if t.iteration <= k}
        for p in racing.promotions(gains, promoted, RUNGS, 0.25):
            promoted[0].add(p.key)
    gains = {t.genotype_hash: [t.reward - joint] for t in first}
    for p in racing.final_promotions(gains, promoted, RUNGS, 0.25):
        promoted[0].add(p.key)
    return promoted[0]


def test_a_search_races_confirms_on_fresh_seeds_and_answers(tmp_path):
    config = _config()
    outcome, storage = _run(config, fakes.some_gain, tmp=tmp_path)
    assert outcome.status == "succeeded", outcome.error
    trials = storage.trials(1)

    # Joint is scored at every training seed a candidate uses, in its group of phases
    search_seeds = _seeds(trials, ("search", "racing"))
    assert search_seeds == {0, 1, 2}
    assert _seeds(trials, ("search", "racing"), "joint") == search_seeds
    confirm_seeds = _seeds(trials, ("confirmation",))
    assert len(confirm_seeds) == 4 and not confirm_seeds & search_seeds
    assert _seeds(trials, ("confirmation",), "joint") == confirm_seeds

    # racing promoted exactly what the rule promotes, each to 3 seeds, and the budget counts candidates
    raced = Counter(t.genotype_hash for t in trials if t.phase == "racing" and t.kind == "candidate")
    assert set(raced) == _replayed_promotions(trials) and set(raced.values()) == {2}
    assert outcome.evaluated == 12
    assert outcome.evaluations == sum(1 for t in trials if t.status in ("succeeded", "failed", "pruned"))
    assert outcome.evaluations == 2 + 12 + 2 * len(raced) + 2 + (2 + 2) * 4

    # confirmation: the racing finalists, basic and Joint on each fresh seed
    answer = outcome.answer
    assert storage.answers[1] == answer
    confirmed = Counter((t.kind, t.genotype_hash) for t in trials if t.phase == "confirmation")
    assert set(confirmed.values()) == {4} and len(confirmed) == 2 + 2
    finalists = [answer["modules"][k]["genotype_hash"] for k in answer["finalists"]]
    assert {h for kind, h in confirmed if kind == "candidate"} == set(finalists)

    # half the genotypes help by 4 noise-std: one of them is recommended, with figures that agree
    assert answer["recommended"] and answer["confirmed"]
    chosen = answer["modules"][answer["module"]]
    genotype = parse_genotype(trials[chosen["trial"]].genotype)
    assert genotype.canonical_hash() == chosen["genotype_hash"]
    assert fakes.true_gain(genotype, 0.5, 4.0) > 0
    assert answer["over_joint"]["adj_lower"] > 0
    assert answer["verdict"].startswith(f"use {answer['module']}: +")


def test_the_controller_learns_from_paired_gains_at_the_first_seed(tmp_path):
    config = _config(budget=8, seeds=0)
    storage = InMemoryStorage()
    outcome, _ = _run(config, fakes.some_gain, storage, tmp=tmp_path)
    assert outcome.status == "succeeded", outcome.error
    trials = storage.trials(1)
    joint = next(t.reward for t in trials if t.kind == "joint" and t.phase == "search")
    for it in storage.iterations(1):
        rows = [t for t in trials if t.iteration == it.index and t.phase == "search"]
        assert it.reward_mean == pytest.approx(statistics.fmean(t.reward - joint for t in rows))


def test_no_module_helps_is_not_recommended(tmp_path):
    outcome, storage = _run(_config(budget=16, seeds=5, finalists=3), fakes.no_gain, tmp=tmp_path)
    assert outcome.status == "succeeded", outcome.error
    answer = outcome.answer
    assert not answer["recommended"] and answer["module"] is None and answer["confirmed"]
    assert answer["verdict"].startswith("no module beats Joint on 5 fresh seeds (")
    assert answer["verdict"].endswith("auxiliary learning is not recommended here")


def test_without_confirmation_the_answer_says_it_is_unconfirmed(tmp_path):
    outcome, storage = _run(_config(seeds=0), fakes.some_gain, tmp=tmp_path)
    assert outcome.status == "succeeded", outcome.error
    trials = storage.trials(1)
    assert not any(t.phase == "confirmation" for t in trials)
    answer = outcome.answer
    assert not answer["recommended"] and not answer["confirmed"]
    assert answer["verdict"].startswith("unconfirmed (confirm_seeds: 0): best candidate ")
    assert answer["verdict"].endswith("not a recommendation")
    assert answer["quoted"] in answer["modules"]


class CrashingStorage(InMemoryStorage):
    """Raises (as a dying process would stop) when the `after`-th confirmation result is stored."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.stored = after, 0

    def move_trial(self, search_id, index, status, **result):
        trial = self.trials(search_id)[index]
        if self.after and trial.phase == "confirmation" and status == "succeeded":
            self.stored += 1
            if self.stored == self.after:
                self.after = 0
                raise RuntimeError("the process died")
        return super().move_trial(search_id, index, status, **result)


def test_a_crash_in_confirmation_resumes_without_training_finished_rows_again(tmp_path):
    log = tmp_path / "evaluated.txt"
    fn = functools.partial(fakes.recording_seeds, log_path=str(log))
    config = _config(budget=8, seeds=3, parallel_trials=1)
    storage = CrashingStorage(after=5)
    first, _ = _run(config, fn, storage, tmp=tmp_path)
    assert first.status == "failed" and "the process died" in first.error
    done_before = {
        (t.genotype_hash or "joint", t.seed)
        for t in storage.trials(1)
        if t.phase == "confirmation" and t.final
    }
    assert len(done_before) == 4

    second, _ = _run(config, fn, storage, tmp=tmp_path, resume=True)
    assert second.status == "succeeded", second.error
    runs = Counter(tuple(line.rsplit(":", 1)) for line in log.read_text().split())
    for key, seed in done_before:
        assert runs[key, str(seed)] == 1
    confirmation = [t for t in storage.trials(1) if t.phase == "confirmation"]
    assert len(confirmation) == (2 + 2) * 3 and all(t.status == "succeeded" for t in confirmation)
    assert storage.answers[1]["confirmed"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"racing": {"rungs": [2, 3]}}, "search.racing.rungs: Value error, must start at 1"),
        ({"racing": {"rungs": [1, 3, 3]}}, "search.racing.rungs: Value error, must be increasing"),
        (
            {"racing": {"promote_fraction": 1.0}},
            "search.racing.promote_fraction: Input should be less than 1",
        ),
        ({"confirm": {"seeds": 1}}, "search.confirm.seeds: Value error, must be 0 (skip confirmation)"),
        (
            {"confirm": {"finalists": 0}},
            "search.confirm.finalists: Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_racing_and_confirmation_settings_name_the_field(search, expected):
    with pytest.raises(ConfigError) as err:
        parse_config({"search": search}, SearchConfig)
    assert str(err.value).startswith(f"config: {expected}")
    assert "\n" not in str(err.value)
