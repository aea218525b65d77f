"""Noise levers of the evaluator on a tiny config: reward seeds, LR schedules, smoothed reward,
and the warm-start cache (built once across processes, keyed, never half-written)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import auxnas.evaluator.evaluate as ev
from auxnas.evaluator import warmstart
from auxnas.evaluator.config import ConfigError, EvalConfig, parse_config
from auxnas.evaluator.evaluate import evaluate, geometric_mean, learning_rate, reward_eval_steps

TASKS = ["segmentation", "normal"]  # both score metrics are > 0 after a few steps
SCORE = {"segmentation": "miou", "normal": "within_22.5"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


def tiny_doc(data_root: str, **sections) -> dict:
    doc = {
        "seed": 0,
        "tasks": TASKS,
        "data": {"num_images": 20, "num_test_images": 6, "resolution": 16, "root": data_root},
        "model": {"aux_channels": 8, "num_aux_inputs": 2},
        "train": {"steps": 4, "batch_size": 4, "eval_batch_size": 8, "lr": 0.02},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return doc


def tiny(data_root: str, **sections) -> EvalConfig:
    return EvalConfig.model_validate(tiny_doc(data_root, **sections))


def warm(data_root: str, cache: Path, **model) -> EvalConfig:
    return tiny(
        data_root, model={"pretrained": "auto", "pretrain_steps": 3, "pretrain_cache": str(cache), **model}
    )


# --- reward seeds ---------------------------------------------------------------------------
def test_reward_seeds_average_the_metrics_of_seeds_base_to_base_plus_k(data_root):
    cfg = tiny(data_root, seed=5, train={"reward_seeds": 2})
    r = evaluate(cfg, None)
    assert r.ok and [s["seed"] for s in r.per_seed] == [5, 6]
    # common random numbers: seed i inside the average is exactly a single-seed run under seed i
    for entry in r.per_seed:
        alone = evaluate(tiny(data_root, seed=entry["seed"]), None)
        assert entry["metrics"] == alone.metrics and entry["reward"] == alone.reward
    a, b = (s["metrics"] for s in r.per_seed)
    assert a != b
    for t in TASKS:
        for m in a[t]:
            assert r.metrics[t][m] == pytest.approx((a[t][m] + b[t][m]) / 2)
    assert r.reward == pytest.approx(geometric_mean([r.metrics[t][SCORE[t]] for t in TASKS]))
    assert r.reward > 0 and r.steps == 8
    assert r.train_seconds == pytest.approx(sum(s["train_seconds"] for s in r.per_seed))


def test_early_stop_checks_the_first_seed_only(data_root):
    r = evaluate(tiny(data_root, train={"reward_seeds": 3}), None, early_stop_below=2.0)
    assert r.ok and r.early_stopped and [s["seed"] for s in r.per_seed] == [0]
    assert r.steps == 2  # early_stop_fraction 0.5 of 4 steps


# --- schedules and smoothed reward ----------------------------------------------------------
def test_learning_rate_schedules():
    def tc(**kw):
        return EvalConfig.model_validate({"train": {"steps": 10, "lr": 0.1, **kw}}).train

    poly = [learning_rate(tc(), s, 10) for s in range(1, 11)]
    assert poly == pytest.approx([0.1 * (1 - (s - 1) / 10) ** 0.9 for s in range(1, 11)])  # the paper's
    assert [learning_rate(tc(schedule="constant"), s, 10) for s in (1, 5, 10)] == [0.1, 0.1, 0.1]
    cos = tc(schedule="cosine")
    assert learning_rate(cos, 1, 10) == pytest.approx(0.1)
    assert learning_rate(cos, 6, 10) == pytest.approx(0.05)  # half way
    assert learning_rate(cos, 10, 10) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.9)))
    w = tc(schedule="constant", warmup_steps=4)
    assert [learning_rate(w, s, 10) for s in range(1, 7)] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1])
    wp = tc(warmup_steps=4)  # poly decays over the 6 steps after the warm-up
    assert learning_rate(wp, 5, 10) == pytest.approx(0.1)
    assert learning_rate(wp, 10, 10) == pytest.approx(0.1 * (1 / 6) ** 0.9)


def test_the_trial_trains_with_the_configured_schedule(data_root, monkeypatch):
    seen: list[float] = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    cfg = tiny(data_root, train={"optimizer": "adam", "schedule": "cosine", "warmup_steps": 1})
    cosine = evaluate(cfg, None)
    assert seen == pytest.approx([learning_rate(cfg.train, s, 4) for s in range(1, 5)])
    assert seen[0] == pytest.approx(0.01) and seen[1] == pytest.approx(0.02)
    constant = evaluate(tiny(data_root, train={"optimizer": "adam", "schedule": "constant"}), None)
    assert cosine.metrics != constant.metrics


def test_reward_evals_average_the_last_evaluations(data_root, monkeypatch):
    assert reward_eval_steps(100, 4) == [82, 88, 94, 100]  # evenly over the last quarter
    assert reward_eval_steps(4, 2) == [3, 4] and reward_eval_steps(7, 1) == [7]
    scored: list[tuple[dict, float]] = []
    original = ev._Trial.score

    def spy(self):
        out = original(self)
        scored.append(out)
        return out

    monkeypatch.setattr(ev._Trial, "score", spy)
    r = evaluate(tiny(data_root, train={"reward_evals": 2}), None)
    assert len(scored) == 2 and scored[0][0] != scored[1][0]
    for t in TASKS:
        for m in r.metrics[t]:
            assert r.metrics[t][m] == pytest.approx((scored[0][0][t][m] + scored[1][0][t][m]) / 2)
    assert r.per_seed[0]["eval_rewards"] == [scored[0][1], scored[1][1]]
    assert r.reward == pytest.approx(geometric_mean([r.metrics[t][SCORE[t]] for t in TASKS]))


# --- warm start -----------------------------------------------------------------------------
_CHILD = """
import json, os, sys, time
from pathlib import Path
import auxnas.evaluator.warmstart as ws
from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.evaluate import evaluate

signals = Path(sys.argv[2])  # the test's marker folder
original = ws.load_or_build
def held(config, device_type, build):
    def held_build():
        (signals / f"building-{os.getpid()}").touch()
        deadline = time.monotonic() + 300
        while not (signals / "release").exists():  # the test lets the build go on
            if time.monotonic() > deadline:
                sys.exit("never released")
            time.sleep(0.05)
        return build()
    return original(config, device_type, held_build)
ws.load_or_build = held
r = evaluate(EvalConfig.model_validate(json.loads(sys.argv[1])), None)
print(json.dumps({"reward": r.reward, "warm": [s.get("warm_start") for s in r.per_seed]}))
"""


def _child(cfg: EvalConfig, signals: Path) -> subprocess.Popen:
    """A process evaluating `cfg` whose warm-start build, once inside the lock, marks
    `signals/building-<pid>` and holds until `signals/release` exists."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(cfg.model_dump(mode="json")), str(signals)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _building(signals: Path, child: subprocess.Popen) -> bool:
    return (signals / f"building-{child.pid}").exists()


def _blocked_on_a_lock(pid: int) -> bool:
    """Whether `pid` waits for a file lock now (the kernel lists a waiter with `->`)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and str(pid) in line.split() for line in lines)


def _wait_for(predicate, what: str, child: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert child.poll() is None, f"{what}: the child ended ({child.stderr.read()})"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_warm_start_is_built_once_across_processes_and_reused(data_root, tmp_path):
    """The second process arrives while the first builds (made certain: the first holds its
    build until the test releases it) and must wait on the lock, not build a second copy."""
    cache, signals = tmp_path / "ws", tmp_path / "signals"
    signals.mkdir()
    cfg = warm(data_root, cache)
    first = _child(cfg, signals)
    _wait_for(lambda: _building(signals, first), "the first build to start", first)
    second = _child(cfg, signals)
    _wait_for(
        lambda: _blocked_on_a_lock(second.pid) or _building(signals, second),
        "the second process to wait on the lock",
        second,
    )
    assert not _building(signals, second), "two builds ran at once"
    (signals / "release").touch()
    outs = []
    for c in (first, second):
        out, err = c.communicate(timeout=240)
        assert c.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o["warm"][0] for o in outs] == ["built", "loaded"]
    assert not _building(signals, second)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and files[0] == warmstart.cache_path(cfg, "cpu")
    stamp = files[0].stat().st_mtime_ns
    here = evaluate(cfg, None)  # this process loads what a child built
    assert here.per_seed[0]["warm_start"] == "loaded" and files[0].stat().st_mtime_ns == stamp
    assert here.reward == outs[0]["reward"] == outs[1]["reward"]
    cold = evaluate(tiny(data_root), None)
    assert cold.metrics != here.metrics  # the candidate really starts from the warm weights
    # the candidate's main network starts from the cached weights
    state = warmstart.load(files[0], warmstart.cache_key(cfg, "cpu"))
    assert state is not None and any(k.startswith("encoder.") for k in state)
    assert not list(cache.glob("*.tmp"))


def test_warm_start_key_follows_what_determines_the_weights(data_root, tmp_path):
    cache = tmp_path / "ws"
    base = warm(data_root, cache)
    assert evaluate(base, None).per_seed[0]["warm_start"] == "built"
    # fields of the auxiliary modules or of the candidates' own training share the warm start
    same = warm(data_root, cache, aux_channels=16)
    same = same.model_copy(
        update={"train": same.train.model_copy(update={"aux_weight": 0.5, "ema_decay": 0.5})}
    )
    assert warmstart.cache_key(same, "cpu") == warmstart.cache_key(base, "cpu")
    assert evaluate(same, None).per_seed[0]["warm_start"] == "loaded"
    changed = [
        warm(data_root, cache, pretrain_steps=4),
        warm(data_root, cache).model_copy(update={"seed": 1}),
        warm(data_root, cache).model_copy(update={"tasks": ["segmentation"]}),
        tiny(
            data_root,
            model={"pretrained": "auto", "pretrain_steps": 3, "pretrain_cache": str(cache)},
            train={"lr": 0.01},
        ),
    ]
    keys = {warmstart.cache_key(c, "cpu") for c in changed}
    assert len(keys) == len(changed) and warmstart.cache_key(base, "cpu") not in keys
    assert warmstart.cache_key(base, "cuda") != warmstart.cache_key(base, "cpu")
    assert evaluate(changed[0], None).per_seed[0]["warm_start"] == "built"
    assert len(list(cache.glob("*.pt"))) == 2
    # two reward seeds: two warm starts (one per seed), each reused afterwards
    two = warm(data_root, cache).model_copy(
        update={"train": base.train.model_copy(update={"reward_seeds": 2})}
    )
    assert [s["warm_start"] for s in evaluate(two, None).per_seed] == ["loaded", "built"]


def test_a_killed_or_corrupt_build_is_never_loaded_and_is_redone(data_root, tmp_path):
    cache = tmp_path / "ws"
    cfg = warm(data_root, cache)
    key = warmstart.cache_key(cfg, "cpu")
    cache.mkdir()
    path = cache / f"{key}.pt"
    leftover = cache / f"{key}.pt.killed.tmp"
    leftover.write_bytes(b"half a checkpoint")
    path.write_bytes(b"\x80\x02 not a torch file")  # e.g. copied in by hand and truncated
    assert warmstart.load(path, key) is None
    r = evaluate(cfg, None)
    assert r.ok and r.per_seed[0]["warm_start"] == "built"
    assert warmstart.load(path, key) is not None and not leftover.exists()
    # a file written for another key is not accepted under this one
    other = cache / "other.pt"
    path.rename(other)
    assert warmstart.load(other, key[::-1]) is None


def test_a_build_killed_midway_leaves_nothing_the_loader_accepts(data_root, tmp_path):
    cache = tmp_path / "ws"
    cfg = warm(data_root, cache, pretrain_steps=1_000_000)  # the child would train for hours
    signals = tmp_path / "signals"
    signals.mkdir()
    child = _child(cfg, signals)
    _wait_for(lambda: _building(signals, child), "the child to hold the lock", child)
    (signals / "release").touch()  # into the (hours-long) build itself
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert not list(cache.glob("*.pt"))
    # the lock died with the child: the next builder gets it at once
    state, built = warmstart.load_or_build(cfg, "cpu", lambda: {"w": torch.ones(2)})
    assert built and state["w"].tolist() == [1.0, 1.0]
    assert warmstart.load_or_build(cfg, "cpu", lambda: pytest.fail("rebuilt"))[1] is False


def test_a_diverging_warm_start_is_a_structured_failure_and_caches_nothing(data_root, tmp_path, monkeypatch):
    original = ev._Trial._losses

    def nan_losses(self, images, targets):
        total, main = original(self, images, targets)
        return total * float("nan"), main

    monkeypatch.setattr(ev._Trial, "_losses", nan_losses)
    cache = tmp_path / "ws"
    r = evaluate(warm(data_root, cache), None)
    assert not r.ok and r.error["type"] == "NaNLoss"
    assert r.error["message"].startswith("warm start (model.pretrain_steps): the training loss became NaN")
    assert not list(cache.glob("*.pt")) and not list(cache.glob("*.tmp"))


def test_cache_directory_default_and_env(monkeypatch, tmp_path):
    cfg = EvalConfig()
    monkeypatch.delenv("AUXNAS_CACHE_DIR", raising=False)
    assert warmstart.cache_dir(cfg) == Path.home() / ".cache" / "auxnas" / "warmstart"
    monkeypatch.setenv("AUXNAS_CACHE_DIR", str(tmp_path))
    assert warmstart.cache_dir(cfg) == tmp_path / "warmstart"
    explicit = EvalConfig.model_validate({"model": {"pretrain_cache": str(tmp_path / "x")}})
    assert warmstart.cache_dir(explicit) == tmp_path / "x"


# --- bad values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"train": {"reward_seeds": 0}},
            "config: train.reward_seeds: Input should be greater than or equal to 1",
        ),
        (
            {"train": {"schedule": "banana"}},
            "config: train.schedule: Input should be 'poly', 'constant' or 'cosine'",
        ),
        (
            {"train": {"reward_evals": 5}},
            "config: train.reward_evals: Value error, must be at most train.steps (4)",
        ),
        (
            {"train": {"warmup_steps": 4}},
            "config: train.warmup_steps: Value error, must be below train.steps (4)",
        ),
        (
            {"train": {"warmup_steps": -1}},
            "config: train.warmup_steps: Input should be greater than or equal to 0",
        ),
        (
            {"model": {"pretrain_steps": 0}},
            "config: model.pretrain_steps: Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_lever_values_name_the_field(data_root, sections, message):
    with pytest.raises(ConfigError) as err:
        parse_config(tiny_doc(data_root, **sections))
    assert str(err.value) == message


def test_pretrained_neither_auto_nor_a_file(data_root):
    with pytest.raises(ValueError, match=r"^model.pretrained: 'autox' is not a file \(nor 'auto'"):
        evaluate(tiny(data_root, model={"pretrained": "autox"}), None)


def test_cli_seed_sets_the_replicate_and_the_table_shows_per_seed_rewards(data_root, tmp_path):
    from auxnas.cli.main import _register_commands
    from auxnas.cli.main import app as cli_app

    _register_commands()
    runner = CliRunner()
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"name": "levers", **tiny_doc(data_root, train={"reward_seeds": 2})}))
    table = runner.invoke(cli_app, ["evaluate", str(preset), "-g", "none", "--seed", "3"])
    assert table.exit_code == 0, table.output
    assert (
        "seeds 3..4" in table.output
        and "per-seed rewards: seed 3 " in table.output
        and ", seed 4 " in table.output
    )
    doc = json.loads(
        runner.invoke(cli_app, ["evaluate", str(preset), "-g", "none", "--json", "--seed", "3"]).stdout
    )
    assert [s["seed"] for s in doc["per_seed"]] == [3, 4]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "levers", **tiny_doc(data_root, train={"schedule": "banana"})}))
    out = runner.invoke(cli_app, ["evaluate", str(bad)])
    assert out.exit_code == 2 and "train.schedule" in out.output and len(out.output.strip().splitlines()) == 1
    autox = tmp_path / "autox.yaml"
    autox.write_text(yaml.safe_dump({"name": "levers", **tiny_doc(data_root, model={"pretrained": "autox"})}))
    out = runner.invoke(cli_app, ["evaluate", str(autox), "-g", "none"])
    assert out.exit_code == 2 and "model.pretrained: 'autox' is not a file" in out.output
