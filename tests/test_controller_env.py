"""The controller env and policy: masks, the previous token fed back, deferred rewards."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from auxnas.controller.env import TokenEnv
from auxnas.controller.rl_module import FLOAT_MIN, masked_logits
from auxnas.search_space import Genotype

SPACES = [(1, ("a",)), (2, ("a", "b")), (3, ("segmentation", "depth", "normal")), (4, ("x", "y"))]


def _env(num_inputs: int, tasks: tuple[str, ...]) -> TokenEnv:
    return TokenEnv({"num_inputs": num_inputs, "tasks": list(tasks)})


@settings(max_examples=60, deadline=None)
@given(which=st.sampled_from(SPACES), seed=st.integers(0, 2**32 - 1))
def test_episode_under_the_mask_is_a_valid_genotype(which, seed):
    env = _env(*which)
    rng = random.Random(seed)
    obs, _ = env.reset()
    prev = env.space.max_choices
    done = False
    while not done:
        assert obs["prev_token"] == prev  # the sampled token is fed to the next step
        assert env.observation_space.contains(obs)
        valid = np.flatnonzero(obs["action_mask"] > 0.5)
        assert len(valid) == env.space.choice_counts()[obs["position"]]
        prev = int(rng.choice(valid))
        obs, reward, done, truncated, info = env.step(prev)
        assert reward == 0.0 and not truncated
    assert env.space.invalid_token(info["tokens"]) is None
    Genotype(env.space, tuple(info["tokens"]))


def test_env_rejects_a_masked_choice():
    env = _env(2, ("a", "b"))
    env.reset()
    with pytest.raises(ValueError, match="position 0"):
        env.step(env.space.max_choices - 1)  # input token of cell (0, a) has 2 choices only


def test_masked_logits_give_invalid_choices_zero_probability():
    logits = torch.randn(4, 3, 7) * 50
    mask = (torch.rand(4, 3, 7) > 0.5).float()
    mask[..., 0] = 1.0
    probs = torch.softmax(masked_logits(logits, mask), -1)
    assert torch.all(probs[mask == 0] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 3))
    assert masked_logits(logits, mask)[mask == 0].max() == FLOAT_MIN


@pytest.fixture(scope="module")
def ppo_strategy(ray_session):
    from auxnas.controller.config import SearchConfig
    from auxnas.controller.strategies import PPOStrategy

    config = SearchConfig(
        tasks=["a", "b", "c"], model={"num_aux_inputs": 3}, controller={"episodes_per_update": 16}
    )
    strategy = PPOStrategy(config, config.search_space())
    yield strategy
    strategy.close()


def test_policy_samples_only_valid_genotypes(ppo_strategy):
    """Property over sampled episodes: the RLlib module, with masks, never emits an invalid token,
    even after updates that push probability mass around."""
    space = ppo_strategy.space
    rng = random.Random(0)
    for _ in range(4):
        genotypes = ppo_strategy.propose(16)
        for g in genotypes:
            assert space.invalid_token(g.tokens) is None
        ppo_strategy.observe([rng.random() for _ in genotypes])


def test_episodes_carry_previous_tokens_and_the_deferred_reward(ppo_strategy):
    algo = ppo_strategy.algo
    episodes = algo.sample_episodes(3)
    for ep in episodes:
        obs = ep.get_observations()
        actions = np.asarray(ep.get_actions())
        assert len(actions) == ppo_strategy.space.num_tokens
        np.testing.assert_array_equal(obs["prev_token"][1:], actions)  # obs t+1 shows action t
        assert obs["prev_token"][0] == ppo_strategy.space.max_choices  # start symbol
    algo.learn(episodes, [0.25, 0.5, 1.0])
    last = ppo_strategy.space.num_tokens - 1  # the learner may append a bootstrap step after it
    for ep, r in zip(episodes, [0.25, 0.5, 1.0], strict=True):
        rewards = np.asarray(ep.get_rewards())
        assert rewards[last] == pytest.approx(r) and rewards.sum() == pytest.approx(r)
    assert algo.weights_in_sync()


def test_policy_conditions_on_the_previous_token(ppo_strategy):
    from ray.rllib.core.columns import Columns

    module = ppo_strategy.algo.env_runner.module
    space = ppo_strategy.space
    state = {
        k: torch.from_numpy(v).unsqueeze(0).repeat(2, 1, 1) for k, v in module.get_initial_state().items()
    }
    mask = torch.ones(2, 1, space.max_choices)
    batch = {
        Columns.OBS: {
            "prev_token": torch.tensor([[0], [1]]),
            "position": torch.tensor([[5], [5]]),
            "action_mask": mask,
        },
        Columns.STATE_IN: state,
    }
    logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    assert not torch.allclose(logits[0], logits[1])


def test_restored_weights_reach_the_env_runner(ppo_strategy, tmp_path):

    ppo_strategy.observe([0.3] * len(ppo_strategy.propose(4)))
    ppo_strategy.save(tmp_path)
    assert_restores_the_weights(ppo_strategy, tmp_path)


def assert_restores_the_weights(strategy, directory) -> None:
    """A new strategy restored from `directory` samples with `strategy`'s learner weights."""
    from auxnas.controller.strategies import PPOStrategy

    saved = strategy.algo.learner_group.get_weights()["default_policy"]
    other = PPOStrategy(strategy.config, strategy.space)
    try:
        other.restore(directory)  # raises if the env runner did not get the weights
        runner = other.algo.env_runner.module.get_state(inference_only=True)
        for key, value in runner.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(saved[key]))
    finally:
        other.close()


def test_a_checkpoint_written_under_the_old_bare_module_names_still_restores(ppo_strategy, tmp_path):
    """Before the packages moved under `auxnas.`, RLlib pickled class paths such as
    `controller.rl_module.ControllerRLModule`; such a checkpoint must still resume (RLlib's
    restore_from_path loads states into the algorithm we build, it does not unpickle classes)."""
    import sys

    from auxnas.controller import env, ppo, rl_module

    classes = (ppo.DeferredRewardPPO, rl_module.ControllerRLModule, env.TokenEnv)
    old = {c: c.__module__ for c in classes}
    try:  # write it as the old code did: the classes live at their old, bare module paths
        for c in classes:
            c.__module__ = c.__module__.removeprefix("auxnas.")
            sys.modules[c.__module__] = sys.modules[old[c]]
        sys.modules["controller"] = sys.modules["auxnas.controller"]
        ppo_strategy.save(tmp_path)
    finally:
        for c in classes:
            sys.modules.pop(c.__module__, None)
            c.__module__ = old[c]
        sys.modules.pop("controller", None)
    pickled = b"".join(p.read_bytes() for p in tmp_path.rglob("*.pkl"))
    assert b"controller.rl_module" in pickled and b"auxnas.controller" not in pickled
    assert_restores_the_weights(ppo_strategy, tmp_path)


def test_a_restored_strategy_samples_what_the_saved_one_goes_on_to_sample(ppo_strategy, tmp_path):
    """Building the algorithm seeds the process's generators again; the strategy's own state,
    saved with its checkpoint, must win over that, and over any draw made by others between."""
    import pickle

    from auxnas.controller.strategies import PPOStrategy

    ppo_strategy.observe([0.3] * len(ppo_strategy.propose(4)))
    ppo_strategy.save(tmp_path)
    other = PPOStrategy(ppo_strategy.config, ppo_strategy.space)  # seeds the process again
    try:
        other.restore(tmp_path)
        torch.rand(7), np.random.rand(7), random.random()  # someone else draws in between
        expected = [g.tokens for g in ppo_strategy.propose(8)]
        assert [g.tokens for g in other.propose(8)] == expected
        pending = pickle.loads(pickle.dumps(ppo_strategy.pending()))  # as the checkpoint keeps it
        ppo_strategy.observe([0.5] * 8)
        other.restore_pending(pending)
        other.observe([0.5] * 8)
        assert [g.tokens for g in other.propose(8)] == [g.tokens for g in ppo_strategy.propose(8)]
    finally:
        ppo_strategy.observe([0.0] * 8)
        other.close()


def test_generator_state_round_trips_through_json_and_leaves_the_process_alone():
    import json

    from auxnas.controller.generators import OwnedGenerators

    torch.manual_seed(1)
    owned = OwnedGenerators()
    with owned.active():
        torch.manual_seed(5), np.random.seed(5), random.seed(5)
    first = (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())
    torch.manual_seed(1)
    assert torch.rand(3).tolist() == first[0]  # the process's torch stream went on from seed 1
    again = OwnedGenerators(json.loads(json.dumps(owned.state)))
    for gens in (owned, again):
        with gens.active():
            drawn = (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())
        torch.manual_seed(5), np.random.seed(5), random.seed(5)
        assert drawn == (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())
