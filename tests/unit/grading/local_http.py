"""A real HTTP server on a free loopback port, in a thread, for tests of outbound clients (no mocks:
the client under test opens real connections and reads real answers)."""
from __future__ import annotations

import threading

from werkzeug.serving import make_server


class LocalServer:
    def __init__(self, wsgi_app):
        self.server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-http", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
