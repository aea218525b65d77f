"""Search config: an `EvalConfig` plus the search and controller sections.

This is the schema of the YAML presets in `configs/` and of the body of `POST /searches`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from auxnas.evaluator.config import EvalConfig, _Section, load_config

# Version of the config schema that stored searches carry (key `schema_version` of the stored
# JSON). 1: before bounds and strict types (stored without the key); 2: bounded, strict numbers.
# Raise it with any change that can make a stored config invalid.
CONFIG_SCHEMA_VERSION = 2


class CalibrateSection(_Section):
    """A calibration phase before the search (`auxnas calibrate` runs it alone): Joint, `basic`
    and `genotypes` random genotypes scored under `replicates` independent replicates."""

    genotypes: int = Field(12, ge=3, le=1000, description="random genotypes besides Joint and basic; 3..1000")
    replicates: int = Field(2, ge=2, le=16, description="independent replicates (own training seeds); 2..16")
    min_spearman: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="stop the search (failed) when the replicate Spearman is below this; null: never",
    )


class RacingSection(_Section):
    """Racing over training seeds (successive halving whose resource is seeds): every candidate
    starts on one seed; after each controller iteration the top `promote_fraction` of the
    candidates that completed a rung are trained on more seeds, up to the next rung's count."""

    rungs: list[int] = Field(
        default_factory=lambda: [1, 3],
        min_length=1,
        max_length=8,
        description="seed counts of the rungs, increasing, starting at 1 (one rung: no racing); each 1..64",
    )
    promote_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="share of a rung's candidates promoted to the next; (0, 1)"
    )

    @field_validator("rungs")
    @classmethod
    def _increasing_from_one(cls, v: list[int]) -> list[int]:
        if v[0] != 1:
            raise ValueError(f"must start at 1 (every candidate starts on one seed), got {v}")
        if any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[-1] > 64:
            raise ValueError(f"must be increasing seed counts of at most 64, got {v}")
        return v


class ConfirmSection(_Section):
    """Confirmation after the budget: the top `finalists` by racing, `basic` and Joint on
    `seeds` training seeds the search never used; the answer comes from their paired gains."""

    finalists: int = Field(3, ge=1, le=32, description="top candidates by racing to confirm; 1..32")
    seeds: int = Field(
        5,
        ge=0,
        le=64,
        description="fresh training seeds (0: no confirmation, the answer says it is unconfirmed; "
        "else 2..64)",
    )
    confidence: float = Field(0.9, ge=0.5, lt=1.0, description="two-sided interval level; [0.5, 1)")

    @field_validator("seeds")
    @classmethod
    def _zero_or_two(cls, v: int) -> int:
        if v == 1:
            raise ValueError("must be 0 (skip confirmation) or at least 2 (an interval needs a spread)")
        return v


class SearchSection(_Section):
    strategy: Literal["ppo", "random", "evolution"] = "ppo"
    calibrate: CalibrateSection | None = Field(
        None, description="measure the reward's fidelity before searching (off: null)"
    )
    budget: int = Field(
        40, ge=1, le=100_000, description="candidates to evaluate (cached ones do not count); 1..1e5"
    )
    parallel_trials: int = Field(1, ge=1, le=1024, description="evaluations running at once; 1..1024")
    max_failed_trials: int = Field(
        5, ge=0, le=100_000, description="more failures than this end the search; 0..1e5"
    )
    failure_reward: float = Field(
        0.0,
        ge=-1000.0,
        le=1000.0,
        description="reward fed to the controller for a failed trial; [-1000, 1000]",
    )
    early_stop: bool = Field(True, description="stop candidates clearly below the best so far")
    early_stop_ratio: float = Field(0.7, gt=0.0, le=1.0, description="stop below ratio * best reward; (0, 1]")
    racing: RacingSection = Field(default_factory=RacingSection)
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)
    max_idle_iterations: int = Field(
        20,
        ge=1,
        le=100_000,
        description="controller iterations in a row that propose only already-evaluated genotypes "
        "before the search ends early (converged controller or exhausted space); 1..1e5",
    )


class ControllerSection(_Section):
    episodes_per_update: int = Field(
        8, ge=1, le=1024, description="genotypes sampled per PPO iteration; 1..1024"
    )
    lr: float = Field(1e-2, gt=0.0, le=10.0, description="(0, 10]")
    clip: float = Field(0.2, gt=0.0, le=10.0, description="PPO clip parameter; (0, 10]")
    entropy_coeff: float = Field(0.01, ge=0.0, le=100.0, description="[0, 100]")
    num_epochs: int = Field(8, ge=1, le=1000, description="1..1000")
    hidden_size: int = Field(64, ge=4, le=4096, description="LSTM units; 4..4096")
    num_layers: int = Field(1, ge=1, le=4, description="LSTM layers; 1..4")
    embedding_size: int = Field(32, ge=2, le=4096, description="2..4096")
    population: int = Field(
        50, ge=2, le=100_000, description="strategy evolution: genotypes in the aging population; 2..1e5"
    )
    tournament: int = Field(
        10, ge=1, le=100_000, description="strategy evolution: members drawn to pick a parent; 1..1e5"
    )


class SearchConfig(EvalConfig):
    name: str = Field(
        "search", min_length=1, max_length=200, description="a label; 1..200 characters, no NUL"
    )
    search: SearchSection = Field(default_factory=SearchSection)
    controller: ControllerSection = Field(default_factory=ControllerSection)
    schema_version: int = Field(
        CONFIG_SCHEMA_VERSION,
        description=f"the config schema this config follows; only {CONFIG_SCHEMA_VERSION} (today's) is "
        "accepted, and every stored search records it",
        json_schema_extra={"enum": [CONFIG_SCHEMA_VERSION]},
    )

    @field_validator("schema_version")
    @classmethod
    def _current_schema(cls, v: int) -> int:
        if v != CONFIG_SCHEMA_VERSION:
            raise ValueError(f"this server reads config schema version {CONFIG_SCHEMA_VERSION}, not {v}")
        return v

    def eval_config(self) -> EvalConfig:
        return EvalConfig.model_validate(self.model_dump(include=set(EvalConfig.model_fields)))


def load_search_config(path: str | Path) -> SearchConfig:
    return load_config(path, SearchConfig)
