"""Plots render real PNGs from trial records and refuse to draw from nothing."""

from __future__ import annotations

import random

import pytest

from auxnas.controller.plots import PLOT_NAMES, PlotError, render
from auxnas.controller.storage import TrialRecord
from auxnas.search_space import SearchSpace, basic_genotype, sample_genotype

PNG = b"\x89PNG\r\n\x1a\n"


def _trials(n: int) -> list[TrialRecord]:
    space = SearchSpace(3, ("segmentation", "depth"))
    rng = random.Random(0)
    out = [
        TrialRecord(0, "joint", "succeeded", reward=0.3),
        TrialRecord(1, "basic", "succeeded", genotype=basic_genotype(space).to_json(), reward=0.33),
    ]
    for i in range(n):
        g = sample_genotype(space, rng)
        status = "failed" if i % 7 == 3 else ("cached" if i % 5 == 4 else "succeeded")
        out.append(
            TrialRecord(
                i + 2,
                "candidate",
                status,
                tokens=list(g.tokens),
                genotype=g.to_json(),
                reward=None if status == "failed" else rng.random(),
            )
        )
    return out


@pytest.mark.parametrize("name", [n for n in PLOT_NAMES if n not in ("calibration", "finalists")])
def test_each_plot_renders_png(name):
    data = render(name, _trials(30), title="t")
    assert data.startswith(PNG) and len(data) > 5000


def _confirmation(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Two finalists, basic and Joint on three fresh seeds."""
    rows, rng = [], random.Random(1)
    sources = [t for t in trials if t.kind == "candidate" and t.status == "succeeded"][:2] + [
        trials[1],
        trials[0],
    ]
    for seed in (10_000, 10_001, 10_002):
        for src in sources:
            rows.append(
                TrialRecord(
                    len(trials) + len(rows),
                    src.kind,
                    "succeeded",
                    genotype=src.genotype,
                    genotype_hash=src.genotype_hash or (None if src.kind == "joint" else f"h{src.index}"),
                    reward=0.5 + rng.random() / 10,
                    phase="confirmation",
                    seed=seed,
                )
            )
    return rows


def test_finalists_plot_needs_confirmation_and_shows_the_verdict():
    trials = _trials(10)
    with pytest.raises(PlotError, match="no confirmation trials"):
        render("finalists", trials)
    verdict = {"verdict": "no module beats Joint on 3 fresh seeds (+0.002 [-0.010, +0.012])"}
    data = render("finalists", trials + _confirmation(trials), title="t", answer=verdict)
    assert data.startswith(PNG) and len(data) > 5000


def test_plots_need_candidates_and_known_name():
    with pytest.raises(PlotError, match="no candidate"):
        render("reward", _trials(0)[:1])
    with pytest.raises(PlotError, match="unknown plot"):
        render("loss", _trials(3))


def test_calibration_scatter_needs_two_replicates():
    from dataclasses import replace

    with pytest.raises(PlotError, match="no calibration trials"):
        render("calibration", _trials(5))
    cal = [
        replace(t, phase="calibration", replicate=r, status="succeeded", reward=0.5 + 0.01 * i + 0.001 * r)
        for r in (0, 1)
        for i, t in enumerate(_trials(8))
    ]
    assert render("calibration", cal, title="t").startswith(PNG)
