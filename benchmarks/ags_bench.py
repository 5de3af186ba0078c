"""AGS score delivery throughput: scores delivered per second to a local platform, and token requests
per 1,000 scores, with the real delivery code (outbox claim -> ``ags.score`` handler -> token cache ->
score POST -> outcome recorded).

Set-up (state it with the figures):

* The tool's side is the production delivery path without the web tier: a fresh database (SQLite, or
  PostgreSQL + Redis as the shared store with ``--backend postgres``), migrated; one platform
  registration; N ``ags.score`` outbox messages enqueued (each for its own line item and learner, so
  none is coalesced by newest-wins), committed; then W worker processes (``--workers``, like RQ
  workers or the in-process threads of W web workers) each run :func:`lms_bridge.outbox.drain` until
  nothing is left. Time runs from the workers' start signal to the last message recorded delivered.
  Tokens start uncached: the first score of every worker asks for one, the shared store's single
  flight makes that one request.
* The platform (``--platform``):
  - ``minimal`` (default): a minimal AGS endpoint on gunicorn (1 worker, 4 threads, this file's
    :func:`platform_app`): an OAuth2 token endpoint (checks the grant and the presence of the client
    assertion, issues a 3600 s token like Moodle) and ``POST .../lineitem/scores`` that checks the
    bearer token and the score's fields, keeps the newest timestamp per line item and learner and
    answers Moodle's 200 ``null``. Its counters are read at ``/stats`` at the end: scores received,
    token requests, scores that arrived older than one already received (must be 0).
  - ``devplatform``: lms_bridge's development platform on gunicorn (2 workers): real client-assertion
    checks against the tool's JWKS, line items in the database, every score stored. Much more work per
    score on the platform side, on the same 2 cores.
* Everything shares this machine's cores (2 on the project's machine): the platform, the workers and
  the database. The CPU seconds of each part are printed.

    .venv/bin/python benchmarks/ags_bench.py [--scores 4000] [--workers 3] [--backend sqlite|postgres]
        [--platform minimal|devplatform]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.launch_bench import cpu_seconds, worker_pids  # noqa: E402
from benchmarks.progress_bench import machine_busy_seconds, postgres_pids  # noqa: E402

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"


# --------------------------------------------------------------------------- the minimal platform (WSGI)


class _PlatformState:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.scores = 0
        self.older = 0
        self.newest: dict[tuple[str, str], str] = {}


_state = _PlatformState()


def _answer(start_response, status: str, body: bytes, ctype: str = "application/json"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def platform_app(environ, start_response):
    """A minimal AGS platform: token endpoint, score endpoint, counters (one process: in memory)."""
    import secrets
    from urllib.parse import parse_qs

    path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    if method == "POST" and path == "/token":
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with _state.lock:
            _state.token_requests += 1
        if form.get("grant_type") != "client_credentials" or not form.get("client_assertion"):
            return _answer(start_response, "400 Bad Request", b'{"error": "invalid_request"}')
        token = secrets.token_hex(16)
        with _state.lock:
            _state.tokens.add(token)
        return _answer(start_response, "200 OK", json.dumps({"access_token": token, "token_type": "Bearer",
                                                            "expires_in": 3600, "scope": form.get("scope", "")}).encode())
    if method == "POST" and path.endswith("/lineitem/scores"):
        bearer = environ.get("HTTP_AUTHORIZATION", "")[len("Bearer "):]
        if bearer not in _state.tokens:
            return _answer(start_response, "401 Unauthorized", b"Unauthorized", "text/plain")
        try:
            score = json.loads(body)
            user, stamp = str(score["userId"]), str(score["timestamp"])
            assert score["activityProgress"] and score["gradingProgress"]
        except (ValueError, KeyError, AssertionError):
            return _answer(start_response, "400 Bad Request", b"Incorrect score received", "text/plain")
        with _state.lock:
            _state.scores += 1
            key = (path, user)
            if key in _state.newest and stamp < _state.newest[key]:
                _state.older += 1
            else:
                _state.newest[key] = stamp
        return _answer(start_response, "200 OK", b"null", SCORE_TYPE)
    if method == "GET" and path == "/stats":
        with _state.lock:
            stats = {"token_requests": _state.token_requests, "scores": _state.scores, "older": _state.older,
                     "distinct": len(_state.newest)}
        return _answer(start_response, "200 OK", json.dumps(stats).encode())
    return _answer(start_response, "404 Not Found", b'{"error": "not found"}')


# --------------------------------------------------------------------------- set-up


def start_minimal_platform(tmp: Path):
    from tests.support.servers import BIN, free_port

    port = free_port()
    log = open(tmp / "platform.log", "w")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "/dev/null", "-w", "1", "-k", "gthread", "--threads", "4", "-b",
                             f"127.0.0.1:{port}", "--log-level", "warning", "benchmarks.ags_bench:platform_app"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            requests.get(url + "/stats", timeout=1)
            return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("the minimal platform did not start:\n" + (tmp / "platform.log").read_text())


def seed(app, n: int, platform: str, platform_url: str, server=None) -> int:
    """The registration and N ags.score messages, each for its own line item and learner; returns the
    registration id."""
    from lms_bridge.extensions import db
    from lms_bridge.lti.keys import ensure_tool_key
    from lms_bridge.lti.models import Registration
    from lms_bridge.outbox import enqueue

    with app.app_context():
        ensure_tool_key()
        if platform == "minimal":
            reg = Registration(issuer=platform_url, client_id="bench", name="bench", auth_login_url=platform_url + "/auth",
                               auth_token_url=platform_url + "/token", key_set_url=platform_url + "/jwks")
            db.session.add(reg)
            db.session.commit()
            targets = [(f"{platform_url}/lineitems/{i}/lineitem?type_id=1", str(100 + i)) for i in range(n)]
        else:
            from lms_bridge.devplatform import platform as dev
            from lms_bridge.devplatform.models import DevLineItem

            with app.test_request_context(base_url=server.url):
                client = dev.ensure_registered()
                reg = db.session.execute(db.select(Registration).filter_by(client_id=client.client_id)).scalar_one()
                subs = [u["sub"] for u in dev.USERS.values() if dev.is_gradable(u)]
                per = -(-n // len(subs))
                items = []
                for i in range(per):
                    item = DevLineItem(context_id=dev.COURSE["id"], client_id=client.client_id, label=f"Bench {i}",
                                       score_maximum=100)
                    db.session.add(item)
                    items.append(item)
                db.session.commit()
                urls = [dev.lineitem_url(client.id, item) for item in items]
            targets = [(url, sub) for url in urls for sub in subs][:n]
        reg_id = reg.id
        for i, (url, sub) in enumerate(targets):
            payload = {"registration_id": reg_id, "lineitem": url, "userId": sub, "scoreGiven": float(i % 101),
                       "scoreMaximum": 100.0, "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                       "timestamp": "2026-11-21T09:00:00.000+00:00"}
            enqueue("ags.score", f"{url} {sub}", payload, target=url)
            if i % 500 == 499:
                db.session.commit()
        db.session.commit()
        db.session.remove()
    return reg_id


def _worker(env: dict, go, done_queue):
    """One delivery worker process: its own app and connections, drain until nothing is due."""
    from tests.support.servers import make_app

    app = make_app(env)
    with app.app_context():
        from lms_bridge.outbox import drain

        go.wait()
        started = time.perf_counter()
        cpu0 = time.process_time()
        delivered = retried = parked = 0
        idle = 0
        while idle < 3:
            result = drain()
            delivered, retried, parked = (delivered + result.delivered, retried + result.retried,
                                          parked + result.parked)
            idle = idle + 1 if result.total == 0 else 0
            if result.total == 0:
                time.sleep(0.05)
        from lms_bridge.grading import tokens

        done_queue.put({"delivered": delivered, "retried": retried, "parked": parked,
                        "cpu": time.process_time() - cpu0, "seconds": time.perf_counter() - started,
                        "token_requests": tokens.requests_made()})


def delivered_count(app) -> tuple[int, int]:
    from lms_bridge.extensions import db
    from lms_bridge.outbox import counts

    with app.app_context():
        c = counts("ags.")
        db.session.remove()
    return c["delivered"], c["parked"]


def run(args) -> None:
    from tests.support.servers import free_port, fresh_database, launch_server, make_app, migrate, server_env

    os.environ["LMS_BRIDGE_TEST_BACKEND"] = args.backend
    tmp = Path(tempfile.mkdtemp(prefix="ags_bench_"))
    platform_proc = server = None
    database = None
    try:
        if args.platform == "minimal":
            platform_proc, platform_url = start_minimal_platform(tmp)
            database = fresh_database(tmp)
            env = server_env(database, free_port(), tmp, OUTBOX_WORKER="off", LOG_LEVEL="WARNING")
            migrate(env)
            platform_pids = [platform_proc.pid] + worker_pids(platform_proc.pid)
        else:
            server = launch_server(workers=2, OUTBOX_WORKER="off", LOG_LEVEL="WARNING")
            database, env, platform_url = server.db, dict(server.env), server.platform_url
            requests.get(platform_url + "/devplatform/", timeout=10)
            platform_pids = [server.proc.pid] + server.worker_pids()
        env = {**env, "OUTBOX_BATCH": str(args.batch), "LOG_LEVEL": "WARNING"}
        app = make_app(env)
        seed(app, args.scores, args.platform, platform_url, server)
        stats_before = _platform_counts(args.platform, platform_url)

        ctx = multiprocessing.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(env, go, results)) for _ in range(args.workers)]
        for p in procs:
            p.start()
        time.sleep(3)  # the workers create their apps
        cpu_platform0 = cpu_seconds(platform_pids)
        cpu_pg0 = cpu_seconds(postgres_pids()) if args.backend == "postgres" else 0.0
        busy0 = machine_busy_seconds()
        started = time.perf_counter()
        go.set()
        finished = None
        while True:
            done, parked = delivered_count(app)
            if done + parked >= args.scores:
                finished = time.perf_counter()
                break
            if not any(p.is_alive() for p in procs):
                break
            time.sleep(0.02)
        worker_results = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        elapsed = (finished or time.perf_counter()) - started
        busy = machine_busy_seconds() - busy0
        cpu_platform = cpu_seconds(platform_pids) - cpu_platform0
        cpu_pg = (cpu_seconds(postgres_pids()) - cpu_pg0) if args.backend == "postgres" else 0.0
        stats = _platform_counts(args.platform, platform_url)
        done, parked = delivered_count(app)
        token_requests = stats["token_requests"] - stats_before["token_requests"]
        cpu_workers = sum(r["cpu"] for r in worker_results)
        print(f"AGS delivery: {args.scores} scores, {args.workers} worker processes, backend {args.backend}, "
              f"platform {args.platform} ({'gunicorn 1 worker x 4 threads' if args.platform == 'minimal' else 'lms_bridge devplatform, gunicorn 2 workers x 4 threads'})")
        print(f"  delivered {done}, parked {parked}, retried {sum(r['retried'] for r in worker_results)}")
        print(f"  {done / elapsed:.0f} scores/s ({elapsed:.2f} s)")
        print(f"  token requests: {token_requests} ({1000 * token_requests / max(done, 1):.2f} per 1,000 scores)")
        print(f"  platform received {stats['scores'] - stats_before['scores']} scores"
              + (f", {stats['older']} older than one already received" if "older" in stats else ""))
        print(f"  CPU per score: workers {1000 * cpu_workers / max(done, 1):.2f} ms, platform "
              f"{1000 * cpu_platform / max(done, 1):.2f} ms" + (f", PostgreSQL {1000 * cpu_pg / max(done, 1):.2f} ms"
                                                               if args.backend == "postgres" else ""))
        other = busy - cpu_workers - cpu_platform - cpu_pg
        print(f"  machine busy {busy:.1f} CPU s of {elapsed * os.cpu_count():.1f} available; other processes "
              f"(this script's polling, other jobs) {max(0.0, other):.1f} CPU s")
    finally:
        if server is not None:
            server.stop()
        if platform_proc is not None:
            os.killpg(platform_proc.pid, 15)
            platform_proc.wait()
        if database is not None:
            database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def _platform_counts(platform: str, url: str) -> dict:
    if platform == "minimal":
        return requests.get(url + "/stats", timeout=10).json()
    data = requests.get(url + "/devplatform/gradebook.json", timeout=60).json()
    return {"token_requests": data["token_requests"], "scores": len(data["scores"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50, help="OUTBOX_BATCH: messages claimed per transaction")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--platform", choices=["minimal", "devplatform"], default="minimal")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
