"""The one-line answer to "did auxiliary learning help here?", shown at the end of a search,
by `GET /searches/{id}` and by `auxnas status ID`.

The gain of the best auxiliary module over Joint is given in units of the reward's replicate
noise when the search calibrated (`fidelity.noise`): a gain below 1x noise is not evidence.
"""

from __future__ import annotations

NOT_RECOMMENDED = "no auxiliary module beat Joint: auxiliary learning is not recommended on this data"


def verdict(best_reward: float | None, joint_reward: float | None, noise: float | None = None) -> str | None:
    """None while there is nothing to compare (no Joint or no scored module yet)."""
    if best_reward is None or joint_reward is None:
        return None
    gain = best_reward - joint_reward
    if gain <= 0:
        return NOT_RECOMMENDED
    head = f"best auxiliary module: {gain:+.4f} over Joint"
    if noise is None:
        return f"{head} (replicate noise unknown: `auxnas calibrate` or search.calibrate measures it)"
    if noise <= 0:
        return f"{head} (replicate noise 0: every replicate scored the same)"
    ratio = gain / noise
    within = ", within the noise" if ratio < 1 else ""
    return f"{head} ({ratio:.1f}x noise{within})"


def verdict_of(summary_best: float | None, baselines: dict, fidelity: dict | None) -> str | None:
    noise = (fidelity or {}).get("noise")
    return verdict(summary_best, baselines.get("joint"), noise if isinstance(noise, (int, float)) else None)
