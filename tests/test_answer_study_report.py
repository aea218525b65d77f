"""bench/answer_study.py's targets (a)-(c) and its summary table, on hand-made search records and
retrain rows, so every expected verdict is known; nothing trains."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


@pytest.fixture(scope="module")
def astudy():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("auxnas_answer_study", BENCH / "answer_study.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def rows(joint, basic, module):
    """Retrain rewards at three retrain seeds for Joint, basic and one module `m`."""
    seeds = ("20000", "20001", "20002")
    return {
        "joint": dict(zip(seeds, joint, strict=True)),
        "basic": dict(zip(seeds, basic, strict=True)),
        "m": dict(zip(seeds, module, strict=True)),
    }


def search(recommended, predicted, se=None):
    return {"claim": {"hash": "m", "recommended": recommended, "predicted": predicted, "predicted_se": se}}


def test_a_recommended_module_that_gains_meets_every_target(astudy):
    rt = rows([0.50, 0.51, 0.52], [0.51, 0.52, 0.53], [0.53, 0.53, 0.55])  # gains .03 .02 .03
    t = astudy.targets(search(True, 0.027, 0.004), rt)
    assert t["realised"] == pytest.approx(0.08 / 3)
    assert t["a"] and t["b"] and t["c"]


def test_a_recommended_module_below_joint_fails_a_and_c(astudy):
    rt = rows([0.50, 0.51, 0.52], [0.50, 0.51, 0.52], [0.49, 0.50, 0.505])
    t = astudy.targets(search(True, 0.03), rt)  # one-seed style: a claim without an SE
    assert t["realised"] < 0
    assert not t["a"] and not t["c"]
    assert not t["b"]  # the user trains the module, which is below basic by more than one std


def test_joint_as_the_answer_fails_b_when_basic_clearly_helps(astudy):
    rt = rows([0.50, 0.51, 0.52], [0.54, 0.545, 0.56], [0.50, 0.512, 0.52])
    t = astudy.targets(search(False, 0.001, 0.003), rt)
    assert t["a"]  # the quoted module shows no gain beyond one std: not recommending it was right
    assert not t["b"]  # but the user keeps Joint, far below basic
    assert t["vs_basic"] == pytest.approx(-(0.04 + 0.035 + 0.04) / 3)


def test_c_uses_the_combined_standard_error(astudy):
    rt = rows([0.50, 0.51, 0.52], [0.50, 0.51, 0.52], [0.52, 0.52, 0.54])  # gains .02 .01 .02
    t = astudy.targets(search(True, 0.05 / 3 + 0.02, 0.004), rt)
    assert t["realised_se"] == pytest.approx(0.0057735 / math.sqrt(3), rel=1e-4)  # sd(.02,.01,.02)/√3
    assert t["z"] == pytest.approx(0.02 / math.sqrt(t["realised_se"] ** 2 + 0.004**2))
    assert t["c"] is (abs(t["z"]) <= 2)


def test_summary_counts_targets_per_protocol(astudy):
    good = rows([0.50, 0.51, 0.52], [0.51, 0.52, 0.53], [0.53, 0.53, 0.55])
    state = {
        "args": {"presets": ["p"], "seeds": [1]},
        "searches": {
            "p": {
                "answer-random-1": {**search(True, 0.027, 0.004), "cpu_seconds": 100.0},
                "one-seed-random-1": {**search(True, 0.2), "cpu_seconds": 120.0},
            }
        },
        "retrains": {"p": {"1": good}},
    }
    text = "\n".join(astudy.summary_lines(state))
    assert "| answer | 1 | 1/1 | 1/1 | 1/1 | 1/1 | +0.0267 | 100 |" in text
    assert "| one-seed | 1 | 1/1 | 1/1 | 1/1 | 0/1 | +0.0267 | 120 |" in text
