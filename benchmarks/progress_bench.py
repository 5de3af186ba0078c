"""Progress commits per second through the SCORM commit API on gunicorn (2 workers, as configured
in gunicorn.conf.py), on SQLite (embedded default) or PostgreSQL + Redis.

Set-up: a fresh database, the SCORM 2004 course of mooc_packages/ imported, a development-platform
link bound to it, and L learners launched from the development platform over real HTTP (each gets
the player page with its own commit token and runtime session). Then C client threads send
N commits, each thread driving its own learners with increasing sequence numbers, the way
scorm-again's autocommit does: most commits move the bookmark (cmi.location, suspend_data,
total_time); every 10th also changes the score (a score_changed event in the same transaction).

Prints commits/s, p50/p99 latency, and the gunicorn workers' CPU time per commit (the load
generator shares the 2 cores, so server CPU per commit is the figure that compares across machines).

    .venv/bin/python benchmarks/progress_bench.py [--commits 4000] [--learners 40] [--concurrency 8]
                                                  [--backend sqlite|postgres]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.launch_bench import cpu_seconds, worker_pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=4000)
    parser.add_argument("--learners", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default=os.environ.get("LMS_BRIDGE_TEST_BACKEND", "sqlite"))
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

    server = launch_server(workers=2, ACCESS_LOG="", LOG_LEVEL="WARNING")
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
        print(f"backend={args.backend} workers=2 threads/worker={os.environ.get('GUNICORN_THREADS', '4')} "
              f"learners={len(configs)} client threads={args.concurrency} commits={args.commits}")

        per_thread = [configs[i::args.concurrency] for i in range(args.concurrency)]
        quota = [args.commits // args.concurrency + (1 if i < args.commits % args.concurrency else 0)
                 for i in range(args.concurrency)]
        latencies: list[float] = []
        results = {"applied": 0, "failed": 0, "events": 0}
        lock = threading.Lock()

        def drive(index: int) -> None:
            http = requests.Session()
            mine = per_thread[index]
            seqs = [0] * len(mine)
            local_lat, applied, failed, events = [], 0, 0, 0
            for i in range(quota[index]):
                j = i % len(mine)
                cfg = mine[j]
                seqs[j] += 1
                seq = seqs[j]
                cmi = {"completion_status": "incomplete", "location": f"q{seq % 10}",
                       "suspend_data": json.dumps({"answers": {"q1": ["b"], "n": seq}}),
                       "total_time": f"PT{seq}S", "exit": "suspend"}
                if seq % 10 == 0:
                    cmi["score"] = {"scaled": f"{(seq % 100) / 100:.2f}", "raw": str(seq % 100), "min": "0", "max": "100"}
                body = json.dumps({"token": cfg["token"], "session": cfg["session"], "seq": seq, "cmi": cmi})
                t0 = time.perf_counter()
                resp = http.post(cfg["commitUrl"], data=body, headers={"Content-Type": "application/json"})
                local_lat.append(time.perf_counter() - t0)
                if resp.status_code == 200 and resp.json().get("applied"):
                    applied += 1
                    events += len(resp.json().get("events") or [])
                else:
                    failed += 1
            with lock:
                latencies.extend(local_lat)
                results["applied"] += applied
                results["failed"] += failed
                results["events"] += events

        pids = worker_pids(server.proc.pid)
        cpu0 = cpu_seconds(pids)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=drive, args=(i,)) for i in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(pids) - cpu0
        latencies.sort()
        n = len(latencies)
        print(f"commits: {n} in {wall:.2f} s -> {n / wall:.0f} commits/s "
              f"(applied {results['applied']}, refused or failed {results['failed']}, events written {results['events']})")
        print(f"latency: p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * latencies[int(0.99 * (n - 1))]:.1f} ms, "
              f"max {1000 * latencies[-1]:.1f} ms")
        print(f"server CPU: {1000 * cpu / max(1, n):.2f} ms per commit (gunicorn workers, user+sys)")
    finally:
        server.stop()
        server.db.drop()


if __name__ == "__main__":
    main()
