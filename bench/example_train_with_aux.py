"""Wall-clock and CPU time of examples/train_with_aux.py with its defaults (the "under a minute
on the CPU" claim), and its parameter line. CPU time (user + sys of the process) is what the
run costs on an idle core; wall time also counts waiting for a busy machine's cores.

    python bench/example_train_with_aux.py [--runs 3] [-- extra args for the example]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(SCRIPT), *args.extra], capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode != 0:
            sys.exit(f"error: run {run} failed: {result.stderr.strip().splitlines()[-1:]}")
        walls.append(wall)
        trained = re.search(r"^trained .*$", result.stdout, re.M)
        params = re.search(r"^inference network: .*$", result.stdout, re.M)
        held_out = re.search(r"^held-out scenes: .*$", result.stdout, re.M)
        print(f"run {run}: wall {wall:.1f} s, cpu {cpu:.1f} s (process start to exit); {trained[0]}")
        print(f"run {run}: {held_out[0]}")
        print(f"run {run}: {params[0]}")
    print(
        f"wall seconds: median {statistics.median(walls):.1f}, max {max(walls):.1f} over {len(walls)} run(s)"
    )


if __name__ == "__main__":
    main()
