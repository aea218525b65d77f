"""Per-trial work in the Ray task that need not run."""

from __future__ import annotations

import gc
import sys

from auxnas.evaluator import remote


def test_a_trial_without_cuda_skips_the_forced_gc_and_the_torch_import(monkeypatch):
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(a) or 0)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    remote.release_memory()
    assert collected == [] and "torch" not in sys.modules  # nothing collected, torch not imported

    class FakeCuda:  # torch is imported but CUDA was never used in this process
        initialized = False

        def is_initialized(self):
            return self.initialized

    class FakeTorch:
        cuda = FakeCuda()

    monkeypatch.setitem(sys.modules, "torch", FakeTorch)
    remote.release_memory()
    assert collected == []


def test_a_trial_that_used_cuda_frees_its_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("gc") or 0)

    class FakeCuda:
        def is_initialized(self):
            return True

        def synchronize(self):
            calls.append("synchronize")

        def empty_cache(self):
            calls.append("empty_cache")

        def reset_peak_memory_stats(self):
            calls.append("reset_peak")

    class FakeTorch:
        cuda = FakeCuda()

    monkeypatch.setitem(sys.modules, "torch", FakeTorch)
    remote.release_memory()
    assert calls == ["gc", "synchronize", "empty_cache", "reset_peak"]
