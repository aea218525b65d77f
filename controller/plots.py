"""PNG plots of a finished (or running) search, drawn from its trial records.

`reward`: each trial's reward with the best-so-far line and the Joint / basic baselines.
`ops`: how often each adaptor op and aggregator is sampled as the search goes on (paper Fig. 4).
`genotype`: the answer's genotype's cells per task (before an answer, the best trial's).
`finalists`: each confirmed module's paired gain over Joint at each fresh seed, with its mean.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from auxnas.controller.export import best_trial, is_best_eligible  # noqa: E402
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import TrialRecord  # noqa: E402
from auxnas.search_space import ADAPTOR_OPS, AGGREGATORS, Genotype  # noqa: E402

PLOT_NAMES = ("reward", "ops", "genotype", "calibration", "finalists")


class PlotError(ValueError):
    """The search has nothing to draw for this plot yet."""


def render(
    name: str, trials: Sequence[TrialRecord], title: str = "", answer: dict[str, Any] | None = None
) -> bytes:
    """`answer`: the search's stored answer (`genotype` draws its module, `finalists` its verdict)."""
    if name not in PLOT_NAMES:
        raise PlotError(f"unknown plot {name!r} (one of {list(PLOT_NAMES)})")
    if name in ("genotype", "finalists"):
        fig = {"genotype": _genotype, "finalists": _finalists}[name](list(trials), title, answer)
    else:
        draw = {"reward": _reward, "ops": _ops, "calibration": _calibration}[name]
        fig = draw(list(trials), title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _candidates(trials: list[TrialRecord]) -> list[TrialRecord]:
    return sorted((t for t in trials if t.kind == "candidate" and t.phase == "search"), key=lambda t: t.index)


def _reward(trials: list[TrialRecord], title: str):
    cands = _candidates(trials)
    if not cands:
        raise PlotError("no candidate trials yet")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    xs = list(range(1, len(cands) + 1))
    ok = [
        (x, t.reward)
        for x, t in zip(xs, cands, strict=True)
        if t.status in (TrialStatus.SUCCEEDED, TrialStatus.PRUNED)
    ]
    cached = [(x, t.reward) for x, t in zip(xs, cands, strict=True) if t.status == TrialStatus.CACHED]
    failed = [x for x, t in zip(xs, cands, strict=True) if t.status == TrialStatus.FAILED]
    if ok:
        ax.scatter(*zip(*ok, strict=True), s=14, color="tab:blue", label="evaluated")
    if cached:
        ax.scatter(*zip(*cached, strict=True), s=14, facecolors="none", edgecolors="tab:blue", label="cached")
    best, line = None, []
    for t in cands:  # the best-trial rule, over the candidates so far
        if is_best_eligible(t):
            best = t.reward if best is None else max(best, t.reward)
        line.append(best)
    ax.step(xs, line, where="post", color="tab:red", label="best so far")
    lo = min((r for _, r in ok + cached), default=0.0)
    for kind, color in (("joint", "black"), ("basic", "tab:green")):
        base = next(
            (
                t
                for t in trials
                if t.kind == kind and t.phase == "search" and t.status == TrialStatus.SUCCEEDED
            ),
            None,
        )
        if base is not None:
            ax.axhline(base.reward, color=color, ls="--", lw=1, label=f"{kind} {base.reward:.4f}")
            lo = min(lo, base.reward)
    if failed:
        ax.scatter(failed, [lo] * len(failed), marker="x", color="gray", label="failed")
    ax.set_xlabel("candidate")
    ax.set_ylabel("reward (geometric mean on meta-val)")
    ax.set_title(title or "reward per trial")
    ax.legend(fontsize=8, loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig


def _ops(trials: list[TrialRecord], title: str):
    cands = [t for t in _candidates(trials) if t.genotype is not None]
    if not cands:
        raise PlotError("no candidate trials yet")
    bins = max(1, min(10, len(cands) // 4))
    size = -(-len(cands) // bins)
    groups = [cands[i : i + size] for i in range(0, len(cands), size)]
    xs = [g[-1].index for g in groups]
    fig, (ax_op, ax_agg) = plt.subplots(1, 2, figsize=(11, 4.2))
    for names, ax, field, single in (
        (ADAPTOR_OPS, ax_op, "adaptors", False),
        (AGGREGATORS, ax_agg, "aggregator", True),
    ):
        for name in names:
            shares = []
            for g in groups:
                picks = [
                    v for t in g for c in t.genotype["cells"] for v in ([c[field]] if single else c[field])
                ]
                shares.append(picks.count(name) / len(picks))
            ax.plot(xs, shares, marker="o", ms=3, label=name)
        ax.set_xlabel("trial index (end of window)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("share of sampled choices")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_op.set_title("adaptor ops")
    ax_agg.set_title("aggregators")
    fig.suptitle(title or "sampled operators over the search")
    return fig


def _genotype(trials: list[TrialRecord], title: str, answer: dict[str, Any] | None = None):
    from auxnas.controller.export import answer_trial

    index = answer_trial(answer)
    chosen = next((t for t in trials if t.index == index), None) if index is not None else best_trial(trials)
    if chosen is None or chosen.genotype is None:
        raise PlotError("no scored genotype yet")
    what = (
        "best genotype"
        if index is None
        else "recommended"
        if answer.get("recommended")
        else "not recommended"
    )
    return draw_genotype(Genotype.from_json(chosen.genotype), title or f"{what} (trial {chosen.index})")


def _finalists(trials: list[TrialRecord], title: str, answer: dict[str, Any] | None = None):
    """One row per confirmed module: its paired gain over Joint at each fresh seed (dots), the mean
    (bar) and 0 (Joint); the verdict line below."""
    from auxnas.controller.pairing import BASIC_KEY, CONFIRM_GROUP, group_rewards

    group = group_rewards(trials, CONFIRM_GROUP, default_seed=0)
    modules = [k for k in group.modules if group.gains(k)]
    if not modules:
        raise PlotError("no confirmation trials (not reached yet, or skipped: search.confirm.seeds 0)")
    fig, ax = plt.subplots(figsize=(7.5, 0.7 * len(modules) + 1.6))
    for y, key in enumerate(modules):
        gains = list(group.gains(key).values())
        color = "tab:green" if key == BASIC_KEY else "tab:blue"
        ax.scatter(gains, [y] * len(gains), s=20, color=color, alpha=0.7)
        mean = sum(gains) / len(gains)
        ax.plot([mean, mean], [y - 0.3, y + 0.3], color=color, lw=2.5)
    ax.axvline(0.0, color="black", lw=1, ls="--", label="Joint")
    ax.set_yticks(range(len(modules)))
    ax.set_yticklabels([k if k == BASIC_KEY else k[:8] for k in modules])
    ax.invert_yaxis()
    ax.set_xlabel("paired gain over Joint at each fresh training seed (bar: mean)")
    ax.set_title(title or "confirmation: finalists and basic")
    if answer and answer.get("verdict"):
        fig.text(0.01, -0.02, answer["verdict"], fontsize=8, ha="left", va="top", wrap=True)
    return fig


def calibration_points(trials: list[TrialRecord]) -> dict[str, dict[int, float]]:
    """Reward per replicate of each calibration genotype ("joint", "basic" or its hash)."""
    points: dict[str, dict[int, float]] = {}
    for t in trials:
        if t.phase == "calibration" and t.status == TrialStatus.SUCCEEDED and t.reward is not None:
            label = t.kind if t.kind in ("joint", "basic") else t.genotype_hash
            points.setdefault(label, {})[t.replicate] = t.reward
    return points


def _calibration(trials: list[TrialRecord], title: str):
    """Replicate 1 against replicate 2: a reward that ranks architectures lies along the diagonal."""
    points = {k: v for k, v in calibration_points(trials).items() if 0 in v and 1 in v}
    if not points:
        raise PlotError("no calibration trials in two replicates")
    fig, ax = plt.subplots(figsize=(5.2, 5))
    others = [(v[0], v[1]) for k, v in points.items() if k not in ("joint", "basic")]
    if others:
        ax.scatter(*zip(*others, strict=True), s=22, color="tab:blue", label="random genotypes")
    for kind, color, marker in (("basic", "tab:green", "s"), ("joint", "black", "*")):
        if kind in points:
            ax.scatter([points[kind][0]], [points[kind][1]], s=90, color=color, marker=marker, label=kind)
    values = [x for v in points.values() for x in (v[0], v[1])]
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="gray", lw=1, ls=":")
    if "joint" in points:
        ax.axvline(points["joint"][0], color="black", lw=0.8, ls="--")
        ax.axhline(points["joint"][1], color="black", lw=0.8, ls="--")
    ax.set_xlabel("reward, replicate 1")
    ax.set_ylabel("reward, replicate 2")
    ax.set_title(title or "calibration: replicate 1 vs 2")
    ax.legend(fontsize=8, loc="best")
    return fig


def draw_genotype(genotype: Genotype, title: str = ""):
    """A grid of cells (rows: tasks, columns: p); each box lists its two branches and aggregator.

    Arrows show cell-to-cell inputs; feature inputs are named inside the box.
    """
    space = genotype.space
    P, T = space.num_inputs, space.num_tasks
    fig, ax = plt.subplots(figsize=(3.3 * P + 1.5, 1.7 * T + 0.8))
    pos = {f"{space.tasks[t]}:{p}": (3.3 * p, -1.7 * t) for p in range(P) for t in range(T)}
    for cell in genotype.cells:
        x, y = pos[f"{cell.task}:{cell.index}"]
        lines = [f"{cell.task}:{cell.index}"]
        lines += [f"{ref} > {op}" for ref, op in zip(cell.inputs, cell.adaptors, strict=True)]
        lines.append(f"{cell.aggregator}")
        ax.text(
            x,
            y,
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=7.5,
            family="monospace",
            bbox={"boxstyle": "round", "fc": "#f5e6cc", "ec": "black"},
        )
        for ref in set(cell.inputs):
            if not ref.startswith("feature:"):
                sx, sy = pos[ref]
                ax.annotate(
                    "",
                    xy=(x - 1.2, y),
                    xytext=(sx + 1.2, sy),
                    arrowprops={
                        "arrowstyle": "->",
                        "color": "tab:blue",
                        "alpha": 0.6,
                        "connectionstyle": "arc3,rad=0.15",
                    },
                )
    for t, task in enumerate(space.tasks):
        ax.text(3.3 * (P - 1) + 1.5, -1.7 * t, f"-> aux head ({task})", fontsize=8, va="center")
    ax.set_xlim(-1.6, 3.3 * (P - 1) + 3.2)
    ax.set_ylim(-1.7 * (T - 1) - 0.9, 0.9)
    ax.axis("off")
    ax.set_title(title or "genotype")
    return fig
