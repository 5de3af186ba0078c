"""Who runs the outbox: a thread in each web worker, or RQ workers on Redis.

``OUTBOX_WORKER`` chooses:

* ``inprocess`` (the embedded default): every gunicorn worker process runs one delivery thread
  (started by gunicorn.conf.py's ``post_worker_init``), woken at once when its own process commits
  a message and otherwise polling every ``OUTBOX_POLL_SECONDS`` (what other processes committed,
  retries falling due, leases of dead workers). Nothing to install.
* ``rq`` (production): delivery runs in RQ workers on Redis, started with ``flask outbox-worker``
  on as many hosts as needed; web processes only *kick*: a commit that enqueued something puts one
  drain job on the queue (at most one waiting at a time, a Redis flag), a drain job that found a
  full batch puts two more (so idle workers join in while there is work), and each worker process
  also sweeps every ``OUTBOX_POLL_SECONDS`` (retries falling due, lost kicks, expired leases, jobs
  lost with a worker that was killed): when there is due work and the queue is empty, it queues a job.
  Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so workers never deliver the same row twice.
* ``off``: nothing delivers (messages wait); for maintenance, or scripts that call
  :func:`lms_bridge.outbox.work_once` themselves.

Both paths run the same :func:`lms_bridge.outbox.service.work_once`.
"""
from __future__ import annotations

import logging
import threading

from flask import Flask, current_app, has_app_context

from ..extensions import db
from . import service

log = logging.getLogger("lms_bridge.outbox")

KICK_FLAG = "outbox:kick"
KICK_FLAG_SECONDS = 30
QUEUE = "lms_bridge-outbox"


def mode(app: Flask | None = None) -> str:
    app = app or current_app
    return app.config.get("OUTBOX_WORKER", "inprocess")


# --------------------------------------------------------------------------- in-process


class InProcessWorker(threading.Thread):
    """The delivery thread of one web worker process (embedded default)."""

    def __init__(self, app: Flask):
        super().__init__(name="outbox-worker", daemon=True)
        self.app = app
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.poll = float(app.config.get("OUTBOX_POLL_SECONDS", 2.0))

    def run(self) -> None:
        with self.app.app_context():
            while not self.stopping.is_set():
                self.wake.clear()
                try:
                    busy = service.work_once().total > 0
                    wait = 0.0 if busy else service.next_due_in(self.poll)
                except Exception:  # the database restarting, say: log, back off, go on
                    log.exception("outbox worker pass failed")
                    wait = self.poll
                finally:
                    db.session.remove()
                if wait > 0:
                    self.wake.wait(wait)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


_local: InProcessWorker | None = None
_local_lock = threading.Lock()


def start_in_process(app: Flask) -> InProcessWorker | None:
    """Start this process's delivery thread (once), when ``OUTBOX_WORKER=inprocess``."""
    global _local
    if mode(app) != "inprocess":
        return None
    with _local_lock:
        if _local is None or not _local.is_alive():
            _local = InProcessWorker(app)
            _local.start()
            log.info("outbox: in-process delivery thread started")
    return _local


def stop_in_process() -> None:
    if _local is not None:
        _local.stop()


# --------------------------------------------------------------------------- RQ


def _redis(app: Flask):
    import redis

    url = app.config.get("REDIS_URL")
    if not url:
        raise RuntimeError("OUTBOX_WORKER=rq needs REDIS_URL")
    client = app.extensions.get("lms_bridge.outbox_redis")
    if client is None:
        client = app.extensions["lms_bridge.outbox_redis"] = redis.Redis.from_url(url, socket_timeout=5)
    return client


def rq_queue(app: Flask):
    from rq import Queue

    return Queue(app.config.get("OUTBOX_QUEUE", QUEUE), connection=_redis(app))


def _enqueue_drain(app: Flask) -> None:
    rq_queue(app).enqueue(drain_job, job_timeout=600, result_ttl=0, failure_ttl=3600)


def rq_kick(app: Flask, *, force: bool = False) -> None:
    """Make sure a drain job is waiting (one at a time: the flag is cleared when a job starts).
    ``force`` enqueues one even when the flag is up: the sweepers use it when the queue is empty,
    since a worker killed between taking a job and clearing the flag leaves the flag up."""
    flag = app.config.get("REDIS_PREFIX", "lms_bridge:") + KICK_FLAG
    if _redis(app).set(flag, "1", nx=not force, ex=KICK_FLAG_SECONDS) or force:
        _enqueue_drain(app)


def drain_job() -> dict:
    """The RQ job: one batch, and more jobs while there is more work (runs in ``flask outbox-worker``)."""
    app = current_app._get_current_object()
    _redis(app).delete(app.config.get("REDIS_PREFIX", "lms_bridge:") + KICK_FLAG)
    settings = service.Settings.current()
    result = service.work_once(max_batches=1)
    if result.delivered + result.retried + result.parked >= settings.batch:
        for _ in range(2):
            _enqueue_drain(app)
    db.session.remove()
    return {"delivered": result.delivered, "retried": result.retried, "parked": result.parked,
            "pumped": result.pumped}


def _sweep_needed() -> bool:
    from sqlalchemy import func, select

    from .models import OutboxMessage as M, utcnow

    now = utcnow()
    due = db.session.execute(select(func.count()).where(
        ((M.state == "pending") & (M.next_attempt_at <= now)) | ((M.state == "delivering") & (M.claimed_until < now))
    )).scalar()
    db.session.rollback()
    return bool(due) or service.pumps_pending()


def sweep_once(app: Flask) -> bool:
    """Queue a drain job when there is due work; whatever the flag says when the queue is empty."""
    if not _sweep_needed():
        return False
    rq_kick(app, force=rq_queue(app).count == 0)
    return True


def run_rq_worker(app: Flask, *, burst: bool = False, name: str | None = None) -> None:
    """``flask outbox-worker``: an RQ worker for the outbox queue, plus this process's sweeper."""
    from rq import SimpleWorker

    stop = threading.Event()
    poll = float(app.config.get("OUTBOX_POLL_SECONDS", 2.0))

    def sweeper():
        with app.app_context():
            while not stop.wait(poll):
                try:
                    sweep_once(app)
                except Exception:
                    log.exception("outbox sweeper")
                finally:
                    db.session.remove()

    if not burst:
        threading.Thread(target=sweeper, name="outbox-sweeper", daemon=True).start()
    with app.app_context():
        rq_kick(app)  # pick up whatever waited while no worker ran
        # SimpleWorker runs jobs in this process (no fork): the app, its engine and its key
        # caches are set up once; run more worker processes for more parallelism.
        worker = SimpleWorker([rq_queue(app)], connection=_redis(app), name=name)
        try:
            worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
        finally:
            stop.set()


# --------------------------------------------------------------------------- kick


def kick() -> None:
    """Tell the workers there is something to deliver (after a commit)."""
    if not has_app_context():
        return
    app = current_app._get_current_object()
    which = mode(app)
    if which == "inprocess":
        if _local is not None:
            _local.wake.set()
    elif which == "rq":
        rq_kick(app)
