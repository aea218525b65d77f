"""The surrogate evaluator: reading rewards, the seed-adjusted means, the fit and its held-out
report, determinism per seed, and one clear line for every bad input."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.plugins import EVALUATORS, load_callable
from auxnas.evaluator.surrogate import ENV, SurrogateError, evaluate, fit_document, load_surrogate
from auxnas.evaluator.surrogate_data import RewardTableError, read_rewards, summarise
from auxnas.search_space import SearchSpace, basic_genotype, sample_genotype
from tests.service_support import db_url, storage  # noqa: F401

SPACE = SearchSpace(num_inputs=2, tasks=("segmentation", "depth"))
OFFSETS = {0: 0.01, 1: -0.01}
NOISE = 0.002


def true_mean(tokens) -> float:
    """A known architecture effect: skip_connect (op 4) helps, the concat aggregator hurts."""
    ops = [tokens[i] for i in range(len(tokens)) if i % 5 in (2, 3)]
    aggs = [tokens[i] for i in range(len(tokens)) if i % 5 == 4]
    return 0.5 + 0.01 * sum(o == 4 for o in ops) - 0.005 * sum(aggs)


def synthetic_records(n: int = 60, replicated: int = 20, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    genos = [sample_genotype(SPACE, rng) for _ in range(n)]
    recs = []
    for i, g in enumerate(genos):
        for s in (0, 1) if i < replicated else (0,):
            reward = true_mean(g.tokens) + OFFSETS[s] + NOISE * noise.standard_normal()
            recs.append({"kind": "candidate", "tokens": list(g.tokens), "seed": s, "reward": reward})
    for s in (0, 1):
        recs.append({"kind": "joint", "tokens": None, "seed": s, "reward": 0.49 + OFFSETS[s]})
        recs.append({"kind": "basic", "tokens": list(basic_genotype(SPACE).tokens), "seed": s, "reward": 0.5})
    return recs


def write_jsonl(path, records) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "rewards.jsonl.gz"
    write_jsonl(path, [{**r, "space": SPACE.to_dict()} for r in synthetic_records()])
    return read_rewards(path)


@pytest.fixture
def fitted(tmp_path, table, monkeypatch):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(fit_document(table, kind="gbt", members=4)))
    monkeypatch.setenv(ENV, str(path))
    return path


def config(seed: int = 0) -> EvalConfig:
    return EvalConfig.model_validate(
        {"tasks": list(SPACE.tasks), "model": {"num_aux_inputs": 2}, "seed": seed}
    )


def test_seed_offsets_and_noise_are_recovered(table):
    s = summarise(table)
    assert s.offsets[0] - s.offsets[1] == pytest.approx(0.02, abs=0.002)
    assert s.noise == pytest.approx(NOISE, rel=0.5)
    assert s.means["joint"] == pytest.approx(0.49, abs=1e-9)
    assert len(s.replicated) == 21  # 20 candidates and basic


def test_a_repeated_evaluation_is_not_another_replicate(tmp_path):
    recs = synthetic_records()
    path = tmp_path / "twice.jsonl"
    write_jsonl(path, [{**r, "space": SPACE.to_dict()} for r in recs + recs[:10]])
    table = read_rewards(path)
    assert len(table.rows) == len(recs)
    assert summarise(table).noise == pytest.approx(summarise(_table_of(tmp_path, recs)).noise)


def _table_of(tmp_path, recs):
    path = tmp_path / "once.jsonl"
    write_jsonl(path, [{**r, "space": SPACE.to_dict()} for r in recs])
    return read_rewards(path)


def test_the_fit_ranks_held_out_genotypes_and_reports_the_ceiling(table):
    doc = fit_document(table, kind="gbt", members=4)
    report = doc["report"]
    assert report["held_out"]["spearman"] > 0.6
    assert report["replicate_ceiling"]["n"] == 21
    assert report["replicate_ceiling"]["spearman"] > 0.8  # the noise is small next to the spread
    assert -1.0 <= report["held_out"]["kendall"] <= 1.0


def test_the_evaluator_is_registered_deterministic_per_seed_and_fast(fitted):
    assert load_callable("surrogate", EVALUATORS) is evaluate
    g = sample_genotype(SPACE, random.Random(7))
    a, b = evaluate(config(0), g), evaluate(config(0), g)
    assert a.ok and a.reward == b.reward
    assert evaluate(config(1), g).reward != a.reward
    assert a.metrics["surrogate"]["true_mean"] == pytest.approx(load_surrogate(fitted).true_mean(g))
    assert evaluate(config(0), None).reward != evaluate(config(1), None).reward


def test_rewards_scatter_around_the_true_mean_by_the_measured_noise(fitted):
    surrogate = load_surrogate(fitted)
    g = sample_genotype(SPACE, random.Random(3))
    draws = [surrogate.reward(g, s) for s in range(400)]
    spread = float(np.std(surrogate.members(g)))
    expected = np.sqrt(NOISE**2 + spread**2 + surrogate.offset_std**2)
    assert np.mean(draws) == pytest.approx(surrogate.true_mean(g), abs=4 * expected / 20)
    assert np.std(draws) == pytest.approx(expected, rel=0.25)


def test_the_surrogate_follows_the_known_effect(fitted):
    surrogate = load_surrogate(fitted)
    rng = random.Random(11)
    genos = [sample_genotype(SPACE, rng) for _ in range(40)]
    from scipy.stats import spearmanr

    rho = spearmanr([surrogate.true_mean(g) for g in genos], [true_mean(g.tokens) for g in genos]).statistic
    assert rho > 0.6


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not a JSON file"),
        (json.dumps({"format": "other"}), "format: not an auxnas-surrogate file"),
        (json.dumps({"format": "auxnas-surrogate", "version": 9}), "version: 9"),
        (json.dumps({"format": "auxnas-surrogate", "version": 1}), "malformed (KeyError"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, monkeypatch, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    monkeypatch.setenv(ENV, str(path))
    with pytest.raises(SurrogateError) as err:
        evaluate(config(), None)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_tampered_table_fails_its_check(tmp_path, fitted):
    doc = json.loads(fitted.read_text())
    doc["genotypes"][0]["mean"] += 0.1
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SurrogateError, match="check: the ensemble fitted again differs"):
        load_surrogate(path)


def test_unset_file_and_wrong_space_are_named(monkeypatch, fitted):
    other = EvalConfig.model_validate({"tasks": ["segmentation"], "model": {"num_aux_inputs": 2}})
    with pytest.raises(SurrogateError, match="config: tasks/num_aux_inputs"):
        evaluate(other, None)
    monkeypatch.delenv(ENV)
    with pytest.raises(SurrogateError, match=f"{ENV}: set it"):
        evaluate(config(), None)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"tokens": None, "seed": 0, "reward": "high"}, "record 1: reward: a finite number"),
        ({"tokens": None, "seed": 0.5, "reward": 0.5}, "record 1: seed: an integer"),
        ({"tokens": [0, 1], "seed": 0, "reward": 0.5}, "record 1: tokens: expected 20 tokens"),
        ({"kind": "odd", "tokens": None, "seed": 0, "reward": 0.5}, "record 1: kind: one of"),
    ],
)
def test_bad_records_are_named(tmp_path, record, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"space": SPACE.to_dict(), "records": [record]}))
    with pytest.raises(RewardTableError, match=message.replace("[", r"\[")):
        read_rewards(path)


def test_cli_fit_writes_the_file_and_prints_the_report(tmp_path):
    src = tmp_path / "rewards.json"
    src.write_text(json.dumps({"space": SPACE.to_dict(), "records": synthetic_records()}))
    out = tmp_path / "s.json"
    _register_commands()
    result = CliRunner().invoke(cli_app, ["surrogate", "fit", str(src), "-o", str(out), "--model", "ridge"])
    assert result.exit_code == 0, result.output
    assert "held out (5-fold over genotypes): Spearman" in result.output
    assert "replicate ceiling (one seed against another): Spearman" in result.output
    assert load_surrogate(out).doc["model"]["kind"] == "ridge"


def test_cli_fit_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "s.json"
    _register_commands()
    runner = CliRunner()
    missing = runner.invoke(cli_app, ["surrogate", "fit", str(tmp_path / "none.jsonl"), "-o", str(out)])
    assert missing.exit_code == 2 and "no such file" in missing.output and not out.exists()
    src = tmp_path / "few.json"
    src.write_text(json.dumps({"space": SPACE.to_dict(), "records": synthetic_records(n=5, replicated=0)}))
    few = runner.invoke(cli_app, ["surrogate", "fit", str(src), "-o", str(out)])
    assert few.exit_code == 2 and "a surrogate needs at least 10" in few.output and not out.exists()
    model = runner.invoke(cli_app, ["surrogate", "fit", str(src), "-o", str(out), "--model", "forest"])
    assert model.exit_code == 2 and "--model: one of" in model.output


def test_search_with_the_surrogate_but_no_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("AUXNAS_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    _register_commands()
    preset = str(Path(__file__).resolve().parents[1] / "configs" / "synthetic-compete.yaml")
    result = CliRunner().invoke(cli_app, ["search", preset, "--evaluator", "surrogate"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {ENV}: set it to a file written by `auxnas surrogate fit`"
    ]
    assert not (tmp_path / "a.db").exists()


def test_a_database_gives_every_succeeded_trial_at_its_training_seed(storage):  # noqa: F811
    from auxnas.controller.storage import TrialRecord
    from tests import service_support as support

    def trial(index, tokens, status="succeeded", reward=0.5, **kw):
        return TrialRecord(index=index, kind="candidate", status=status, tokens=tokens, reward=reward, **kw)

    rng = random.Random(0)
    a, b = (list(sample_genotype(SPACE, rng).tokens) for _ in range(2))
    sid = storage.create_search(support.tiny_search_config(seed=3))
    storage.add_trials(
        sid,
        [
            TrialRecord(index=0, kind="joint", status="succeeded", reward=0.4),
            trial(1, a, reward=0.51),
            trial(2, a, reward=0.53, phase="calibration", replicate=1),
            trial(3, b, status="pruned", reward=0.2),
            trial(4, b, status="failed", reward=None),
            trial(5, b, reward=0.55, seed=9),
        ],
    )
    table = read_rewards(storage.engine.url.render_as_string(hide_password=False))
    got = sorted((r.kind, r.seed, r.reward) for r in table.rows)
    assert got == [("candidate", 3, 0.51), ("candidate", 4, 0.53), ("candidate", 9, 0.55), ("joint", 3, 0.4)]
