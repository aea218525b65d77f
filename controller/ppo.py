"""PPO with a deferred reward (RLlib 2.60, new API stack).

The env gives reward 0; a batch of complete episodes is sampled, their genotypes are evaluated
elsewhere (in parallel, as Ray tasks), the reward is written onto each episode's last step, the
learner is updated and the weights go back to the env runner. `sample_episodes` and `learn` are
the two halves, used by `controller.strategies.PPOStrategy` (whose driver runs the evaluations
with caching, cancel and failure handling in between).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
)

from auxnas.controller.config import SearchConfig
from auxnas.controller.env import TokenEnv
from auxnas.controller.rl_module import ControllerRLModule
from auxnas.search_space import SearchSpace

MODULE_ID = "default_policy"


class DeferredRewardPPO(PPO):
    """PPO whose rewards come from outside the env, one per complete episode."""

    def sample_episodes(self, num_episodes: int) -> list[Any]:
        """`num_episodes` complete episodes (one genotype each) from the local env runner."""
        episodes = self.env_runner.sample(num_episodes=num_episodes, explore=True)
        self._env_steps_sampled = getattr(self, "_env_steps_sampled", 0) + sum(len(e) for e in episodes)
        return episodes[:num_episodes]

    @staticmethod
    def episode_tokens(episode: Any) -> list[int]:
        return [int(a) for a in np.asarray(episode.get_actions())]

    def learn(self, episodes: list[Any], rewards: Sequence[float]) -> dict[str, float]:
        """Write one reward per episode onto its last step, update the learner, sync weights."""
        if len(episodes) != len(rewards):
            raise ValueError(f"{len(episodes)} episodes but {len(rewards)} rewards")
        for episode, reward in zip(episodes, rewards, strict=True):
            if not math.isfinite(reward):
                raise ValueError(f"reward must be finite, got {reward!r}")
            episode.set_rewards(new_data=np.asarray(reward, dtype=np.float32), at_indices=-1)
        steps = sum(len(e) for e in episodes)
        results = self.learner_group.update(
            episodes=episodes,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: getattr(self, "_env_steps_sampled", steps)},
            num_epochs=self.config.num_epochs,
            minibatch_size=None,  # whole batch per epoch (RLlib sizes it in padded steps)
            shuffle_batch_per_epoch=False,
        )
        self.sync_env_runner_weights()
        return _learner_stats(results)

    def sync_env_runner_weights(self) -> None:
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, inference_only=True
        )

    def weights_in_sync(self) -> bool:
        """True when the env runner samples with exactly the learner's weights."""
        learner = self.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
        runner = self.env_runner.module.get_state(inference_only=True)
        if set(runner) - set(learner):
            return False
        return all(np.array_equal(_np(runner[k]), _np(learner[k])) for k in runner)


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _learner_stats(results: Any) -> dict[str, float]:
    """Plain floats (policy loss, entropy, ...) from the learner group's result dicts."""
    first = results[0] if isinstance(results, list) and results else results
    if not isinstance(first, dict):
        return {}
    module = first.get(MODULE_ID, {})
    stats = {}
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_explained_var", "total_loss"):
        if key in module:
            value = _peek(module[key])
            if value is not None:
                stats[key] = value
    if ALL_MODULES in first and "total_loss" not in stats:
        value = _peek(first[ALL_MODULES].get("total_loss"))
        if value is not None:
            stats["total_loss"] = value
    return stats


def _peek(value: Any) -> float | None:
    if hasattr(value, "peek"):
        value = value.peek()
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def build_ppo_config(config: SearchConfig, space: SearchSpace) -> PPOConfig:
    ctl = config.controller
    length = space.num_tokens
    return (
        PPOConfig(algo_class=DeferredRewardPPO)
        .environment(
            TokenEnv,
            env_config={"num_inputs": space.num_inputs, "tasks": list(space.tasks)},
            disable_env_checking=True,
        )
        .env_runners(
            num_env_runners=0,
            # all episodes of an update step side by side: one batched forward per token
            num_envs_per_env_runner=ctl.episodes_per_update,
            batch_mode="complete_episodes",
            sample_timeout_s=None,
        )
        .learners(num_learners=0, num_gpus_per_learner=0)
        .training(
            lr=ctl.lr,
            gamma=1.0,
            lambda_=1.0,
            clip_param=ctl.clip,
            entropy_coeff=ctl.entropy_coeff,
            num_epochs=ctl.num_epochs,
            train_batch_size_per_learner=ctl.episodes_per_update * length,
            minibatch_size=ctl.episodes_per_update * length,  # unused: `learn` passes the batch whole
            use_kl_loss=False,
            grad_clip=2.0,
            vf_clip_param=1.0,
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=ControllerRLModule,
                model_config={
                    "hidden_size": ctl.hidden_size,
                    "num_layers": ctl.num_layers,
                    "embedding_size": ctl.embedding_size,
                    "max_seq_len": length + 1,
                },
            )
        )
        .debugging(seed=config.seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=1)
    )
