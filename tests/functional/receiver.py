"""A real HTTP receiver for webhook tests: records every request and answers as told."""
from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Listens on 127.0.0.1; the first `fail_first` requests of each delivery get 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery = self.headers.get("Crowd-Delivery", "")
                with receiver._lock:
                    receiver._seen[delivery] += 1
                    status = 500 if receiver._seen[delivery] <= receiver.fail_first else 200
                    receiver.requests.append({"headers": dict(self.headers), "raw": raw,
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def succeeded(self) -> list[dict[str, Any]]:
        """The requests answered 200."""
        with self._lock:
            return [r for r in self.requests if r["status"] == 200]

    def events(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 200."""
        return [json.loads(r["raw"]) for r in self.succeeded()]
