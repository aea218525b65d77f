"""What one evaluation returns: plain data, picklable, JSON-friendly (crosses Ray and the DB)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EvalResult:
    ok: bool
    reward: float | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    main_params: int = 0
    aux_params: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    steps: int = 0
    device: str = "cpu"
    early_stopped: bool = False
    # one entry per reward seed (`train.reward_seeds`): {"seed", "reward", "metrics",
    # "eval_rewards", "steps", "train_seconds", "eval_seconds", "early_stopped"[, "warm_start",
    # "warm_start_seconds"]}; a failed seed is not listed
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    # on failure: {"type": "OutOfMemory" | "NaNLoss" | <exception class>, "message": "..."}
    error: dict[str, str] | None = None
    # the Ray node that ran it: {"id": node id, "ip": address}; None outside Ray
    node: dict[str, str] | None = None
    cpu_seconds: float = 0.0  # CPU time of the evaluating process (set by evaluator.remote.run_trial)

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def failure(cls, kind: str, message: str, **kw: Any) -> EvalResult:
        return cls(ok=False, error={"type": kind, "message": message}, **kw)


def one_line(text: object, limit: int = 400) -> str:
    """A message (or an exception) as one line of at most `limit` characters, for stored errors
    and user-facing failures; an exception without a message gives its class name."""
    line = " ".join(str(text).split()) or (type(text).__name__ if isinstance(text, BaseException) else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."
