"""The process-wide random generators RLlib seeds when it builds an algorithm: Python's `random`,
NumPy's global generator and torch's default CPU generator.

The controller's env runner draws every token from torch's (RLlib's action connector samples the
masked categorical with `torch.multinomial`); the learner may draw from any of the three. A
search that resumes builds its algorithm again, which seeds all three again, so the strategy
keeps its own copy of their state, saves it with its checkpoint, and puts it in place around each
use:

    owned = OwnedGenerators()
    with owned.active():          # the first time: nothing to put in; RLlib's build seeds them
        algo = config.build_algo()
    with owned.active():          # later: the strategy's state in, the process's own back after
        episodes = algo.sample_episodes(n)
    document = owned.state        # plain JSON types; OwnedGenerators(document) resumes it

Anything else in the process that draws from these generators between two uses neither moves
the strategy's state nor is moved by it.
"""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

KEYS = ("random", "numpy", "torch")


def capture() -> dict[str, Any]:
    """The three generators' state as plain JSON types."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "random": [version, list(internal), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }


def install(state: dict[str, Any]) -> None:
    """Put a `capture()` document back into the three generators."""
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise ValueError(f"generator state lacks {missing}")
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    raw = bytearray(base64.b64decode(state["torch"]))
    torch.set_rng_state(torch.frombuffer(raw, dtype=torch.uint8).clone())


class OwnedGenerators:
    """One user's generator state in a process whose generators others share."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = state

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer = capture()
        if self.state is not None:
            install(self.state)
        try:
            yield
        finally:
            self.state = capture()
            install(outer)
