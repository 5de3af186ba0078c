"""Progress commits per second through the SCORM commit API on gunicorn (2 workers, as configured
in gunicorn.conf.py), on SQLite (embedded default) or PostgreSQL + Redis.

Set-up: a fresh database, the SCORM 2004 course of mooc_packages/ imported, a development-platform
link bound to it, and L learners launched from the development platform over real HTTP (each gets
the player page with its own commit token and runtime session). Then C client threads send
N commits, each thread driving its own learners with increasing sequence numbers, the way
scorm-again's autocommit does: most commits move the bookmark (cmi.location, suspend_data,
total_time); every 10th (``--score-every``) also changes the score (a score_changed event in the
same transaction, and the progress summary in the answer).

Prints commits/s, p50/p99 latency, and CPU per commit of the gunicorn workers, of PostgreSQL, of
the load generator (this process) and of other processes: the load generator shares the cores, so
server CPU per commit is the figure that compares across machines, and "other processes" shows
when another job disturbed the run (its commits/s then mean little).

The load generator is ``http.client`` on keep-alive connections by default (about 0.2 ms of CPU
a request); ``--client requests`` uses requests.Session (about 1 ms a request, which on a 2-core
machine takes CPU from the server: the figures before the commit fast path were measured with it).

    .venv/bin/python benchmarks/progress_bench.py [--commits 4000] [--learners 40] [--concurrency 8]
        [--backend sqlite|postgres] [--threads 4] [--client http|requests] [--score-every 10]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.launch_bench import TICKS, cpu_seconds, worker_pids


def machine_busy_seconds() -> float:
    """CPU seconds (all cores, user+system, not idle or I/O wait) the whole machine has used since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICKS


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes (its CPU per commit is part of the cost on that backend)."""
    out = subprocess.run(["pgrep", "-x", "postgres"], check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class HttpClient:
    """A keep-alive HTTP/1.1 connection (http.client): the cheapest load generator in Python."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(self, url: str, body: str) -> tuple[int, dict | None]:
        parts = urlsplit(url)
        try:
            self.conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # reconnects on the next request
            return 0, None
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, None


class RequestsClient:
    def __init__(self, base_url: str):
        self.http = requests.Session()

    def post(self, url: str, body: str) -> tuple[int, dict | None]:
        resp = self.http.post(url, data=body, headers={"Content-Type": "application/json"})
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=4000)
    parser.add_argument("--learners", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default=os.environ.get("LMS_BRIDGE_TEST_BACKEND", "sqlite"))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "4")),
                        help="gunicorn threads per worker for this run (gunicorn.conf.py's default is 4)")
    parser.add_argument("--client", choices=("http", "requests"), default="http", help="load generator HTTP client")
    parser.add_argument("--score-every", type=int, default=10, help="every Nth commit of a learner changes the score (0: never)")
    parser.add_argument("--warmup", type=int, default=400, help="commits sent before measuring")
    args = parser.parse_args()
    os.environ["LMS_BRIDGE_TEST_BACKEND"] = args.backend

    from tests.integration.test_player_common import (
        MOOC,
        commit_config,
        import_course,
        launch_learner,
        place_link,
    )
    from tests.support.servers import launch_server

    server = launch_server(workers=2, GUNICORN_THREADS=args.threads, ACCESS_LOG="", LOG_LEVEL="WARNING")
    try:
        course = import_course(server, MOOC / "battery-safety-ev-scorm2004")
        quiz = next(a for a in course["activities"] if a["identifier"] == "Q1-final-quiz")
        configs = []
        for n in range(args.learners):
            # Each learner on its own placement (resource link): its own attempt.
            link = place_link(server, f"bench {n}", course=course["course_id"])
            browser, page = launch_learner(server, link, user=("learner", "learner2", "anonymous")[n % 3])
            token = page.text.split('href="/player/', 1)[1].split("/", 1)[0]
            page = browser.get(f"{server.url}/player/{token}/activity/{quiz['key']}")
            configs.append(commit_config(page))
        print(f"backend={args.backend} workers=2 threads/worker={args.threads} learners={len(configs)} "
              f"client={args.client} client threads={args.concurrency} commits={args.commits} "
              f"score change every {args.score_every or 'never'} cores={os.cpu_count()}")

        per_thread = [configs[i::args.concurrency] for i in range(args.concurrency)]
        client_class = HttpClient if args.client == "http" else RequestsClient
        clients = [client_class(mine[0]["commitUrl"]) for mine in per_thread]
        seqs = [[0] * len(mine) for mine in per_thread]

        def run(total: int) -> tuple[list[float], dict, float]:
            quota = [total // args.concurrency + (1 if i < total % args.concurrency else 0)
                     for i in range(args.concurrency)]
            latencies: list[float] = []
            results = {"applied": 0, "failed": 0, "events": 0}
            lock = threading.Lock()

            def drive(index: int) -> None:
                client, mine, my_seqs = clients[index], per_thread[index], seqs[index]
                local_lat, applied, failed, events = [], 0, 0, 0
                for i in range(quota[index]):
                    j = i % len(mine)
                    cfg = mine[j]
                    my_seqs[j] += 1
                    seq = my_seqs[j]
                    cmi = {"completion_status": "incomplete", "location": f"q{seq % 10}",
                           "suspend_data": json.dumps({"answers": {"q1": ["b"], "n": seq}}),
                           "total_time": f"PT{seq}S", "exit": "suspend"}
                    if args.score_every and seq % args.score_every == 0:
                        cmi["score"] = {"scaled": f"{(seq % 100) / 100:.2f}", "raw": str(seq % 100), "min": "0",
                                        "max": "100"}
                    body = json.dumps({"token": cfg["token"], "session": cfg["session"], "seq": seq, "cmi": cmi})
                    t0 = time.perf_counter()
                    status, answer = client.post(cfg["commitUrl"], body)
                    local_lat.append(time.perf_counter() - t0)
                    if status == 200 and answer and answer.get("applied"):
                        applied += 1
                        events += len(answer.get("events") or [])
                    else:
                        failed += 1
                with lock:
                    latencies.extend(local_lat)
                    results["applied"] += applied
                    results["failed"] += failed
                    results["events"] += events

            t0 = time.perf_counter()
            threads = [threading.Thread(target=drive, args=(i,)) for i in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return latencies, results, time.perf_counter() - t0

        if args.warmup:
            run(args.warmup)  # connections, pools, caches, prepared statements
        pids = worker_pids(server.proc.pid)
        pg_pids = postgres_pids() if args.backend == "postgres" else []
        cpu0, me0, all0, pg0 = cpu_seconds(pids), time.process_time(), machine_busy_seconds(), cpu_seconds(pg_pids)
        latencies, results, wall = run(args.commits)
        cpu, me, everything = cpu_seconds(pids) - cpu0, time.process_time() - me0, machine_busy_seconds() - all0
        pg = cpu_seconds(pg_pids) - pg0
        latencies.sort()
        n = len(latencies)
        print(f"commits: {n} in {wall:.2f} s -> {n / wall:.0f} commits/s "
              f"(applied {results['applied']}, refused or failed {results['failed']}, events written {results['events']})")
        print(f"latency: p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * latencies[int(0.99 * (n - 1))]:.1f} ms, "
              f"max {1000 * latencies[-1]:.1f} ms")
        per = 1000 / max(1, n)
        print(f"CPU per commit: server {cpu * per:.2f} ms (gunicorn workers, user+sys)"
              + (f", PostgreSQL {pg * per:.2f} ms" if pg_pids else "")
              + f", load generator {me * per:.2f} ms, other processes {(everything - cpu - me - pg) * per:.2f} ms; "
              f"machine busy {100 * everything / wall / (os.cpu_count() or 1):.0f} %")
    finally:
        server.stop()
        server.db.drop()


if __name__ == "__main__":
    main()
