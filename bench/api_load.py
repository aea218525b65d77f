"""API load while a search runs: N concurrent clients poll GET /searches/{id} and
GET /searches/{id}/trials for S seconds against `auxnas serve` on 127.0.0.1; prints requests/s,
latency percentiles and errors.

    .venv/bin/python bench/api_load.py                      # 50 clients each polling every 1 s, 20 s
    .venv/bin/python bench/api_load.py --interval 0         # back to back: the most it can answer
    .venv/bin/python bench/api_load.py --evaluator fake     # evaluator.testing.sleeping (2 s)
    .venv/bin/python bench/api_load.py --database-url postgresql+psycopg2://postgres@127.0.0.1/test

It starts its own server (`auxnas serve --no-worker`) and worker (`auxnas worker`) on a fresh
SQLite file in a temporary directory unless --database-url is given, queues one search (tiny
synthetic data, PPO, a budget it will not finish), waits until trials are being recorded, runs
the load, cancels the search and stops both processes. Latency is measured by the clients,
from sending a request to having read the whole response. Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def search_body(evaluator: str, parallel: int) -> dict:
    return {
        "name": "api-load",
        "tasks": ["segmentation", "depth"],
        "data": {
            "name": "synthetic",
            "root": "synthetic-cache",  # a REST caller names paths inside AUXNAS_DATA_DIR
            "num_images": 64,
            "num_test_images": 8,
            "resolution": 32,
        },
        "model": {"encoder": "tiny", "num_aux_inputs": 2, "aux_channels": 16},
        "train": {"steps": 30, "batch_size": 8, "eval_batch_size": 16},
        "search": {"strategy": "ppo", "budget": 1000, "parallel_trials": parallel, "early_stop": False},
        "controller": {"episodes_per_update": 4},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "auxnas.cli", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"error: timed out after {timeout:.0f} s waiting for {what}")


async def client_loop(
    http: httpx.AsyncClient, sid: int, until: float, offset: float, interval: float, lat: dict, errors: list
) -> None:
    """One client: every `interval` seconds (0: back to back) GET the search, then its trials."""
    paths = (f"/searches/{sid}", f"/searches/{sid}/trials")
    await asyncio.sleep(offset)
    while time.perf_counter() < until:
        started = time.perf_counter()
        for which, path in enumerate(paths):
            t0 = time.perf_counter()
            try:
                r = await http.get(path)
                ok = r.status_code == 200
            except httpx.HTTPError as e:  # its name too: some carry no message
                ok, r = False, f"{type(e).__name__}: {e}".rstrip(": ")
            dt = time.perf_counter() - t0
            if ok:
                lat[which].append(dt)
            else:
                errors.append(str(getattr(r, "status_code", r)))
        if interval:
            await asyncio.sleep(max(0.0, started + interval - time.perf_counter()))


async def run_load(
    base: str, sid: int, clients: int, seconds: float, interval: float
) -> tuple[dict, list, float]:
    lat: dict[int, list[float]] = {0: [], 1: []}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        await http.get("/healthz")
        start_t = time.perf_counter()
        until = start_t + seconds
        # the clients' polls are spread evenly over the interval, as independent pollers would be
        offsets = [interval * k / clients for k in range(clients)]
        await asyncio.gather(*(client_loop(http, sid, until, o, interval, lat, errors) for o in offsets))
        elapsed = time.perf_counter() - start_t
    return lat, errors, elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between one client's polls (a poll = GET the search, then its trials); "
        "0 = back to back, which measures the most the server can answer",
    )
    ap.add_argument("--evaluator", choices=("real", "fake"), default="real")
    ap.add_argument("--parallel-trials", type=int, default=1)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    ap.add_argument("--min-trials", type=int, default=3, help="trials recorded before the load starts")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="auxnas-api-load-"))
    url = args.database_url or f"sqlite:///{work / 'auxnas.db'}"
    port = free_port()
    env = {
        **os.environ,
        "AUXNAS_DATABASE_URL": url,
        "AUXNAS_DATA_DIR": str(work / "runs"),
        "RAY_AUTH_MODE": "disabled",
    }
    env.pop("AUXNAS_API_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    server = start(
        ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env,
        work / "serve.log",
    )
    worker_args = ["worker", "--poll", "0.5"]
    if args.evaluator == "fake":
        worker_args += ["--evaluator", "fake-sleep"]
    worker = start(worker_args, env, work / "worker.log")
    base = f"http://127.0.0.1:{port}"
    try:
        http = httpx.Client(base_url=base, timeout=10)

        def up() -> bool:
            try:
                return http.get("/healthz").status_code == 200
            except httpx.TransportError:
                if server.poll() is not None:
                    raise SystemExit(f"error: the server exited; see {work / 'serve.log'}") from None
                return False

        wait_until(up, 60, "the API")
        r = http.post("/searches", json=search_body(args.evaluator, args.parallel_trials))
        r.raise_for_status()
        sid = r.json()["id"]

        def recording() -> bool:
            s = http.get(f"/searches/{sid}").json()
            if s["status"] not in ("queued", "running"):
                raise SystemExit(f"error: the search ended early ({s['status']}: {s['error']}); see {work}")
            return s["progress"]["trials"] >= args.min_trials

        wait_until(recording, 300, f"{args.min_trials} trials to be recorded")
        trials_before = http.get(f"/searches/{sid}").json()["progress"]["trials"]
        server_cpu = cpu_seconds(server.pid)
        lat, errors, elapsed = asyncio.run(run_load(base, sid, args.clients, args.seconds, args.interval))
        server_cpu = cpu_seconds(server.pid) - server_cpu
        s = http.get(f"/searches/{sid}").json()
        trials_after = s["progress"]["trials"]
        status = s["status"]
        http.post(f"/searches/{sid}/cancel")
        http.close()
    finally:
        stop(worker)
        stop(server)

    all_lat = lat[0] + lat[1]
    n = len(all_lat) + len(errors)
    backend = url.split(":", 1)[0]
    poll = f"every {args.interval:g} s" if args.interval else "back to back"
    print(
        f"api_load: {args.clients} clients polling {poll}, {elapsed:.1f} s, backend {backend}, "
        f"evaluator {args.evaluator}, parallel_trials {args.parallel_trials}, cpus {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"search {sid} {status} during the load: trials {trials_before} -> {trials_after}")
    print(
        f"requests {n}  errors {len(errors)}  requests/s {n / elapsed:.1f}  "
        f"server CPU {server_cpu:.1f} s = {server_cpu / max(n, 1) * 1e3:.2f} ms per request"
    )
    for name, values in (
        ("GET /searches/{id}", lat[0]),
        ("GET /searches/{id}/trials", lat[1]),
        ("all", all_lat),
    ):
        print(
            f"{name:28s} n={len(values):6d}  p50 {pct(values, 50) * 1e3:7.1f} ms  p90 {pct(values, 90) * 1e3:7.1f} ms"
            f"  p99 {pct(values, 99) * 1e3:7.1f} ms  max {max(values, default=float('nan')) * 1e3:7.1f} ms"
            f"  mean {statistics.fmean(values) * 1e3 if values else float('nan'):7.1f} ms"
        )
    if errors:
        print("first errors:", ", ".join(errors[:5]))
    p99 = pct(all_lat, 99) * 1e3
    print(f"target p99 < 100 ms: {'met' if p99 < 100 and not errors else 'NOT met'} (p99 {p99:.1f} ms)")


if __name__ == "__main__":
    main()
