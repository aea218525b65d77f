"""Trials run at a lower CPU priority than the service (evaluator/priority.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from auxnas.evaluator import priority


def test_the_nice_value_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(priority.ENV, raising=False)
    assert priority.worker_nice() == priority.DEFAULT_NICE == 15
    monkeypatch.setenv(priority.ENV, " 0 ")
    assert priority.worker_nice() == 0
    for bad in ("x", "20", "-1", "1.5"):
        monkeypatch.setenv(priority.ENV, bad)
        with pytest.raises(
            ValueError, match=rf"^AUXNAS_WORKER_NICE: must be an integer 0\.\.19, got '{bad}'$"
        ):
            priority.worker_nice()


_CHILD = """
import os, threading
from auxnas.evaluator.priority import lower_priority
before = threading.Thread(target=threading.Event().wait, daemon=True)
before.start()
lower_priority(7)
seen = {}
after = threading.Thread(target=lambda: seen.update(after=os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
after.start(); after.join()
print(os.getpriority(os.PRIO_PROCESS, before.native_id), seen["after"], os.getpriority(os.PRIO_PROCESS, 0))
lower_priority(3)  # never back up
print(os.getpriority(os.PRIO_PROCESS, 0))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_every_thread_is_lowered_and_new_threads_inherit_it():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if base >= 7:
        pytest.skip(f"the suite already runs at nice {base}")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    first, second = out.stdout.splitlines()
    assert first.split() == ["7", "7", "7"] and second == "7"


_TASK = """
import json, os, threading
from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.remote import _ray_task
from auxnas.evaluator.result import EvalResult

def reporting_nice(config, genotype, *, early_stop_below=None):
    nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    return EvalResult(ok=True, reward=0.5, metrics={"process": {"nice": float(nice)}})

r = _ray_task(EvalConfig(), None, None, reporting_nice, None)
print(json.dumps({"ok": r.ok, "metrics": r.metrics, "error": r.error}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
@pytest.mark.parametrize(("value", "nice"), [("12", 12), ("", priority.DEFAULT_NICE), ("0", None)])
def test_the_trial_task_trains_at_the_worker_nice_value(value, nice):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if nice is not None and base >= nice:
        pytest.skip(f"the suite already runs at nice {base}")
    env = {**os.environ, priority.ENV: value}
    out = subprocess.run([sys.executable, "-c", _TASK], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"], result["error"]
    assert result["metrics"]["process"]["nice"] == (base if nice is None else nice)


def test_a_bad_value_fails_the_trial_with_one_line():
    env = {**os.environ, priority.ENV: "high"}
    out = subprocess.run([sys.executable, "-c", _TASK], capture_output=True, text=True, timeout=120, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["ok"]
    assert result["error"]["message"] == "AUXNAS_WORKER_NICE: must be an integer 0..19, got 'high'"


def test_auxnas_worker_refuses_a_bad_value_in_one_line(tmp_path):
    env = {**os.environ, priority.ENV: "20"}
    args = [sys.executable, "-m", "auxnas.cli", "worker", "--database-url", f"sqlite:///{tmp_path / 'w.db'}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: AUXNAS_WORKER_NICE: must be an integer 0..19, got '20'"
