"""Search config: an `EvalConfig` plus the search and controller sections.

This is the schema of the YAML presets in `configs/` and of the body of `POST /searches`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from evaluator.config import EvalConfig, _Section, load_config


class SearchSection(_Section):
    strategy: Literal["ppo", "random"] = "ppo"
    budget: int = Field(40, ge=1, description="candidates to evaluate (cached ones do not count)")
    parallel_trials: int = Field(1, ge=1, description="evaluations running at once")
    max_failed_trials: int = Field(5, ge=0, description="more failures than this end the search")
    failure_reward: float = Field(0.0, description="reward fed to the controller for a failed trial")
    early_stop: bool = Field(True, description="stop candidates clearly below the best so far")
    early_stop_ratio: float = Field(0.7, gt=0.0, le=1.0, description="stop below ratio * best reward")
    max_idle_iterations: int = Field(
        20,
        ge=1,
        description="controller iterations in a row that propose only already-evaluated genotypes "
        "before the search ends early (converged controller or exhausted space)",
    )


class ControllerSection(_Section):
    episodes_per_update: int = Field(8, ge=1, description="genotypes sampled per PPO iteration")
    lr: float = Field(1e-2, gt=0.0)
    clip: float = Field(0.2, gt=0.0)
    entropy_coeff: float = Field(0.01, ge=0.0)
    num_epochs: int = Field(8, ge=1)
    hidden_size: int = Field(64, ge=4)
    num_layers: int = Field(1, ge=1, le=4)
    embedding_size: int = Field(32, ge=2)


class SearchConfig(EvalConfig):
    name: str = Field("search", min_length=1, max_length=200)
    search: SearchSection = Field(default_factory=SearchSection)
    controller: ControllerSection = Field(default_factory=ControllerSection)

    def eval_config(self) -> EvalConfig:
        return EvalConfig.model_validate(self.model_dump(include=set(EvalConfig.model_fields)))


def load_search_config(path: str | Path) -> SearchConfig:
    return load_config(path, SearchConfig)
