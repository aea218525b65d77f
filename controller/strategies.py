"""Search strategies: propose a batch of genotypes, learn from their rewards, save and restore.

    strategy = make_strategy("ppo", config, space)
    genotypes = strategy.propose(8)
    stats = strategy.observe([0.4, 0.6, ...])     # one reward per proposed genotype, same order
    strategy.save(directory); strategy.restore(directory)
    payload = strategy.pending()                  # the proposed batch, before it is observed
    genotypes = strategy.restore_pending(payload) # after restore(): the same batch again

The driver (`controller.driver.SearchDriver`) does the evaluation, caching and bookkeeping, so
`ppo`, `random` and `evolution` spend the same budget the same way. What it passes to `observe` for each
genotype is its paired gain over Joint at its first training seed (reward minus Joint's reward at
the search's `seed`), once the iteration's evaluations have ended; racing seeds never reach it.
"""

from __future__ import annotations

import contextlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from auxnas.controller.config import SearchConfig
from auxnas.controller.generators import OwnedGenerators
from auxnas.search_space import Genotype, SearchSpace, sample_genotype

STRATEGIES = ("ppo", "random", "evolution")
GENERATORS_FILE = "generators.json"  # the PPO strategy's generator state, next to its algorithm


class Strategy(ABC):
    name: str

    @abstractmethod
    def propose(self, n: int) -> list[Genotype]:
        """`n` genotypes to evaluate next (duplicates possible; the driver caches them)."""

    @abstractmethod
    def observe(self, rewards: Sequence[float]) -> dict[str, float]:
        """Rewards of the last `propose` batch, in its order; returns learner statistics."""

    @abstractmethod
    def pending(self) -> Any:
        """The last `propose` batch as picklable data (saved before its trials are stored)."""

    @abstractmethod
    def restore_pending(self, payload: Any) -> list[Genotype]:
        """After `restore` of the state saved before that batch: make it the batch awaiting
        `observe`, and leave the strategy where it was after proposing it; returns its genotypes."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the whole strategy state into `directory` (created by the caller, empty)."""

    @abstractmethod
    def restore(self, directory: Path) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release what the strategy holds (RLlib algorithm)."""


class RandomStrategy(Strategy):
    """Uniform over valid genotypes: each token uniform over its valid choices."""

    name = "random"

    def __init__(self, config: SearchConfig, space: SearchSpace) -> None:
        self.space = space
        self.rng = random.Random(f"auxnas-random-{config.seed}")
        self._pending = 0
        self._batch: list[Genotype] = []

    def propose(self, n: int) -> list[Genotype]:
        self._pending = n
        self._batch = [sample_genotype(self.space, self.rng) for _ in range(n)]
        return self._batch

    def pending(self) -> Any:
        return [list(g.tokens) for g in self._batch]

    def restore_pending(self, payload: Any) -> list[Genotype]:
        # drawing again from the restored generator reproduces the batch and its state after it
        batch = self.propose(len(payload))
        if [list(g.tokens) for g in batch] != payload:
            raise ValueError("the restored random state does not reproduce the proposed batch")
        return batch

    def observe(self, rewards: Sequence[float]) -> dict[str, float]:
        if len(rewards) != self._pending:
            raise ValueError(f"expected {self._pending} rewards, got {len(rewards)}")
        self._pending = 0
        return {}

    def save(self, directory: Path) -> None:
        version, internal, gauss = self.rng.getstate()
        state = {"strategy": self.name, "rng": [version, list(internal), gauss]}
        (Path(directory) / "random_state.json").write_text(json.dumps(state))

    def restore(self, directory: Path) -> None:
        state = json.loads((Path(directory) / "random_state.json").read_text())
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def close(self) -> None:
        pass


class EvolutionStrategy(Strategy):
    """Regularized evolution (Real et al. 2019): the population is the last
    `controller.population` evaluated genotypes; a child is a one-token mutation of the best of
    `controller.tournament` members drawn at random; the oldest member dies. Until the population
    is full, proposals are uniform random genotypes."""

    name = "evolution"

    def __init__(self, config: SearchConfig, space: SearchSpace) -> None:
        self.space = space
        self.size = config.controller.population
        self.tournament = min(config.controller.tournament, self.size)
        self.rng = random.Random(f"auxnas-evolution-{config.seed}")
        self.population: list[tuple[list[int], float]] = []  # oldest first
        self._batch: list[Genotype] = []

    def propose(self, n: int) -> list[Genotype]:
        if len(self.population) < self.size:
            self._batch = [sample_genotype(self.space, self.rng) for _ in range(n)]
        else:
            self._batch = [Genotype(self.space, self._child()) for _ in range(n)]
        return self._batch

    def _child(self) -> tuple[int, ...]:
        parent = max(self.rng.sample(self.population, self.tournament), key=lambda m: m[1])[0]
        counts = self.space.choice_counts()
        i = self.rng.choice([p for p, c in enumerate(counts) if c > 1])
        child = list(parent)
        child[i] = self.rng.choice([v for v in range(counts[i]) if v != parent[i]])
        return tuple(child)

    def pending(self) -> Any:
        return [list(g.tokens) for g in self._batch]

    def restore_pending(self, payload: Any) -> list[Genotype]:
        batch = self.propose(len(payload))
        if [list(g.tokens) for g in batch] != payload:
            raise ValueError("the restored evolution state does not reproduce the proposed batch")
        return batch

    def observe(self, rewards: Sequence[float]) -> dict[str, float]:
        if len(rewards) != len(self._batch):
            raise ValueError(f"expected {len(self._batch)} rewards, got {len(rewards)}")
        self.population += [(list(g.tokens), float(r)) for g, r in zip(self._batch, rewards, strict=True)]
        del self.population[: max(0, len(self.population) - self.size)]
        self._batch = []
        return {"population_best": max(r for _, r in self.population)}

    def save(self, directory: Path) -> None:
        version, internal, gauss = self.rng.getstate()
        state = {
            "strategy": self.name,
            "rng": [version, list(internal), gauss],
            "population": self.population,
        }
        (Path(directory) / "evolution_state.json").write_text(json.dumps(state))

    def restore(self, directory: Path) -> None:
        state = json.loads((Path(directory) / "evolution_state.json").read_text())
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.population = [(list(t), float(r)) for t, r in state["population"]]

    def close(self) -> None:
        pass


class PPOStrategy(Strategy):
    """The LSTM controller trained by PPO with deferred rewards (`controller.ppo`)."""

    name = "ppo"

    def __init__(self, config: SearchConfig, space: SearchSpace) -> None:
        from auxnas.controller.ppo import build_ppo_config

        self.config = config
        self.space = space
        # building seeds the process's generators (config.seed); the strategy keeps that state as
        # its own and checkpoints it, so a resumed search samples what an uninterrupted one would
        self.generators = OwnedGenerators()
        with self.generators.active():
            self.algo = build_ppo_config(config, space).build_algo()
        self._episodes: list[Any] = []

    def propose(self, n: int) -> list[Genotype]:
        with _one_torch_thread(), self.generators.active():
            self._episodes = self.algo.sample_episodes(n)
        if len(self._episodes) != n:
            raise RuntimeError(f"sampled {len(self._episodes)} episodes, wanted {n}")
        return self._genotypes()

    def _genotypes(self) -> list[Genotype]:
        return [Genotype(self.space, tuple(self.algo.episode_tokens(e))) for e in self._episodes]

    def pending(self) -> Any:
        return {"episodes": [e.get_state() for e in self._episodes], "generators": self.generators.state}

    def restore_pending(self, payload: Any) -> list[Genotype]:
        from ray.rllib.env.single_agent_episode import SingleAgentEpisode

        if isinstance(payload, list):  # written before batches carried the generator state
            payload = {"episodes": payload, "generators": None}
        self._episodes = [SingleAgentEpisode.from_state(state) for state in payload["episodes"]]
        if payload["generators"] is not None:
            self.generators.state = payload["generators"]
        return self._genotypes()

    def observe(self, rewards: Sequence[float]) -> dict[str, float]:
        if len(rewards) != len(self._episodes):
            raise ValueError(f"expected {len(self._episodes)} rewards, got {len(rewards)}")
        with _one_torch_thread(), self.generators.active():
            stats = self.algo.learn(self._episodes, list(rewards))
        self._episodes = []
        return stats

    def save(self, directory: Path) -> None:
        self.algo.save_to_path(str(Path(directory).resolve() / "algorithm"))
        (Path(directory) / GENERATORS_FILE).write_text(json.dumps(self.generators.state))

    def restore(self, directory: Path) -> None:
        path = Path(directory).resolve() / "algorithm"
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no RLlib checkpoint")
        with self.generators.active():
            self.algo.restore_from_path(str(path))
        generators = Path(directory) / GENERATORS_FILE
        if generators.is_file():  # absent from checkpoints written before it was kept
            self.generators.state = json.loads(generators.read_text())
        # restore_from_path syncs the env runner already; do it again and check it took
        self.algo.sync_env_runner_weights()
        if not self.algo.weights_in_sync():
            raise RuntimeError("restored controller weights did not reach the env runner")

    def close(self) -> None:
        self.algo.stop()


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """The controller's tensors are tiny: one thread is faster than several, and on a machine
    whose cores run evaluations, extra OpenMP threads only contend with them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_strategy(name: str, config: SearchConfig, space: SearchSpace) -> Strategy:
    if name == "ppo":
        return PPOStrategy(config, space)
    if name == "random":
        return RandomStrategy(config, space)
    if name == "evolution":
        return EvolutionStrategy(config, space)
    raise ValueError(f"search.strategy: unknown strategy {name!r} (one of {list(STRATEGIES)})")
