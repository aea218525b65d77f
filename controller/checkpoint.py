"""A search's checkpoint directory: driver state, strategy state and a trial journal.

    <dir>/state.json            driver state after the last finished iteration (written last)
    <dir>/strategy-<k>/         strategy state after iteration k (RLlib algorithm for ppo)
    <dir>/journal.jsonl         every trial and iteration record, appended as it happens

The journal lets a search that keeps its trials only in memory (the CLI) resume without losing
a finished trial; with the SQL storage it is a second copy. `state.json` is replaced atomically
and names the strategy directory it belongs to, so a kill at any point leaves either the old or
the new checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from controller.storage import IterationRecord, TrialRecord

FORMAT = "auxnas-search-checkpoint"
VERSION = 1
STATE_FILE = "state.json"
JOURNAL_FILE = "journal.jsonl"
STRATEGY_PREFIX = "strategy-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (other search, other space, unreadable)."""


class CheckpointDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- journal -------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL_FILE

    def append_trial(self, trial: TrialRecord) -> None:
        self._append({"type": "trial", "record": asdict(trial)})

    def append_iteration(self, it: IterationRecord) -> None:
        self._append({"type": "iteration", "record": asdict(it)})

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, allow_nan=False) + "\n"
        with open(self.journal_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read_journal(self) -> tuple[list[TrialRecord], list[IterationRecord]]:
        """Records in the journal; a line cut short by a kill is skipped."""
        trials: list[TrialRecord] = []
        iterations: list[IterationRecord] = []
        if not self.journal_path.is_file():
            return trials, iterations
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                if entry["type"] == "trial":
                    trials.append(_record(TrialRecord, entry["record"]))
                elif entry["type"] == "iteration":
                    iterations.append(_record(IterationRecord, entry["record"]))
            except (ValueError, KeyError, TypeError):
                continue
        return trials, iterations

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
        return time.perf_counter() - start

    def reset(self) -> None:
        """Forget a previous search in this directory (a fresh, non-resumed run)."""
        for name in (STATE_FILE, JOURNAL_FILE, f".{STATE_FILE}.tmp"):
            (self.path / name).unlink(missing_ok=True)
        for old in self.path.glob(f"{STRATEGY_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)


def _record(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})
