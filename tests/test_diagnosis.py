import math

import numpy as np
import pytest

from auxnas.controller.diagnosis import Runs, diagnose, effect, stats

NOISE = np.array([-0.01, 0.0, 0.01])  # std 0.01 over three seeds


def _runs(reward: float, **task_means: float) -> Runs:
    return Runs(
        rewards=list(reward + NOISE),
        scores={t: list(m + NOISE) for t, m in task_means.items()},
    )


def test_known_competition_is_detected_on_the_tasks_that_have_it():
    joint = _runs(0.50, seg=0.40, depth=0.60, normal=0.70)
    basic = _runs(0.55, seg=0.45, depth=0.62, normal=0.70)
    single = {"seg": list(0.48 + NOISE), "depth": list(0.66 + NOISE), "normal": list(0.70 + NOISE)}
    d = diagnose(joint, basic, single)
    comp = d["tasks"]["seg"]["competition"]
    assert comp["diff"] == pytest.approx(-0.08)
    assert comp["std"] == pytest.approx(math.hypot(0.01, 0.01))
    assert comp["in_std"] == pytest.approx(-0.08 / math.hypot(0.01, 0.01))
    assert d["competing_tasks"] == ["seg", "depth"]
    assert d["tasks"]["normal"]["competition"]["in_std"] == pytest.approx(0.0, abs=1e-9)
    assert d["basic_beats_joint"] is True
    assert d["reward"]["basic_gain"]["diff"] == pytest.approx(0.05)
    assert "2 task(s) (seg, depth)" in d["verdict"] and "basic beats Joint" in d["verdict"]


def test_no_effect_reports_no_competition_and_no_gain():
    rng = np.random.default_rng(0)
    same = list(0.6 + rng.normal(0, 0.01, 3))
    joint = Runs(rewards=same, scores={"seg": same})
    basic = Runs(rewards=list(np.array(same) + rng.normal(0, 0.01, 3)), scores={"seg": same})
    d = diagnose(joint, basic, {"seg": same})
    assert d["competing_tasks"] == []
    assert d["basic_beats_joint"] is False
    assert d["tasks"]["seg"]["competition"]["diff"] == 0.0
    assert "no task where Joint is below Single" in d["verdict"]
    assert "does not beat" in d["verdict"]


def test_a_gain_within_two_std_is_not_significant():
    joint = _runs(0.50, seg=0.5)
    basic = _runs(0.52, seg=0.5)  # 0.02 over a one-run std of 0.0141: 1.4 std
    d = diagnose(joint, basic, {})
    assert d["reward"]["basic_gain"]["in_std"] == pytest.approx(0.02 / math.hypot(0.01, 0.01))
    assert d["basic_beats_joint"] is False
    assert "competition" not in d["tasks"]["seg"]  # no single-task runs: no figure


def test_std_units_and_standard_error():
    e = effect([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert e["diff"] == 2.0 and e["std"] == pytest.approx(1.0)
    assert e["in_std"] == pytest.approx(2.0)
    assert e["se"] == pytest.approx(math.sqrt(1 / 3)) and e["t"] == pytest.approx(2.0 * math.sqrt(3))


def test_zero_noise_leaves_units_undefined():
    e = effect([0.5, 0.5], [0.4, 0.4])
    assert e["diff"] == pytest.approx(0.1) and e["in_std"] is None and e["t"] is None


def test_one_seed_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        stats([0.5])


def test_cli_refuses_fewer_than_two_seeds_in_one_line():
    from typer.testing import CliRunner

    from auxnas.cli.main import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, ["diagnose", "configs/synthetic-compete.yaml", "--seeds", "1"])
    assert result.exit_code == 2
    assert "--seeds: need at least 2 seeds" in result.output
    assert len(result.output.strip().splitlines()) == 1
