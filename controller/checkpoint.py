"""A search's checkpoint directory: what the controller needs to resume, nothing else.

    <dir>/state.json            driver state after the last finished iteration (written last)
    <dir>/strategy-<k>/         strategy state after iteration k (for ppo: the RLlib algorithm and
                                the generator state, `controller.generators`)
    <dir>/pending-<k>.pkl       the batch the strategy proposed in iteration k, until it learned
                                from it (for ppo: the sampled episodes and the generator state
                                after sampling them)

Trials live in the storage only (the database is their one source of truth). `state.json` is
replaced atomically and names the strategy directory it belongs to, so a kill at any point
leaves either the old or the new checkpoint, never half of one. The pending batch is written
before any trial of its iteration is stored, so a resumed search evaluates exactly the
genotypes that were proposed, and the controller learns from them as if nothing happened.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

FORMAT = "auxnas-search-checkpoint"
VERSION = 1
STATE_FILE = "state.json"
PENDING_PREFIX = "pending-"
STRATEGY_PREFIX = "strategy-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (other search, other space, unreadable)."""


class CheckpointDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- the proposed batch of the running iteration --------------------------------------
    def pending_path(self, iteration: int) -> Path:
        return self.path / f"{PENDING_PREFIX}{iteration:06d}.pkl"

    def save_pending(self, iteration: int, payload: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.pending_path(iteration)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def load_pending(self, iteration: int) -> Any | None:
        path = self.pending_path(iteration)
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except Exception as e:  # noqa: BLE001 - any unpickling problem means the same thing
            raise CheckpointError(f"{path}: unreadable proposed batch ({type(e).__name__})") from None

    # --- state ---------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        path = self.path / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable checkpoint state ({e})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
            raise CheckpointError(f"{path}: not an auxnas search checkpoint (format {FORMAT} v{VERSION})")
        return state

    def strategy_dir(self, state: dict[str, Any]) -> Path | None:
        name = state.get("strategy_dir")
        if not name:
            return None
        path = self.path / name
        if not path.is_dir():
            raise CheckpointError(f"{path}: strategy state named by {STATE_FILE} is missing")
        return path

    def save(self, state: dict[str, Any], strategy: Any, iteration: int) -> float:
        """Save the strategy into a new directory, then point state.json at it; returns seconds."""
        start = time.perf_counter()
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{STRATEGY_PREFIX}{iteration:06d}"
        target = self.path / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        strategy.save(target)
        doc = {"format": FORMAT, "version": VERSION, **state, "strategy_dir": name, "saved_at": time.time()}
        tmp = self.path / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, self.path / STATE_FILE)
        for old in self.path.glob(f"{STRATEGY_PREFIX}*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        for old in self.path.glob(f"{PENDING_PREFIX}*.pkl"):
            if old.name < f"{PENDING_PREFIX}{iteration:06d}":
                old.unlink(missing_ok=True)
        return time.perf_counter() - start

    def reset(self) -> None:
        """Forget a previous search in this directory (a fresh, non-resumed run)."""
        (self.path / STATE_FILE).unlink(missing_ok=True)
        (self.path / f".{STATE_FILE}.tmp").unlink(missing_ok=True)
        for old in self.path.glob(f"{PENDING_PREFIX}*.pkl"):
            old.unlink(missing_ok=True)
        for old in self.path.glob(f"{STRATEGY_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
