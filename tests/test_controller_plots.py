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


@pytest.mark.parametrize("name", [n for n in PLOT_NAMES if n != "calibration"])
def test_each_plot_renders_png(name):
    data = render(name, _trials(30), title="t")
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
