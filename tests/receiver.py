"""A webhook on 127.0.0.1 that keeps what it is sent: the local receiver of the alert tests.

    with Webhook() as hook:
        url = hook.apprise_url           # json://127.0.0.1:PORT/alerts
        ...                              # something sends an alert
        (message,) = hook.wait_for(1)    # {"title": ..., "message": ..., "type": ...}

apprise's ``json://`` posts ``{"version", "title", "message", "type", ...}`` as JSON.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    message = json.loads(body)
                except ValueError:
                    message = {"raw": body.decode("utf-8", "replace")}
                with hook._lock:
                    hook.messages.append(message)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 30.0) -> list[dict]:
        """The first ``n`` messages, waiting up to ``timeout`` seconds for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages[:n])
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"{len(self.messages)} of {n} alert(s) received: {self.messages}")
