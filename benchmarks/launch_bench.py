"""Launch throughput: N full OIDC login + launch + landing round trips against gunicorn (2 workers),
beside a bare Flask "hello" app on the same gunicorn settings, measured in the same run.

Prints launches/s, p50/p99 latency of a whole round trip (3 tool requests), and the server's CPU time
per launch: the gunicorn workers' user+sys CPU read from /proc, divided by successful launches.  On a
2-core machine the load generator shares the cores, so server CPU per launch is the figure that compares.

    .venv/bin/python benchmarks/launch_bench.py [--launches 600] [--concurrency 4] [--backend sqlite|postgres]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.platform import SimPlatform  # noqa: E402
from tests.support.servers import BIN, free_port, launch_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, IndexError):
            pass
    return total / TICKS


def worker_pids(master_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def run_load(n: int, concurrency: int, one) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    ok = 0
    local = threading.local()

    def task(_):
        nonlocal ok
        if not hasattr(local, "http"):
            local.http = requests.Session()
        t0 = time.perf_counter()
        good = one(local.http)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)
            ok += good
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(task, range(n)))
    return latencies, ok, time.perf_counter() - start


def report(name: str, latencies, ok, wall, cpu, per: str):
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    print(f"{name:<28} {ok / wall:8.1f} {per}/s   p50 {p(0.50):6.1f} ms   p99 {p(0.99):6.1f} ms   "
          f"server CPU {cpu / max(ok, 1) * 1000:6.2f} ms/{per}   ({ok} ok of {len(latencies)})")


def bench_launches(args):
    os.environ["LMS_BRIDGE_TEST_BACKEND"] = args.backend
    server = launch_server(workers=2, GUNICORN_THREADS=args.threads, ACCESS_LOG="", LOG_LEVEL="WARNING")
    try:
        platform = SimPlatform(server)

        def one(http):
            state, nonce = platform.login_state(http)
            resp = platform.post_launch(http, state, platform.sign(platform.claims(nonce)))
            if resp.status_code != 303:
                return 0
            return int(http.get(server.url + resp.headers["Location"]).status_code == 200)

        run_load(min(50, args.launches), args.concurrency, one)  # warm up: JWKS cache, connections, imports
        pids = worker_pids(server.proc.pid)
        cpu0 = cpu_seconds(pids)
        lat, ok, wall = run_load(args.launches, args.concurrency, one)
        report(f"LTI launch ({args.backend})", lat, ok, wall, cpu_seconds(pids) - cpu0, "launch")
    finally:
        server.stop()
        server.db.drop()


def bench_hello(args):
    port = free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "hello.py").write_text("from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef hello():\n    return 'hello'\n")
    env = dict(os.environ, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", GUNICORN_THREADS=str(args.threads),
               ACCESS_LOG="", PYTHONPATH=str(tmp))
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "hello:app"], cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)

        def one(http):  # three requests, like one launch round trip
            return int(all(http.get(url).status_code == 200 for _ in range(3)))

        run_load(50, args.concurrency, one)
        pids = worker_pids(proc.pid)
        cpu0 = cpu_seconds(pids)
        lat, ok, wall = run_load(args.launches, args.concurrency, one)
        report("bare Flask hello x3", lat, ok, wall, cpu_seconds(pids) - cpu0, "triple")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    print(f"{args.launches} round trips, concurrency {args.concurrency}, gunicorn 2 workers x {args.threads} threads, "
          f"{os.cpu_count()} cores")
    bench_hello(args)
    bench_launches(args)


if __name__ == "__main__":
    main()
