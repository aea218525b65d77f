"""Trials run at a lower CPU priority than the service (evaluator/priority.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from auxnas.evaluator import priority
from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.remote import get_result, submit
from auxnas.evaluator.result import EvalResult


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


def reporting_nice(config, genotype, *, early_stop_below=None) -> EvalResult:
    """An evaluator that reports the nice value of the thread that trains."""
    nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    return EvalResult(ok=True, reward=0.5, metrics={"process": {"nice": float(nice)}})


def test_a_ray_trial_runs_at_the_worker_nice_value(ray_session):
    if os.getpriority(os.PRIO_PROCESS, 0) >= priority.DEFAULT_NICE:
        pytest.skip("the suite already runs at the trial nice value or above")
    result = get_result(submit(EvalConfig(), None, evaluate_fn=reporting_nice), timeout=120)
    assert result.ok, result.error
    assert result.metrics["process"]["nice"] >= priority.worker_nice()
    assert os.getpriority(os.PRIO_PROCESS, 0) < priority.DEFAULT_NICE  # the caller is untouched
