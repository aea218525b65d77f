"""Fast stand-ins for `evaluator.evaluate.evaluate`, for tests and benchmarks (never imported
by the product).

They have `evaluate`'s signature and live at module level, so Ray can ship them to workers
(`SearchDriver(..., evaluate_fn=target_share)`). They train nothing: the rewards are synthetic.
The `fake-*` evaluators of `auxnas search --evaluator` / `auxnas worker --evaluator` are these
functions (entry points of `auxnas.evaluators` in pyproject.toml).
"""

from __future__ import annotations

import hashlib
import random
import time

from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.result import EvalResult
from auxnas.search_space import Genotype, SearchSpace, sample_tokens

JOINT_REWARD = 0.2


def hidden_target(space: SearchSpace, seed: int) -> list[int]:
    """The known optimum of `target_share`: a valid token sequence drawn from `seed`."""
    return sample_tokens(space, random.Random(f"auxnas-hidden-target-{seed}"))


def target_share_reward(genotype: Genotype, seed: int) -> float:
    target = hidden_target(genotype.space, seed)
    return sum(a == b for a, b in zip(genotype.tokens, target, strict=True)) / len(target)


def _result(reward: float, genotype: Genotype | None, early_stop_below: float | None) -> EvalResult:
    stopped = early_stop_below is not None and reward < early_stop_below
    metrics = {"fake": {"score": reward}}
    return EvalResult(
        ok=True,
        reward=reward,
        metrics=metrics,
        main_params=1000,
        aux_params=0 if genotype is None else 10 * len(genotype.tokens),
        train_seconds=0.001,
        steps=1,
        early_stopped=stopped,
    )


def target_share(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """Reward = share of tokens equal to a hidden target genotype (known optimum 1.0)."""
    if genotype is None:
        return _result(JOINT_REWARD, None, None)
    return _result(target_share_reward(genotype, config.seed), genotype, early_stop_below)


def hashed_reward(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """An instant pseudo-random reward in [0, 1) fixed per genotype (no structure to learn)."""
    if genotype is None:
        return _result(JOINT_REWARD, None, None)
    digest = hashlib.sha256(genotype.canonical_hash().encode()).digest()
    return _result(int.from_bytes(digest[:4], "big") / 2**32, genotype, None)


def sleeping(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    early_stop_below: float | None = None,
    seconds: float = 2.0,
):
    """`target_share` after sleeping `seconds` (use `functools.partial` to set them)."""
    time.sleep(seconds)
    return target_share(config, genotype, early_stop_below=early_stop_below)


def failing_candidates(
    config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None
):
    """Joint and basic succeed; every other genotype raises (a broken training run)."""
    from auxnas.search_space import basic_genotype

    if genotype is None or genotype.tokens == basic_genotype(genotype.space).tokens:
        return target_share(config, genotype)
    raise RuntimeError(f"loss is NaN for {genotype.canonical_hash()}")


def sleeping_candidates(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    early_stop_below: float | None = None,
    seconds: float = 60.0,
):
    """Joint and basic at once, every candidate after `seconds` (to test cancel)."""
    from auxnas.search_space import basic_genotype

    if genotype is not None and genotype.tokens != basic_genotype(genotype.space).tokens:
        time.sleep(seconds)
    return target_share(config, genotype, early_stop_below=early_stop_below)


def recording(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    early_stop_below: float | None = None,
    log_path: str,
):
    """`target_share`, appending the genotype's hash ("joint" for None) to `log_path` first."""
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(("joint" if genotype is None else genotype.canonical_hash()) + "\n")
    return target_share(config, genotype, early_stop_below=early_stop_below)


def sleeping_briefly(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """`target_share` after 0.5 s: slow enough to kill a search in the middle (CLI tests)."""
    return sleeping(config, genotype, early_stop_below=early_stop_below, seconds=0.5)


def crashing_once(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    early_stop_below: float | None = None,
    marker_dir: str,
):
    """`target_share`, but the first attempt at each candidate kills its own Ray worker process
    (a system failure, as when the OS kills a worker or a node dies)."""
    import os
    from pathlib import Path

    from auxnas.search_space import basic_genotype

    if genotype is not None and genotype.tokens != basic_genotype(genotype.space).tokens:
        marker = Path(marker_dir) / genotype.canonical_hash()
        if not marker.exists():
            marker.touch()
            os._exit(1)
    return target_share(config, genotype, early_stop_below=early_stop_below)


def failing_joint(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """The Joint baseline raises as broken data would; everything else succeeds."""
    if genotype is None:
        raise ValueError("dataset returned no images")
    return target_share(config, genotype, early_stop_below=early_stop_below)


def noisy(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    early_stop_below: float | None = None,
    noise: float = 0.01,
):
    """A reward with a known architecture effect and known seed noise: `hashed_reward` (uniform
    in [0, 1) per genotype, 0.2 for Joint) plus a uniform [-noise, noise] term fixed by the
    genotype and `config.seed` (another training seed, another draw)."""
    base = hashed_reward(config, genotype).reward
    key = f"{genotype.canonical_hash() if genotype is not None else 'joint'}-{config.seed}"
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    return _result(base + noise * (2 * u - 1), genotype, None)


# --- known truth for the answer protocol: paired gains with known means and known seed noise -------
GAIN_NOISE = 0.01  # sd of one per-seed paired gain over Joint (noise-std)
SEED_EFFECT = 0.02  # sd of the luck a training seed gives every module alike (cancels when paired)


def _unit_normal(key: str) -> float:
    """A standard normal draw fixed by `key` (Box-Muller on two hashed uniforms)."""
    import math

    digest = hashlib.sha256(key.encode()).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)
    u2 = int.from_bytes(digest[8:16], "big") / 2**64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def true_gain(genotype: Genotype | None, helpful_share: float, effect: float) -> float:
    """The known mean paired gain over Joint: `effect` noise-std for the genotypes a hash puts in
    the first `helpful_share` of [0, 1) (never `basic`), 0 for every other module and Joint."""
    from auxnas.search_space import basic_genotype

    if genotype is None or genotype.tokens == basic_genotype(genotype.space).tokens:
        return 0.0
    digest = hashlib.sha256(f"helpful-{genotype.canonical_hash()}".encode()).digest()
    u = int.from_bytes(digest[:4], "big") / 2**32
    return effect * GAIN_NOISE if u < helpful_share else 0.0


def known_gain_reward(genotype: Genotype | None, seed: int, helpful_share: float, effect: float) -> float:
    """0.5 + the seed's shared effect + the module's true gain + its own noise at that seed; the
    per-seed paired gain over Joint then has mean `true_gain` and sd GAIN_NOISE exactly."""
    import math

    key = "joint" if genotype is None else genotype.canonical_hash()
    own = _unit_normal(f"own-{key}-{seed}") * GAIN_NOISE / math.sqrt(2.0)
    shared = _unit_normal(f"seed-{seed}") * SEED_EFFECT
    return 0.5 + shared + true_gain(genotype, helpful_share, effect) + own


def no_gain(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """Data where no auxiliary module helps: every module's true paired gain over Joint is 0, each
    training seed adds known noise (`known_gain_reward`). The answer must be "not recommended"."""
    return _result(known_gain_reward(genotype, config.seed, 0.0, 0.0), genotype, None)


def some_gain(config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None):
    """Half of the genotypes (never `basic`) help by 4 noise-std; the others and basic not at all."""
    return _result(known_gain_reward(genotype, config.seed, 0.5, 4.0), genotype, None)


def recording_seeds(
    config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None, log_path: str
):
    """`some_gain`, appending "<hash or joint>:<training seed>" to `log_path` first."""
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(f"{'joint' if genotype is None else genotype.canonical_hash()}:{config.seed}\n")
    return some_gain(config, genotype)
