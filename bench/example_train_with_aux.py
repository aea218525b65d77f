"""Wall-clock time of examples/train_with_aux.py with its defaults (the "under a minute on the
CPU" claim), and its parameter line.

    python bench/example_train_with_aux.py [--runs 3] [-- extra args for the example]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "train_with_aux.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="arguments passed on to the example (after --)")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"command: python examples/train_with_aux.py {' '.join(args.extra)}".rstrip())
    walls = []
    for run in range(1, args.runs + 1):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(SCRIPT), *args.extra], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"error: run {run} failed: {result.stderr.strip().splitlines()[-1:]}")
        walls.append(wall)
        trained = re.search(r"^trained .*$", result.stdout, re.M)
        params = re.search(r"^inference network: .*$", result.stdout, re.M)
        held_out = re.search(r"^held-out scenes: .*$", result.stdout, re.M)
        print(f"run {run}: wall {wall:.1f} s (process start to exit); {trained[0]}")
        print(f"run {run}: {held_out[0]}")
        print(f"run {run}: {params[0]}")
    print(
        f"wall seconds: median {statistics.median(walls):.1f}, max {max(walls):.1f} over {len(walls)} run(s)"
    )


if __name__ == "__main__":
    main()
