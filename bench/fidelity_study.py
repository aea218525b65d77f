"""The reward-fidelity study (docs/results.md "Reward fidelity"): table and frontier plot from
the `auxnas calibrate` figures kept in docs/data/fidelity/.

    .venv/bin/python bench/fidelity_study.py [--markdown] [--plot docs/img/fidelity_frontier.png]

Every row is one `calibration.json` (written by `auxnas calibrate ... -o DIR`), copied to
docs/data/fidelity/<name>.json; `ROWS` names them. Prints, per row: replicate noise (pooled
within-genotype std), architecture spread (std of the genotype means), their ratio, Spearman
between the replicates with its bootstrap 90% interval, Kendall, the share of genotypes that
beat Joint in every replicate and the median CPU seconds per candidate. The plot is Spearman
(with its interval) against CPU seconds per candidate, one marker per benchmark.

One column is not in calibration.json: the *centred* noise, the same pooled std after each
replicate's mean over the genotypes is subtracted. A replicate's seed moves every candidate
together (common random numbers: same init, same batches, same warm start); that shift is in
`noise` but cannot reorder candidates within a search, so the centred noise is what competes
with the spread.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "fidelity"
PLOT = ROOT / "docs" / "img" / "fidelity_frontier.png"

# (file stem in docs/data/fidelity, benchmark, setting as the table shows it)
ROWS = [
    ("tiny-landed", "synthetic-tiny", "landed preset"),
    ("tiny-warm", "synthetic-tiny", "pretrained auto (200 steps)"),
    ("tiny-ema", "synthetic-tiny", "ema_decay 0.95"),
    ("tiny-bn", "synthetic-tiny", "bn_recalibration 8"),
    ("tiny-evals", "synthetic-tiny", "reward_evals 4"),
    ("tiny-seeds2", "synthetic-tiny", "reward_seeds 2"),
    ("tiny-combo", "synthetic-tiny", "pretrained auto + reward_seeds 3"),
    ("tiny-landed-s100", "synthetic-tiny", "landed preset, seed 100"),
    ("tiny-combo-s100", "synthetic-tiny", "pretrained auto + reward_seeds 3, seed 100"),
    ("hard-landed", "synthetic-hard", "landed preset"),
    ("hard-combo", "synthetic-hard", "pretrained auto + reward_seeds 3"),
]
COLUMNS = (
    "benchmark",
    "setting",
    "noise",
    "spread",
    "spread/noise",
    "centred noise",
    "spread/centred",
    "Spearman [90% CI]",
    "Kendall",
    "beat Joint",
    "CPU-s / cand.",
)


def load_rows(data: Path) -> list[dict]:
    """The rows whose JSON file exists (a study still under way has fewer)."""
    rows = []
    for stem, bench, setting in ROWS:
        path = data / f"{stem}.json"
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        rows.append({"stem": stem, "benchmark": bench, "setting": setting, "doc": doc})
    return rows


def centred_noise(doc: dict) -> float | None:
    """Pooled within-genotype std of the rewards once each replicate's mean over the genotypes
    (Joint left out, as in `noise`) is subtracted; genotypes with a failed replicate left out."""
    table = [g["rewards"] for g in doc["per_genotype"] if None not in g["rewards"]]
    if len(table) < 2:
        return None
    offsets = [statistics.fmean(col) for col in zip(*table, strict=True)]
    variances = [statistics.variance([x - o for x, o in zip(row, offsets, strict=True)]) for row in table]
    return math.sqrt(statistics.fmean(variances))


def _f(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def cells(row: dict) -> list[str]:
    d = row["doc"]
    lo, hi = d.get("spearman_ci") or (None, None)
    centred = centred_noise(d)
    return [
        row["benchmark"],
        row["setting"],
        _f(d.get("noise"), ".4f"),
        _f(d.get("spread"), ".4f"),
        _f(d.get("spread_to_noise"), ".2f"),
        _f(centred, ".4f"),
        _f(d["spread"] / centred if centred and d.get("spread") is not None else None, ".2f"),
        f"{_f(d.get('spearman'), '+.2f')} [{_f(lo, '+.2f')}, {_f(hi, '+.2f')}]",
        _f(d.get("kendall"), "+.2f"),
        _f(d.get("beat_joint_share"), ".0%"),
        _f((d.get("seconds_per_candidate") or {}).get("cpu"), ".1f"),
    ]


def print_table(rows: list[dict], markdown: bool) -> None:
    table = [list(COLUMNS), *(cells(r) for r in rows)]
    if markdown:
        print("| " + " | ".join(table[0]) + " |")
        print("|" + "---|" * len(COLUMNS))
        for line in table[1:]:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"synthetic-tiny": "o", "synthetic-hard": "s"}
    fig, ax = plt.subplots(figsize=(11, 5))
    for r in rows:
        d = r["doc"]
        cpu = (d.get("seconds_per_candidate") or {}).get("cpu")
        rho = d.get("spearman")
        if cpu is None or rho is None:
            continue
        lo, hi = d["spearman_ci"]
        ax.errorbar(
            cpu,
            rho,
            yerr=[[rho - lo], [hi - rho]],
            fmt=markers.get(r["benchmark"], "^"),
            capsize=3,
            label=f"{r['benchmark']}: {r['setting']}",
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axhline(0.6, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("CPU seconds per candidate (median)")
    ax.set_ylabel("Spearman between replicates (90% CI)")
    ax.set_title("Reward fidelity against cost (auxnas calibrate, 13 genotypes x 2 replicates)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"frontier PNG [default {PLOT}]")
    parser.add_argument("--data", type=Path, default=DATA, help=f"calibration JSON files [default {DATA}]")
    args = parser.parse_args()
    rows = load_rows(args.data)
    if not rows:
        sys.exit(f"--data: no calibration files of ROWS in {args.data}")
    print_table(rows, args.markdown)
    plot(rows, args.plot)
    print(f"frontier plot written to {args.plot}")


if __name__ == "__main__":
    main()
