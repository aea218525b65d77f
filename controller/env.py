"""The controller's environment: one genotype token per step, reward deferred to the driver.

Observation (a Dict, batched by RLlib as-is):
- `prev_token`: the token chosen at the previous step, `max_choices` at the first step (a start
  symbol), so the policy is conditioned on its own last choice;
- `position`: index of the token being chosen;
- `action_mask`: 1.0 for the valid choices at this position (`SearchSpace.action_mask`).

The episode ends after `num_tokens` steps with reward 0: the driver evaluates the genotype and
writes the real reward onto the last step (see `controller.ppo`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from auxnas.search_space import Genotype, SearchSpace


def space_from_env_config(env_config: dict[str, Any]) -> SearchSpace:
    return SearchSpace(num_inputs=int(env_config["num_inputs"]), tasks=tuple(env_config["tasks"]))


def observation_space(space: SearchSpace) -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "prev_token": gym.spaces.Discrete(space.max_choices + 1),
            "position": gym.spaces.Discrete(space.num_tokens),
            "action_mask": gym.spaces.Box(0.0, 1.0, (space.max_choices,), np.float32),
        }
    )


class TokenEnv(gym.Env):
    """Emits a genotype token by token. `env_config`: {"num_inputs": P, "tasks": [...]}."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_config: dict[str, Any] | None = None) -> None:
        self.space = space_from_env_config(dict(env_config or {}))
        self.observation_space = observation_space(self.space)
        self.action_space = gym.spaces.Discrete(self.space.max_choices)
        self._masks = np.asarray(self.space.action_masks(), dtype=np.float32)
        self._counts = self.space.choice_counts()
        self.tokens: list[int] = []

    def _obs(self, prev_token: int) -> dict[str, Any]:
        pos = len(self.tokens)
        return {
            "prev_token": prev_token,
            "position": pos,
            "action_mask": self._masks[pos].copy(),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.tokens = []
        return self._obs(self.space.max_choices), {}

    def step(self, action):
        pos = len(self.tokens)
        if pos >= self.space.num_tokens:
            raise RuntimeError("step() after the episode ended; call reset()")
        token = int(action)
        if not 0 <= token < self._counts[pos]:
            # the policy masks invalid choices; reaching this means the mask is broken
            raise ValueError(f"token {token} at position {pos} is not in [0, {self._counts[pos]})")
        self.tokens.append(token)
        done = len(self.tokens) == self.space.num_tokens
        if done:
            # the terminal observation is never acted on; keep it inside the space
            obs = {
                "prev_token": token,
                "position": self.space.num_tokens - 1,
                "action_mask": self._masks[-1].copy(),
            }
            return obs, 0.0, True, False, {"tokens": list(self.tokens)}
        return self._obs(token), 0.0, False, False, {}

    def genotype(self) -> Genotype:
        return Genotype(self.space, tuple(self.tokens))
