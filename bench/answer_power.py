"""Power and false-positive tables of the trustworthy answer, from simulated searches on fakes.

Run: .venv/bin/python bench/answer_power.py (prints Markdown; docs/results.md, "The answer's error
rates", holds its output). The simulated searches are controller/answer_simulation.py.
Units: true gains in noise-std (the standard deviation of one per-seed paired gain over Joint).
Defaults unless a table says otherwise: rungs (1, 3), top quarter, k = 3 finalists + basic,
confirm_seeds = 5, 90% intervals (one-sided alpha 0.05), fallback correction.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, when not installed

from auxnas.controller.answer_simulation import Scenario, markdown, power_table, rates  # noqa: E402


def headline(sims: int) -> str:
    rows = [
        (
            "false positive",
            "12 candidates, nothing helps (all 0, basic 0)",
            Scenario.none_helps(12),
            "recommend",
        ),
        ("false positive", "40 candidates, nothing helps", Scenario.none_helps(40), "recommend"),
        (
            "false positive",
            "12 candidates all -0.3 (harmful), basic 0",
            Scenario.none_helps(12, gain=-0.3),
            "recommend",
        ),
        ("power", "12 candidates, one at +2, rest and basic 0", Scenario.one_helps(12, 2.0), "find"),
        ("power", "40 candidates, one at +2, rest and basic 0", Scenario.one_helps(40, 2.0), "find"),
        (
            "power (basic)",
            "12 candidates at 0, basic +1.1 (as on the real benchmark)",
            Scenario.none_helps(12, basic=1.1),
            "find",
        ),
    ]
    out = ["| what | scenario | rate |", "|---|---|---|"]
    for what, name, sc, field in rows:
        r = rates(sc, sims, seed=101)
        out.append(
            f"| {what} ({'any module recommended' if field == 'recommend' else 'the true best recommended'}) "
            f"| {name} | {getattr(r, field):.1%} |"
        )
    return "\n".join(out)


def corrections(sims: int) -> str:
    scen = [
        ("nothing helps", Scenario.none_helps(12), "recommend"),
        ("one +2", Scenario.one_helps(12, 2.0), "find"),
        ("one +1.5", Scenario.one_helps(12, 1.5), "find"),
        ("basic +1.1", Scenario.none_helps(12, basic=1.1), "find"),
        ("basic +2", Scenario.none_helps(12, basic=2.0), "find"),
        ("one +2, basic +1.1", Scenario.one_helps(12, 2.0, basic=1.1), "find"),
    ]
    head = (
        "| correction | "
        + " | ".join(f"{n} ({'recommend' if f == 'recommend' else 'find'})" for n, _, f in scen)
        + " |"
    )
    out = [head, "|" + "---|" * (len(scen) + 1)]
    for corr in ("fallback", "fixed_sequence", "holm", "none"):
        cells = [f"{getattr(rates(sc, sims, seed=202, correction=corr), f):.1%}" for _, sc, f in scen]
        out.append(f"| {corr} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    start = time.time()
    print("# Error rates of the answer (simulated searches on fakes)\n")
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()})\n"
    )
    print("command: `.venv/bin/python bench/answer_power.py`\n")
    print("Unit: noise-std = sd of one per-seed paired gain over Joint. Defaults: rungs (1, 3), top quarter,")
    print(
        "k = 3 finalists + basic, confirm_seeds = 5, 90% intervals (one-sided alpha 0.05), fallback correction.\n"
    )
    print("## Headline rates (1000 searches each)\n")
    print(headline(1000) + "\n")
    print("## Corrections compared on the same simulated data (12 candidates, 400 searches each)\n")
    print(
        "recommend = any module recommended (a false positive here); find = the true best module recommended.\n"
    )
    print(corrections(400) + "\n")
    for n in (12, 40):
        print(f"## power_table: {n} candidates, 200 searches per cell\n")
        print("Cells: find rate (the helpful candidate recommended), then in brackets any-module rate.")
        print("Row 0: nothing helps; the cell is the false-positive rate.\n")
        print(markdown(power_table(n_candidates=n, sims=200)) + "\n")
    print(f"elapsed: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
