"""The surrogate of a benchmark's reward: an ensemble that predicts a genotype's mean reward.

    model = fit_ensemble(features, targets, weights, kind="gbt", members=10, seed=0)
    mean, spread = model.predict(features)          # ensemble mean and std per row

Features (`features`): for every cell, how often each input and each adaptor op appears among
its two branches (a cell's branch order does not matter, as for `Genotype.canonical_hash`) and
its aggregator, one-hot; then the counts of each adaptor op over all cells.

Kinds: `gbt` (scikit-learn's HistGradientBoostingRegressor), `ridge` (ridge regression on the
features, its penalty chosen by leave-one-out) and `mlp` (one hidden layer of 32 units). Every
member is fitted on a bootstrap resample of the genotypes (bagging), from its own seed, so the
ensemble is the same for the same inputs and its spread says how unsure the fit is.

`held_out` scores a kind by k-fold cross-validation over genotypes: every genotype is predicted
by an ensemble that never saw it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auxnas.search_space import SearchSpace
from auxnas.search_space.space import TOKENS_PER_CELL

MODEL_KINDS = ("gbt", "ridge", "mlp")


def feature_matrix(space: SearchSpace, tokens: Sequence[Sequence[int]]) -> np.ndarray:
    """One row per token sequence (module docstring)."""
    n_ops, n_agg = len(space.adaptor_ops), len(space.aggregators)
    widths = [space.num_inputs + p * (t + 1) for p, t in space.cells()]
    size = sum(w + n_ops + n_agg for w in widths) + n_ops
    out = np.zeros((len(tokens), size), dtype=np.float64)
    for row, toks in enumerate(tokens):
        col = 0
        for c, width in enumerate(widths):
            a, b, o1, o2, g = toks[c * TOKENS_PER_CELL : (c + 1) * TOKENS_PER_CELL]
            out[row, col + a] += 1
            out[row, col + b] += 1
            col += width
            out[row, col + o1] += 1
            out[row, col + o2] += 1
            out[row, size - n_ops + o1] += 1
            out[row, size - n_ops + o2] += 1
            col += n_ops
            out[row, col + g] = 1
            col += n_agg
    return out


def _member(kind: str, seed: int):  # noqa: ANN202
    if kind == "gbt":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=8,
            min_samples_leaf=8,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    if kind == "ridge":
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=np.logspace(-2, 3, 16))
    if kind == "mlp":
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=(32,), alpha=1.0, max_iter=2000, random_state=seed),
        )
    raise ValueError(f"model: one of {list(MODEL_KINDS)}, got {kind!r}")


@dataclass
class Ensemble:
    members: list
    centre: float  # targets are fitted as deviations from their weighted mean
    scale: float

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) over the members, per row of `x`."""
        preds = self.member_predictions(x)
        return preds.mean(axis=0), preds.std(axis=0)

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """members x rows."""
        with _one_thread():
            preds = np.stack([m.predict(x) for m in self.members])
        return preds * self.scale + self.centre


def _one_thread():  # noqa: ANN202
    """The fits and predictions are small: OpenMP threads only add start-up and contention
    (hundreds of ms per prediction on a loaded machine, against about 1 ms on one thread)."""
    return _threadpools().limit(limits=1)


@functools.cache
def _threadpools():  # noqa: ANN202
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, kind: str = "gbt", members: int = 10, seed: int = 0
) -> Ensemble:
    """`members` models of `kind`, each on a bootstrap resample of the rows (weights `w`: the
    seeds behind each genotype's mean)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model: one of {list(MODEL_KINDS)}, got {kind!r}")
    centre = float(np.average(y, weights=w))
    scale = float(np.sqrt(np.average((y - centre) ** 2, weights=w))) or 1.0
    z = (y - centre) / scale
    rng = np.random.default_rng(seed)
    fitted = []
    for i in range(members):
        idx = rng.integers(0, len(y), len(y))
        model = _member(kind, seed * 1000 + i)
        _fit(model, x[idx], z[idx], w[idx])
        fitted.append(model)
    return Ensemble(fitted, centre, scale)


def _fit(model, x: np.ndarray, z: np.ndarray, w: np.ndarray) -> None:  # noqa: ANN001
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline

    with warnings.catch_warnings(), _one_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if isinstance(model, Pipeline):  # the MLP takes no sample weights
            model.fit(x, z)
        else:
            model.fit(x, z, sample_weight=w)


def held_out(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, kind: str, members: int, seed: int = 0, folds: int = 5
) -> np.ndarray:
    """Each row's prediction by an ensemble fitted on the other folds (rows are genotypes)."""
    order = np.random.default_rng(seed + 1).permutation(len(y))
    pred = np.empty(len(y))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        model = fit_ensemble(x[train], y[train], w[train], kind=kind, members=members, seed=seed)
        pred[test] = model.predict(x[test])[0]
    return pred


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Spearman and Kendall (tau-b) between two score lists of the same items."""
    from scipy.stats import kendalltau, spearmanr

    if len(a) < 3:
        return {"spearman": float("nan"), "kendall": float("nan"), "n": len(a)}
    return {
        "spearman": float(spearmanr(a, b).statistic),
        "kendall": float(kendalltau(a, b).statistic),
        "n": len(a),
    }
