"""gunicorn settings; every value can be overridden from the environment."""
import os

from lms_bridge.config import content_bind

bind = [os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")]
# Package content on its own origin: in development a second loopback address of this machine
# (http://[::1]:PORT, see lms_bridge/config.py content_origin), listened on by the same server.
_content_bind = content_bind()
if _content_bind:
    bind.append(_content_bind)
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker answer the development platform while it calls itself (JWKS, tokens).
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
accesslog = os.environ.get("ACCESS_LOG", "-") or None
errorlog = "-"
# The app is created per worker (no preload): database connections are never shared across forks.
preload_app = False
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """Each web worker runs its own outbox delivery thread on the embedded default (OUTBOX_WORKER=inprocess)."""
    from lms_bridge.outbox.worker import start_in_process

    start_in_process(worker.wsgi)
