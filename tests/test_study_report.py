"""bench/study.py's search-quality figures: the best-so-far curve, its area, the PPO-vs-random
paired line, the Single rows of the retrain table, and the plot file. Hand-made run records, so
every expected number is known; nothing trains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("auxnas_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(rewards, stopped=None, joint=0.5):
    return {
        "candidate_rewards": rewards,
        "candidate_early_stopped": stopped or [False] * len(rewards),
        "joint": joint,
        "basic": 0.55,
        "best_reward": max(r for r in rewards if r is not None),
        "best_candidate_reward": max(r for r in rewards if r is not None),
        "best_kind": "candidate",
        "early_stopped": sum(stopped or []),
        "wall_seconds": 10.0,
    }


def test_best_so_far_skips_early_stopped_and_failed_and_starts_at_joint(study):
    r = run([None, 0.7, 0.6, 0.9, 0.8], stopped=[False, True, False, False, False])
    # failed (None) and early-stopped (0.7, a first-stage reward) never count
    assert study.best_so_far(r) == [0.5, 0.5, 0.6, 0.9, 0.9]
    assert study.curve_area(r) == pytest.approx((0.5 + 0.5 + 0.6 + 0.9 + 0.9) / 5)


def test_finding_the_best_early_gives_the_larger_area(study):
    early, late = run([0.9, 0.6, 0.6]), run([0.6, 0.6, 0.9])
    assert study.curve_area(early) > study.curve_area(late)
    assert max(early["candidate_rewards"]) == max(late["candidate_rewards"])


def test_older_state_without_early_stop_flags_reads_as_none_stopped(study):
    r = run([0.6, 0.7])
    del r["candidate_early_stopped"]
    assert study.best_so_far(r) == [0.6, 0.7]


def test_summary_has_paired_area_line_single_rows_and_plot(study, tmp_path, monkeypatch):
    monkeypatch.setattr(study, "load_preset", lambda preset: None)
    runs = {
        "ppo-0": run([0.6, 0.8]),
        "random-0": run([0.6, 0.7]),
        "ppo-1": run([0.7, 0.7]),
        "random-1": run([0.6, 0.6]),
    }
    metrics = {"segmentation": {"miou": 0.4}, "depth": {"delta1": 0.7}}
    row = {"reward": 0.5, "metrics": metrics, "train_params": 10, "inference_params": 8}
    single = {
        "reward": 0.4,
        "metrics": {"segmentation": {"miou": 0.41}},
        "train_params": 5,
        "inference_params": 5,
    }
    rt = {"0": {"joint": row, "basic": row, "searched": row, "single:segmentation": single}}
    state = {
        "args": {
            "presets": ["p"],
            "seeds": [0, 1],
            "budget": 2,
            "parallel": 2,
            "per_update": 4,
            "retrain_steps": None,
        },
        "searches": {"p": runs},
        "retrains": {"p": rt},
        "plots": {"p": "img/study-p-best-so-far.png"},
    }
    text = "\n".join(study.summary_lines(state))
    # seed 0: (0.7 - 0.65) = 0.05; seed 1: (0.7 - 0.6) = 0.1 -> mean 0.075, std 0.0354
    assert "PPO minus random, paired by seed: 0.0750 ± 0.0354 (n=2)" in text
    assert "| single:segmentation | 0.4000 ± 0.0000 | 0.4100 ± 0.0000 | n/a |" in text
    assert "![p: best reward so far, PPO vs random](img/study-p-best-so-far.png)" in text

    png = tmp_path / "curve.png"
    study.plot_best_so_far("p", runs, [0, 1], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
